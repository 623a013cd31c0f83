import numpy as np
import pytest

from deepclust.data import DatasetFormatError, DatasetNotFoundError, DatasetTooLargeError, load_dataset, load_source
from deepclust.data import folder


def _solid(h, w, rgb):
    return np.broadcast_to(np.asarray(rgb, np.uint8), (h, w, 3)).copy()


def test_class_subfolders_sorted_recursive(tmp_path, fmt):
    root = tmp_path / "pets"
    fmt.write_png(root / "dog" / "a.png", _solid(20, 30, (0, 255, 0)))
    fmt.write_png(root / "dog" / "deeper" / "b.PNG", _solid(8, 8, (0, 255, 0)))
    fmt.write_png(root / "cat" / "c.png", _solid(12, 12, (255, 0, 0)))
    (root / "cat" / "notes.txt").write_text("not an image")
    fmt.write_png(root / ".hidden" / "x.png", _solid(4, 4, (1, 1, 1)))
    ds = load_dataset("image-folder", root=root, image_size=16)
    assert ds.images.shape == (3, 3, 16, 16) and ds.images.dtype == np.uint8
    assert ds.class_names == ["cat", "dog"] and ds.n_classes == 2
    assert ds.labels.tolist() == [0, 1, 1] and ds.name == "pets"
    assert (ds.images[0, 0] == 255).all() and (ds.images[0, 1:] == 0).all()   # red cat
    assert (ds.images[1:, 1] == 255).all() and (ds.images[1:, [0, 2]] == 0).all()
    assert ds.mean == pytest.approx((1 / 3, 2 / 3, 0.0))


def test_flat_folder_unlabelled_and_grayscale(tmp_path, fmt):
    root = tmp_path / "flat"
    for i in range(3):
        fmt.write_png(root / f"{i}.png", _solid(10, 10, (i * 50, i * 50, i * 50)))
    ds = load_dataset("image-folder", root=root, channels=1, image_size=5)
    assert ds.images.shape == (3, 1, 5, 5) and ds.labels is None and ds.n_classes == 0
    assert ds.images[2].max() == 100 and ds.class_names == []
    # default: 96 px, but these 10 px images are not upsampled in memory
    assert load_dataset("image-folder", root=root).images.shape == (3, 3, 10, 10)


def test_center_crop_option(tmp_path, fmt):
    img = np.zeros((10, 30, 3), np.uint8)
    img[:, 10:20] = 255  # white central square of a wide image
    fmt.write_png(tmp_path / "f" / "a.png", img)
    cropped = load_dataset("image-folder", root=tmp_path / "f", image_size=10, crop=True)
    assert (cropped.images == 255).all()
    stretched = load_dataset("image-folder", root=tmp_path / "f", image_size=10)
    assert stretched.images[0, 0, 5, 0] == 0


def test_unreadable_image_raise_and_skip(tmp_path, fmt):
    root = tmp_path / "imgs"
    fmt.write_png(root / "a" / "ok.png", _solid(8, 8, (9, 9, 9)))
    fmt.write_png(root / "b" / "ok.png", _solid(8, 8, (9, 9, 9)))
    bad = root / "b" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    bad2 = root / "a" / "empty.png"
    bad2.write_bytes(b"")
    with pytest.raises(DatasetFormatError) as ei:
        load_dataset("image-folder", root=root, image_size=8)
    assert str(bad2) in str(ei.value)  # the first bad file in load order
    with pytest.warns(RuntimeWarning) as record:
        ds = load_dataset("image-folder", root=root, image_size=8, on_error="skip")
    messages = [str(w.message) for w in record]
    assert len(messages) == 2
    assert str(bad2) in messages[0] and str(bad) in messages[1]
    assert len(ds) == 2 and ds.labels.tolist() == [0, 1] and ds.n_classes == 2
    with pytest.raises(ValueError, match="on_error"):
        load_dataset("image-folder", root=root, on_error="ignore")


def test_truncated_png(tmp_path, fmt):
    root = tmp_path / "imgs"
    p = fmt.write_png(root / "x.png", np.random.default_rng(0).integers(0, 255, (64, 64, 3)))
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(DatasetFormatError, match="x.png"):
        load_dataset("image-folder", root=root, image_size=8)


def test_folder_errors(tmp_path, fmt):
    with pytest.raises(DatasetNotFoundError, match="nope"):
        load_dataset("image-folder", root=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="no image files"):
        load_dataset("image-folder", root=tmp_path / "empty")
    fmt.write_png(tmp_path / "c" / "a" / "1.png", _solid(4, 4, (0, 0, 0)))
    (tmp_path / "c" / "b").mkdir()
    with pytest.raises(DatasetFormatError, match=r"without any image.*\['b'\]"):
        load_dataset("image-folder", root=tmp_path / "c")
    with pytest.raises(ValueError, match="needs root"):
        load_dataset("image-folder")
    with pytest.raises(ValueError, match="image_size"):
        load_dataset("image-folder", root=tmp_path / "c", image_size=0)
    with pytest.raises(ValueError, match="channels"):
        load_dataset("image-folder", root=tmp_path / "c", channels=2)


