import numpy as np
import pytest

from deepclust.data import DatasetFormatError, DatasetNotFoundError, load_dataset


def test_column_major_layout_is_transposed(tmp_path, fmt):
    """An image whose top 10 rows are white and left 3 columns are grey must come back with
    the bright band at the top (not on the left)."""
    folder = tmp_path / "stl10_binary"
    fmt.write_stl10(folder)
    img = np.zeros((3, 96, 96), dtype=np.uint8)
    img[:, :10, :] = 255
    img[:, 10:, :3] = 100
    img[1, 50, 70] = 7  # row 50, column 70 of the green channel
    (folder / "test_X.bin").write_bytes(fmt.stl_image_bytes(img))
    (folder / "test_y.bin").write_bytes(bytes([4]))
    ds = load_dataset("stl10", root=folder, split="test")
    got = ds.images[0]
    assert (got[:, :10, :] == 255).all() and (got[:, 10:, :3] == 100).all()
    assert got[1, 50, 70] == 7 and got[1, 70, 50] == 0
    assert ds.labels.tolist() == [3]


def test_splits_labels_and_names(tmp_path, fmt):
    folder = tmp_path / "stl10_binary"
    w = fmt.write_stl10(folder, n_train=2, n_test=3, n_unl=2)
    al = load_dataset("stl10", root=folder)
    assert al.images.shape == (5, 3, 96, 96) and al.images.dtype == np.uint8
    np.testing.assert_array_equal(al.images, np.concatenate([w["train"][0], w["test"][0]]))
    np.testing.assert_array_equal(al.labels, np.r_[w["train"][1], w["test"][1]] - 1)
    assert al.n_classes == 10 and al.class_names[7] == "monkey"
    assert len(load_dataset("stl10", root=folder, split="train")) == 2
    withu = load_dataset("stl10", root=folder, include_unlabeled=True)
    assert len(withu) == 7 and withu.labels[-2:].tolist() == [-1, -1]
    np.testing.assert_array_equal(withu.images[5:], w["unlabeled"][0])
    unl = load_dataset("stl10", root=folder, split="unlabeled")
    assert len(unl) == 2 and unl.labels is None and unl.n_classes == 0
    np.testing.assert_array_equal(unl.images, w["unlabeled"][0])


def test_parts_name_the_images_of_each_split(tmp_path, fmt):
    folder = tmp_path / "stl10_binary"
    fmt.write_stl10(folder, n_train=2, n_test=3, n_unl=4)
    parts = load_dataset("stl10", root=folder, include_unlabeled=True).parts
    assert {name: members.tolist() for name, members in parts.items()} == {
        "train": [0, 1], "test": [2, 3, 4], "unlabeled": [5, 6, 7, 8]}
    assert set(load_dataset("stl10", root=folder).parts) == {"train", "test"}
    assert load_dataset("stl10", root=folder, split="unlabeled").parts["unlabeled"].tolist() == [0, 1, 2, 3]


def test_bad_sizes_and_labels(tmp_path, fmt):
    folder = tmp_path / "stl"
    fmt.write_stl10(folder)
    x = folder / "train_X.bin"
    x.write_bytes(x.read_bytes()[:-5])
    with pytest.raises(DatasetFormatError, match="train_X.bin.*multiple of 27648"):
        load_dataset("stl10", root=folder, split="train")
    fmt.write_stl10(folder)
    (folder / "train_y.bin").write_bytes(bytes([1, 2, 3]))
    with pytest.raises(DatasetFormatError, match="train_y.bin.*expected 2 bytes.*found 3"):
        load_dataset("stl10", root=folder, split="train")
    (folder / "train_y.bin").write_bytes(bytes([0, 11]))
    with pytest.raises(DatasetFormatError, match=r"train_y.bin.*1\.\.10"):
        load_dataset("stl10", root=folder, split="train")
    fmt.write_stl10(folder)
    (folder / "class_names.txt").write_text("a\nb\n")
    with pytest.raises(DatasetFormatError, match="class_names.txt.*10 class names"):
        load_dataset("stl10", root=folder, split="train")


def test_missing_unlabeled_file(tmp_path, fmt):
    folder = tmp_path / "stl"
    fmt.write_stl10(folder)
    (folder / "unlabeled_X.bin").unlink()
    assert len(load_dataset("stl10", root=folder)) == 5
    with pytest.raises(DatasetNotFoundError) as ei:
        load_dataset("stl10", root=folder, split="unlabeled")
    assert str(folder / "unlabeled_X.bin") in str(ei.value)
    assert "stl10_binary.tar.gz" in str(ei.value)
