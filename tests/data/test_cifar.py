import os
import pickle

import numpy as np
import pytest

from deepclust.data import DatasetFormatError, DatasetNotFoundError, load_dataset


def test_cifar10_batches_and_splits(tmp_path, fmt):
    folder = tmp_path / "cifar-10-batches-py"
    images, labels = fmt.write_cifar10(folder, batch_sizes=(2, 1, 1, 1, 1), n_test=2)
    al = load_dataset("cifar10", root=folder)
    assert al.images.shape == (8, 3, 32, 32) and al.images.dtype == np.uint8
    np.testing.assert_array_equal(al.images, images)
    np.testing.assert_array_equal(al.labels, labels)
    assert al.labels.dtype == np.int64
    assert al.n_classes == 10 and al.class_names[:2] == ["airplane", "automobile"]
    tr = load_dataset("cifar10", root=folder, split="train")
    te = load_dataset("cifar10", root=folder, split="test")
    assert len(tr) == 6 and len(te) == 2
    np.testing.assert_array_equal(te.images, images[6:])


def test_cifar10_row_layout_is_rgb_planes(tmp_path, fmt):
    """A row is 1024 red, 1024 green, 1024 blue values, each plane row-major."""
    folder = tmp_path / "c10"
    fmt.write_cifar10(folder)
    row = np.zeros(3072, dtype=np.uint8)
    row[:1024], row[1024:2048], row[2048:] = 10, 20, 30
    row[1] = 200        # red plane, row 0, column 1
    row[32] = 201       # red plane, row 1, column 0
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": row[None], b"labels": [3]}, f, protocol=2)
    img = load_dataset("cifar10", root=folder, split="test").images[0]
    assert img[1, 5, 5] == 20 and img[2, 31, 31] == 30
    assert img[0, 0, 1] == 200 and img[0, 1, 0] == 201 and img[0, 0, 0] == 10


def test_cifar10_py3_pickle_with_str_keys(tmp_path, fmt):
    folder = tmp_path / "c10"
    fmt.write_cifar10(folder)
    x = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": x, "labels": np.array([1, 2])}, f, protocol=5)
    ds = load_dataset("cifar10", root=folder, split="test")
    np.testing.assert_array_equal(ds.images.reshape(2, -1), x)
    np.testing.assert_array_equal(ds.labels, [1, 2])


def test_cifar100_coarse_and_fine(tmp_path, fmt):
    folder = tmp_path / "cifar-100-python"
    w = fmt.write_cifar100(folder, n_train=5, n_test=3)
    coarse = load_dataset("cifar100", root=folder)
    assert coarse.images.shape == (8, 3, 32, 32)
    assert coarse.n_classes == 20 and coarse.class_names[19] == "coarse19"
    np.testing.assert_array_equal(coarse.labels, np.r_[w["train"][2], w["test"][2]])
    fine = load_dataset("cifar100", root=folder, split="test", label_level="fine")
    assert fine.n_classes == 100 and len(fine.class_names) == 100
    np.testing.assert_array_equal(fine.labels, w["test"][1])
    np.testing.assert_array_equal(fine.images, w["test"][0])
    assert len(load_dataset("cifar20", root=folder, split="train")) == 5  # alias, coarse
    with pytest.raises(ValueError, match="label_level"):
        load_dataset("cifar100", root=folder, label_level="super")


def test_corrupt_pickle_names_file(tmp_path, fmt):
    folder = tmp_path / "c10"
    fmt.write_cifar10(folder)
    path = folder / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])  # truncated pickle -> EOFError inside
    with pytest.raises(DatasetFormatError) as ei:
        load_dataset("cifar10", root=folder)
    assert str(path) in str(ei.value)
    path.write_bytes(b"this is not a pickle")
    with pytest.raises(DatasetFormatError, match="data_batch_3"):
        load_dataset("cifar10", root=folder)


def test_pickle_with_foreign_global_is_refused(tmp_path, fmt):
    folder = tmp_path / "c10"
    fmt.write_cifar10(folder)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f, protocol=2)
    with pytest.raises(DatasetFormatError, match="test_batch.*refusing"):
        load_dataset("cifar10", root=folder, split="test")
    assert not (tmp_path / "pwned").exists()


def test_wrong_keys_and_sizes(tmp_path, fmt):
    folder = tmp_path / "c10"
    fmt.write_cifar10(folder)
    path = folder / "test_batch"
    with open(path, "wb") as f:
        pickle.dump({b"pixels": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DatasetFormatError, match="test_batch.*missing key 'data'"):
        load_dataset("cifar10", root=folder, split="test")
    with open(path, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DatasetFormatError, match=r"test_batch.*\(n, 3072\).*\(2, 1024\)"):
        load_dataset("cifar10", root=folder, split="test")
    with open(path, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, f)
    with pytest.raises(DatasetFormatError, match="test_batch.*1 entries.*2 rows"):
        load_dataset("cifar10", root=folder, split="test")
    with open(path, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, f)
    with pytest.raises(DatasetFormatError, match=r"0\.\.9"):
        load_dataset("cifar10", root=folder, split="test")
    with open(path, "wb") as f:
        pickle.dump([1, 2, 3], f)
    with pytest.raises(DatasetFormatError, match="dict"):
        load_dataset("cifar10", root=folder, split="test")
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"a", b"b"]}, f)
    with pytest.raises(DatasetFormatError, match="batches.meta.*10 names.*found 2"):
        load_dataset("cifar10", root=folder, split="train")


def test_missing_batch_file(tmp_path, fmt):
    folder = tmp_path / "c100"
    fmt.write_cifar100(folder)
    (folder / "meta").unlink()
    with pytest.raises(DatasetNotFoundError) as ei:
        load_dataset("cifar100", root=folder)
    assert str(folder / "meta") in str(ei.value)
    assert "cifar-100-python.tar.gz" in str(ei.value)
    assert ei.value.filename == str(folder / "meta")
