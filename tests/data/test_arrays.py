import numpy as np
import pytest

from deepclust.data import DatasetFormatError, DatasetNotFoundError, from_arrays, load_dataset


def test_from_arrays_layouts_and_scaling():
    x = np.random.default_rng(0).integers(0, 256, size=(4, 3, 5, 6), dtype=np.uint8)
    ds = from_arrays(x)
    np.testing.assert_array_equal(ds.images, x)
    assert ds.labels is None and ds.n_classes == 0 and ds.name == "array"
    # (N, H, W) gets a channel axis; (N, H, W, C) is moved to (N, C, H, W)
    assert from_arrays(x[:, 0]).images.shape == (4, 1, 5, 6)
    nhwc = from_arrays(x.transpose(0, 2, 3, 1)).images
    np.testing.assert_array_equal(nhwc, x)
    # floats in [0, 1] are scaled by 255; floats in [0, 255] are kept (rounded)
    f01 = from_arrays(np.array([[[0.0, 0.5, 1.0]]])).images
    assert f01.tolist() == [[[[0, 128, 255]]]]
    f255 = from_arrays(np.array([[[0.0, 12.4, 254.6]]], dtype=np.float32)).images
    assert f255.tolist() == [[[[0, 12, 255]]]] and f255.dtype == np.uint8
    assert from_arrays(np.array([[[3, 200]]], dtype=np.int64)).images.dtype == np.uint8
    assert from_arrays(x.tolist()).images.shape == x.shape  # nested lists


def test_from_arrays_labels():
    x = np.zeros((5, 1, 2, 2), np.uint8)
    ds = from_arrays(x, [2, 0, 2, -1, 0], name="mine")
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == [2, 0, 2, -1, 0]
    assert ds.n_classes == 2 and ds.class_names == ["0", "2"] and ds.name == "mine"
    s = from_arrays(x, np.array(["b", "a", "b", "c", "a"]))
    assert s.labels.tolist() == [1, 0, 1, 2, 0] and s.class_names == ["a", "b", "c"]
    assert from_arrays(x, np.array([1.0, 0, 1, 0, 1])).labels.dtype == np.int64


@pytest.mark.parametrize("x, match", [
    (np.zeros((0, 3, 4, 4), np.uint8), r"empty.*\(0, 3, 4, 4\)"),
    (np.zeros((2, 3, 0, 4), np.uint8), "empty"),
    (np.zeros((4, 4), np.uint8), r"3-D.*4-D.*\(4, 4\)"),
    (np.zeros((1, 2, 3, 4, 5), np.uint8), "5-D"),
    (np.zeros((2, 5, 8, 8), np.uint8), r"1 or 3 channels.*\(2, 5, 8, 8\)"),
    (np.array([[[0.0, np.nan, np.inf]]]), "2 non-finite values.*1 NaN"),
    (np.array([[[-0.5, 1.0]]]), r"\[0, 1\] or \[0, 255\].*\[-0.5, 1\]"),
    (np.array([[[0.0, 300.0]]]), r"observed range \[0, 300\]"),
    (np.array([[[0, 256]]]), r"\[0, 255\].*\[0, 256\]"),
    (np.array([[[True, False]]]), "dtype bool"),
    (np.array([[["a"]]]), "dtype"),
])
def test_from_arrays_bad_x(x, match):
    with pytest.raises(ValueError, match=match):
        from_arrays(x)


@pytest.mark.parametrize("y, match", [
    ([0, 1], "2 labels but there are 3 images"),
    ([[0, 1, 2]], r"1-D.*\(1, 3\)"),
    ([0, -2, 1], "-1 for unknown"),
    ([0.5, 1, 2], "non-integral"),
    ([np.nan, 1, 2], "non-finite"),
])
def test_from_arrays_bad_y(y, match):
    with pytest.raises(ValueError, match=match):
        from_arrays(np.zeros((3, 2, 2), np.uint8), y)


def test_npz_file(tmp_path):
    x = np.random.default_rng(1).random((6, 8, 8, 3)).astype(np.float32)  # NHWC in [0, 1]
    path = tmp_path / "toy.npz"
    np.savez(path, x=x, y=np.array([0, 1, 2, 0, 1, 2]), class_names=np.array(["a", "b", "c"]))
    ds = load_dataset("npz", root=path)
    assert ds.images.shape == (6, 3, 8, 8) and ds.name == "toy"
    np.testing.assert_array_equal(ds.images, np.rint(x.transpose(0, 3, 1, 2) * 255))
    assert ds.class_names == ["a", "b", "c"] and ds.n_classes == 3
    only_x = tmp_path / "only.npz"
    np.savez(only_x, x=np.zeros((2, 4, 4), np.uint8))
    u = load_dataset("npz", path=only_x)
    assert u.labels is None and u.images.shape == (2, 1, 4, 4)


def test_npz_errors(tmp_path):
    nan = tmp_path / "nan.npz"
    x = np.zeros((2, 1, 4, 4))
    x[0, 0, 0, :3] = np.nan
    np.savez(nan, x=x)
    with pytest.raises(DatasetFormatError) as ei:
        load_dataset("npz", root=nan)
    assert str(nan) in str(ei.value) and "3 non-finite" in str(ei.value)
    mism = tmp_path / "mism.npz"
    np.savez(mism, x=np.zeros((3, 4, 4), np.uint8), y=np.array([0, 1]))
    with pytest.raises(DatasetFormatError, match="mism.npz.*2 labels but there are 3 images"):
        load_dataset("npz", root=mism)
    nox = tmp_path / "nox.npz"
    np.savez(nox, images2=np.zeros(3))
    with pytest.raises(DatasetFormatError, match=r"nox.npz.*'x'.*\['images2'\]"):
        load_dataset("npz", root=nox)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DatasetFormatError, match="junk.npz"):
        load_dataset("npz", root=junk)
    with pytest.raises(DatasetNotFoundError, match="missing.npz"):
        load_dataset("npz", root=tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="needs root"):
        load_dataset("npz")


def test_npy_instead_of_npz(tmp_path):
    p = tmp_path / "plain.npz"
    with open(p, "wb") as f:
        np.save(f, np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(DatasetFormatError, match=r"plain.npz.*single .npy array.*\(2, 4, 4\)"):
        load_dataset("npz", root=p)


def test_object_labels_are_numbers_when_they_can_be():
    x = np.zeros((3, 2, 2), np.uint8)
    assert from_arrays(x, np.array([2, 0, 2], dtype=object)).labels.tolist() == [2, 0, 2]
    assert from_arrays(x, np.array(["b", 1, "b"], dtype=object)).class_names == ["1", "b"]


def test_scale_to_uint8_per_column_between_bounds():
    from deepclust.data.arrays import scale_to_uint8

    values = np.array([[0.0, 10.0], [2.0, 20.0], [4.0, 30.0], [8.0, 0.0]])
    scaled = scale_to_uint8(values, np.array([0.0, 10.0]), np.array([4.0, 30.0]))
    # 2 of 0..4 -> 127.5 -> 128 (round half to even: 128); 20 of 10..30 -> 128; beyond the bounds clipped
    assert scaled.dtype == np.uint8 and scaled.tolist() == [[0, 0], [128, 128], [255, 255], [255, 0]]


def test_float_images_out_of_range_point_to_feature_vectors():
    with pytest.raises(ValueError, match=r"for images; observed range \[-2, 3\].*2-D \(N, D\) array"):
        from_arrays(np.array([[[-2.0, 3.0]]]))
