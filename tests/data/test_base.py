import numpy as np
import pytest

from deepclust.data import ImageDataset, channel_stats, from_arrays


def _naive_stats(images):
    c = images.shape[1]
    mean, std = [], []
    for ch in range(c):
        vals = [float(v) / 255 for v in images[:, ch].ravel()]
        m = sum(vals) / len(vals)
        mean.append(m)
        std.append((sum((v - m) ** 2 for v in vals) / len(vals)) ** 0.5)
    return mean, std


def test_channel_stats_match_naive_loop():
    x = np.random.default_rng(0).integers(0, 256, size=(7, 3, 5, 4), dtype=np.uint8)
    mean, std = channel_stats(x)
    ref_m, ref_s = _naive_stats(x)
    assert mean == pytest.approx(ref_m, abs=1e-12) and std == pytest.approx(ref_s, abs=1e-12)
    # subsampled estimate over evenly spaced images when over the budget
    m2, _ = channel_stats(x, budget=3 * 5 * 4 * 3)
    ref_sub, _ = _naive_stats(x[[0, 3, 6]])
    assert m2 == pytest.approx(ref_sub, abs=1e-12)


def test_dataset_container_and_subset():
    x = np.random.default_rng(0).integers(0, 256, size=(6, 1, 3, 3), dtype=np.uint8)
    ds = from_arrays(x, [0, 1, 2, 0, 1, 2])
    assert len(ds) == 6 and ds.shape == (1, 3, 3)
    sub = ds.subset([5, 0])
    assert len(sub) == 2 and sub.labels.tolist() == [2, 0]
    np.testing.assert_array_equal(sub.images, x[[5, 0]])
    assert sub.images.flags["C_CONTIGUOUS"] and sub.mean == ds.mean and sub.std == ds.std
    assert sub.class_names == ds.class_names and sub.n_classes == 3
    mask = ds.subset(np.array([True, False] * 3))
    assert mask.labels.tolist() == [0, 2, 1]
    assert len(ds.subset(slice(1, 3))) == 2 and len(ds.subset([])) == 0
    with pytest.raises(ValueError, match="length 2"):
        ds.subset(np.array([True, False]))
    assert "n=6" in repr(ds) and "n_classes=3" in repr(ds)


def test_select_classes_keeps_those_images_relabelled_in_the_order_given():
    x = np.arange(8, dtype=np.uint8).reshape(8, 1, 1, 1) * 30
    ds = ImageDataset(x, np.array([0, 1, 2, 3, 0, 1, 2, 3]), "letters", ["a", "b", "c", "d"], 4)
    picked = ds.select_classes(["C", 0])
    assert picked.class_names == ["c", "a"] and picked.n_classes == 2
    assert picked.images.ravel().tolist() == [0, 60, 120, 180] and picked.labels.tolist() == [1, 0, 1, 0]
    assert picked.mean == pytest.approx((90 / 255,))  # the statistics of the images kept


@pytest.mark.parametrize("classes, match", [
    ([0], "at least two classes"), ([0, "a"], "name the same class twice"),
    ([0, 4], r"class 4 is not a label of 'letters' \(labels 0..3\)"),
    ([0, "zebra"], "'zebra' is not a class of 'letters'; its classes: 0 a, 1 b, 2 c, 3 d")])
def test_select_classes_names_a_bad_choice(classes, match):
    ds = ImageDataset(np.zeros((4, 1, 2, 2), np.uint8), np.arange(4), "letters", ["a", "b", "c", "d"], 4)
    with pytest.raises(ValueError, match=match):
        ds.select_classes(classes)
    with pytest.raises(ValueError, match="no labels"):
        from_arrays(np.zeros((4, 1, 2, 2), np.uint8)).select_classes([0, 1])