def test_imagenet10_with_train_subfolder(tmp_path, fmt, monkeypatch):
    data_root = tmp_path / "data"
    base = data_root / "imagenet-10" / "train"
    for k, wnid in enumerate(["n02056570", "n01440764"]):
        for i in range(2):
            fmt.write_png(base / wnid / f"{wnid}_{i}.JPEG", _solid(40, 50, (k * 200, 0, 0)))
    monkeypatch.setenv("DEEPCLUST_DATA_ROOT", str(data_root))
    ds = load_dataset("imagenet10")
    assert ds.images.shape == (4, 3, 40, 40) and ds.name == "imagenet10"  # the images' own short side < 96
    assert ds.class_names == ["n01440764", "n02056570"] and ds.labels.tolist() == [0, 0, 1, 1]
    assert (ds.images[:2, 0] == 200).all() and (ds.images[2:, 0] == 0).all()
    dogs = tmp_path / "dogs"
    fmt.write_png(dogs / "n02085936" / "a.png", _solid(5, 5, (1, 2, 3)))
    d = load_dataset("imagenet-dogs", root=dogs, image_size=32)
    assert d.images.shape == (1, 3, 32, 32) and d.name == "imagenet-dogs"
    with pytest.raises(ValueError, match="valid splits: all, train"):
        load_dataset("imagenet-dogs", root=dogs, split="test")


def _tiny_tree(root, fmt):
    wnids = ["n02", "n01", "n03"]
    (root).mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\tEuropean fire "
                                    "salamander, Salamandra salamandra\nn99\tother\n")
    for k, w in enumerate(sorted(wnids)):
        for i in range(2):
            fmt.write_png(root / "train" / w / "images" / f"{w}_{i}.JPEG",
                          _solid(64, 64, (k * 100, 0, 0)))
        (root / "train" / w / f"{w}_boxes.txt").write_text("")
    ann = []
    for i, w in enumerate(["n03", "n01", "n02"]):
        gray = np.full((64, 64), 7 + i, np.uint8)
        from PIL import Image
        (root / "val" / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(gray).save(root / "val" / "images" / f"val_{i}.JPEG", format="PNG")
        ann.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(ann) + "\n")


def test_tiny_imagenet_layout(tmp_path, fmt):
    root = tmp_path / "tiny-imagenet-200"
    _tiny_tree(root, fmt)
    tr = load_dataset("tiny-imagenet", root=tmp_path, split="train")
    assert tr.images.shape == (6, 3, 64, 64) and tr.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert tr.class_names == ["goldfish", "European fire salamander", "n03"]
    assert tr.n_classes == 3 and (tr.images[4, 0] == 200).all()
    te = load_dataset("tiny-imagenet", root=root, split="test")
    assert te.labels.tolist() == [2, 0, 1] and te.images.shape == (3, 3, 64, 64)
    assert (te.images[1] == 8).all()  # grayscale converted to RGB
    al = load_dataset("tiny-imagenet", root=root, image_size=32)
    assert al.images.shape == (9, 3, 32, 32)
    np.testing.assert_array_equal(al.labels, tr.labels.tolist() + te.labels.tolist())


def test_tiny_imagenet_errors(tmp_path, fmt):
    root = tmp_path / "tiny"
    _tiny_tree(root, fmt)
    ann = root / "val" / "val_annotations.txt"
    ann.write_text("val_0.JPEG\tn77\t0\t0\t1\t1\n")
    with pytest.raises(DatasetFormatError, match="val_annotations.txt.*line 1.*n77"):
        load_dataset("tiny-imagenet", root=root, split="test")
    ann.write_text("val_0.JPEG n01\n")
    with pytest.raises(DatasetFormatError, match="val_annotations.txt.*tab-separated"):
        load_dataset("tiny-imagenet", root=root, split="test")
    ann.write_text("val_9.JPEG\tn01\t0\t0\t1\t1\n")
    with pytest.raises(DatasetNotFoundError, match="val_9.JPEG"):
        load_dataset("tiny-imagenet", root=root, split="test")
    ann.unlink()
    with pytest.raises(DatasetNotFoundError, match="val_annotations.txt"):
        load_dataset("tiny-imagenet", root=root, split="test")


# --- the stored side and the memory it takes -----------------------------------------------------
def _dogs(tmp_path, fmt, sizes=((300, 260), (280, 240), (250, 250))):
    """An ImageNet-Dogs-like train folder: two classes, images of the given (width, height)."""
    root = tmp_path / "imagenet-dogs" / "train"
    for k, (w, h) in enumerate(sizes):
        fmt.write_png(root / f"n0208{k % 2}" / f"{k}.JPEG", _solid(h, w, (k * 80, 0, 0)))
    return tmp_path