def test_image_dataset_validation():
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(np.zeros((2, 1, 2, 2), np.float32), None, "x", [], 0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        ImageDataset(np.zeros((2, 1, 2, 2), np.uint8), np.zeros(3, np.int64), "x", [], 0)
    nc = np.zeros((2, 2, 2, 1), np.uint8).transpose(0, 3, 1, 2)
    ds = ImageDataset(nc, np.array([0, 1], np.int32), "x", ["a", "b"], 2)
    assert ds.images.flags["C_CONTIGUOUS"] and ds.labels.dtype == np.int64
    assert ds.mean == (0.0,) and ds.std == (0.0,)


def test_errors_survive_pickling(tmp_path):
    import pickle

    from deepclust.data import DatasetFormatError, DatasetNotFoundError, load_dataset

    with pytest.raises(DatasetNotFoundError) as ei:
        load_dataset("cifar10", root=tmp_path)
    back = pickle.loads(pickle.dumps(ei.value))
    assert str(back) == str(ei.value) and back.filename == ei.value.filename
    assert back.dataset == "cifar10" and back.hint == ei.value.hint
    fe = pickle.loads(pickle.dumps(DatasetFormatError("/x/f.bin", "bad")))
    assert str(fe) == "/x/f.bin: bad" and fe.path == "/x/f.bin"


def test_sample_draws_the_sorted_head_of_a_seeded_permutation():
    x = np.random.default_rng(1).integers(0, 256, size=(50, 1, 2, 2), dtype=np.uint8)
    ds = from_arrays(x, np.arange(50) % 5)
    for n, seed in ((1, 0), (17, 3), (50, 9)):
        expected = sorted(np.random.default_rng(seed).permutation(50)[:n].tolist())
        drawn = ds.sample(n, seed)
        np.testing.assert_array_equal(drawn.images, x[expected])
        assert drawn.labels.tolist() == [i % 5 for i in expected]
        assert drawn.source == {"kind": "arrays", "dataset": None, "subset": n, "subset_seed": seed,
                                "subset_of": 50}
    assert ds.sample(np.int64(4), 2).labels.tolist() == ds.sample(4, 2).labels.tolist()


@pytest.mark.parametrize("n", [0, -3, 51, 2.5, True, "10"])
def test_sample_size_out_of_range_names_value_and_range(n):
    ds = from_arrays(np.zeros((50, 2, 2), np.uint8))
    with pytest.raises(ValueError, match=rf"between 1 and 50 .*'array'.*got {n!r}"):
        ds.sample(n, 0)


def test_source_records_how_images_were_chosen():
    ds = from_arrays(np.zeros((6, 2, 2), np.uint8), [0, 1, 2, 0, 1, 2])
    assert ds.source == {"kind": "arrays", "dataset": None}
    picked = ds.subset([5, 0])
    assert picked.source == {"kind": "indices", "dataset": None, "picked_from": ds.source}
    # a second seeded draw cannot be replayed from one flat record: it stays a hand-picked subset
    twice = ds.sample(4, 0).sample(2, 1)
    assert twice.source["kind"] == "indices" and twice.source["picked_from"]["subset"] == 4
    ds.source["dataset"] = "changed"
    assert picked.source["picked_from"]["dataset"] is None  # records are copies, not shared


def test_parts_follow_the_images_through_subset_and_sample():
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    dataset = ImageDataset(images, None, "toy", [], 0, parts={"first": [0, 1, 2, 3], "rest": np.arange(4, 10)})
    assert dataset.parts["first"].dtype == np.int64
    picked = dataset.subset([9, 2, 5, 0])  # images 9, 2, 5, 0 at positions 0..3
    assert picked.parts["first"].tolist() == [1, 3] and picked.parts["rest"].tolist() == [0, 2]
    mask = dataset.subset(np.arange(10) % 2 == 0)  # images 0, 2, 4, 6, 8
    assert mask.parts["first"].tolist() == [0, 1] and mask.parts["rest"].tolist() == [2, 3, 4]
    sampled = dataset.sample(5, seed=3)  # each image's value is its index in the parent
    originals = sampled.images.ravel().tolist()
    for name, members in sampled.parts.items():
        assert sampled.images[members].ravel().tolist() == [i for i in originals if i in dataset.parts[name]]
    assert ImageDataset(images, None, "toy", [], 0).parts == {}


@pytest.mark.parametrize("members,match", [([[0, 1]], "1-D integer"), ([0.5], "1-D integer"),
                                           ([3, 10], "indices 3..10, outside the 10 images")])
def test_bad_parts_name_the_part(members, match):
    with pytest.raises(ValueError, match=match):
        ImageDataset(np.zeros((10, 1, 1, 1), np.uint8), None, "toy", [], 0, parts={"first": members})


def test_paths_follow_the_images_through_subset_and_sample():
    images = np.arange(6, dtype=np.uint8).reshape(6, 1, 1, 1)
    files = [f"/photos/{i}.jpg" for i in range(6)]
    dataset = ImageDataset(images, None, "photos", [], 0, paths=files)
    assert dataset.paths.tolist() == files
    assert dataset.subset([4, 1]).paths.tolist() == ["/photos/4.jpg", "/photos/1.jpg"]
    sampled = dataset.sample(3, seed=0)
    assert sampled.paths.tolist() == [files[i] for i in sampled.images.ravel()]
    assert ImageDataset(images, None, "toy", [], 0).subset([0]).paths is None
    with pytest.raises(ValueError, match=r"one file path per image, shape \(6,\); got shape \(2,\)"):
        ImageDataset(images, None, "photos", [], 0, paths=files[:2])