def test_stored_side_serves_the_training_size_unless_image_size_is_given(tmp_path, fmt):
    data_root = _dogs(tmp_path, fmt)
    assert load_dataset("imagenet-dogs", root=data_root, training_size=224).shape == (3, 224, 224)
    assert load_dataset("imagenet-dogs", root=data_root, training_size=160).shape == (3, 160, 160)
    assert load_dataset("imagenet-dogs", root=data_root).shape == (3, 96, 96)  # no training size: 96
    assert load_dataset("imagenet-dogs", root=data_root, training_size=224, image_size=128).shape == (3, 128, 128)
    # larger than every image: the largest short side, the images are not upsampled in memory
    assert load_dataset("imagenet-dogs", root=data_root, training_size=512).shape == (3, 260, 260)
    assert folder.stored_side([str(p) for p in sorted((data_root / "imagenet-dogs").rglob("*.JPEG"))], 512) == 260


def test_tiny_imagenet_is_stored_at_its_own_64_px(tmp_path, fmt):
    root = tmp_path / "tiny-imagenet-200"
    _tiny_tree(root, fmt)
    assert load_dataset("tiny-imagenet", root=root, training_size=224).shape == (3, 64, 64)
    assert load_dataset("tiny-imagenet", root=root, training_size=32).shape == (3, 32, 32)


def test_the_stored_side_is_recorded_for_load_source(tmp_path, fmt):
    dataset = load_dataset("imagenet-dogs", root=_dogs(tmp_path, fmt), training_size=224)
    assert dataset.source["options"]["image_size"] == 224
    assert load_source(dataset.source).shape == (3, 224, 224)


def test_the_memory_the_images_take_is_printed_before_decoding(tmp_path, fmt, capsys):
    load_dataset("imagenet-dogs", root=_dogs(tmp_path, fmt), training_size=224)
    # 3 images × 3 × 224 × 224 bytes = 451,584 bytes
    assert "imagenet-dogs: 3 images of 3x224x224 px take 0.5 MB in memory" in capsys.readouterr().err


def test_images_that_do_not_fit_in_memory_are_refused_with_the_figures(tmp_path, fmt, monkeypatch):
    data_root = _dogs(tmp_path, fmt)
    monkeypatch.setattr(folder, "available_memory", lambda: 300_000)
    with pytest.raises(DatasetTooLargeError, match=r"3 images of 3x224x224 px need 0.5 MB of memory, but 0.3 MB "
                                                   r"are available; .*image_size .*check_memory=false") as error:
        load_dataset("imagenet-dogs", root=data_root, training_size=224)
    assert (error.value.needed, error.value.available) == (3 * 3 * 224 * 224, 300_000)
    assert load_dataset("imagenet-dogs", root=data_root, training_size=224, image_size=128).shape == (3, 128, 128)
    assert load_dataset("imagenet-dogs", root=data_root, training_size=224, check_memory=False).shape == (3, 224, 224)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # under torchrun each process holds the images
    monkeypatch.setattr(folder, "available_memory", lambda: 200_000)
    with pytest.raises(DatasetTooLargeError, match="in each of 2 processes") as error:
        load_dataset("imagenet-dogs", root=data_root, training_size=128)
    assert error.value.needed == 2 * 3 * 3 * 128 * 128


def test_available_memory_reads_a_positive_number():
    available = folder.available_memory()
    assert available is None or available > 0


def test_the_imagenet_dogs_figure(monkeypatch, capsys):
    """19,500 images × 3 × 224 × 224 bytes = 2.94 GB; refused with 2 GB available."""
    monkeypatch.setattr(folder, "available_memory", lambda: 2 * 10**9)
    with pytest.raises(DatasetTooLargeError, match="need 2.94 GB of memory, but 2.00 GB are available"):
        folder._reserve_memory("imagenet-dogs", 19_500, 3, 224, check=True)
    assert "imagenet-dogs: 19,500 images of 3x224x224 px take 2.94 GB in memory" in capsys.readouterr().err


def test_the_files_of_the_images_are_kept(tmp_path, fmt):
    root = tmp_path / "pets"
    fmt.write_png(root / "dog" / "a.png", _solid(8, 8, (0, 255, 0)))
    fmt.write_png(root / "cat" / "b.png", _solid(8, 8, (255, 0, 0)))
    (root / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.warns(RuntimeWarning, match="skipping unreadable image"):
        ds = load_dataset("image-folder", root=root, image_size=4, on_error="skip")
    assert ds.paths.tolist() == [str(root / "cat" / "b.png"), str(root / "dog" / "a.png")]  # the broken one dropped
    assert ds.subset([1]).paths.tolist() == [str(root / "dog" / "a.png")]
    flat = tmp_path / "flat"
    fmt.write_png(flat / "x.png", _solid(8, 8, (9, 9, 9)))
    assert load_dataset("image-folder", root=flat, image_size=4).paths.tolist() == [str(flat / "x.png")]
