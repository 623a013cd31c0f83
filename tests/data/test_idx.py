import gzip

import numpy as np
import pytest

from deepclust.data import DatasetFormatError, DatasetNotFoundError, load_dataset


def test_fashion_mnist_splits_gzip(tmp_path, fmt):
    folder = tmp_path / "fm"
    written = fmt.write_idx_dataset(folder, n_train=6, n_test=4)
    tr = load_dataset("fashion-mnist", root=folder, split="train")
    te = load_dataset("fashion-mnist", root=folder, split="test")
    al = load_dataset("fashion-mnist", root=folder)
    assert tr.images.shape == (6, 1, 28, 28) and te.images.shape == (4, 1, 28, 28)
    assert al.images.shape == (10, 1, 28, 28) and al.images.dtype == np.uint8
    assert al.images.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(tr.images[:, 0], written["train"][0])
    np.testing.assert_array_equal(al.images[6:, 0], written["test"][0])
    np.testing.assert_array_equal(al.labels, np.r_[np.arange(6), np.arange(4)])
    assert al.labels.dtype == np.int64
    assert al.n_classes == 10 and al.class_names[0] == "T-shirt/top"
    assert al.class_names[9] == "Ankle boot" and al.name == "fashion-mnist"
    assert al.shape == (1, 28, 28) and len(al) == 10


def test_uncompressed_and_dot_spelling(tmp_path, fmt):
    folder = tmp_path / "raw"
    written = fmt.write_idx_dataset(folder, gz=False)
    ds = load_dataset("mnist", root=folder, split="train")
    np.testing.assert_array_equal(ds.images[:, 0], written["train"][0])
    assert ds.class_names == [str(i) for i in range(10)]
    # some extracted archives spell the files train-images.idx3-ubyte
    for f in folder.iterdir():
        f.rename(folder / f.name.replace("-idx", ".idx"))
    assert len(load_dataset("mnist", root=folder)) == 10


def test_data_root_parent_is_accepted(tmp_path, fmt):
    fmt.write_idx_dataset(tmp_path / "fashion-mnist")
    assert len(load_dataset("fashion-mnist", root=tmp_path)) == 10


def _truncate_payload(folder, name, keep_bytes, fmt):
    """Rewrite `name` (gzip) with a valid gzip stream whose IDX payload is cut short."""
    path = folder / name
    data = gzip.decompress(path.read_bytes())
    with gzip.open(path, "wb") as f:
        f.write(data[:keep_bytes])
    return path


def test_truncated_idx_payload_names_file_and_sizes(tmp_path, fmt):
    folder = tmp_path / "fm"
    fmt.write_idx_dataset(folder, n_train=6)
    path = _truncate_payload(folder, "train-images-idx3-ubyte.gz", 16 + 6 * 784 - 100, fmt)
    with pytest.raises(DatasetFormatError) as ei:
        load_dataset("fashion-mnist", root=folder, split="train")
    msg = str(ei.value)
    assert str(path) in msg and "truncated" in msg
    assert str(6 * 784) in msg and str(6 * 784 - 100) in msg  # expected vs found
    assert ei.value.path == str(path)


def test_truncated_gzip_file(tmp_path, fmt):
    folder = tmp_path / "fm"
    fmt.write_idx_dataset(folder, n_train=6)
    path = folder / "train-images-idx3-ubyte.gz"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])  # cut the compressed file itself
    with pytest.raises(DatasetFormatError) as ei:
        load_dataset("fashion-mnist", root=folder, split="train")
    assert str(path) in str(ei.value) and "truncated" in str(ei.value)


def test_too_long_payload(tmp_path, fmt):
    folder = tmp_path / "fm"
    fmt.write_idx_dataset(folder, gz=False)
    path = folder / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\x00\x00")
    with pytest.raises(DatasetFormatError, match="too long"):
        load_dataset("fashion-mnist", root=folder, split="test")


def test_bad_magic(tmp_path, fmt):
    folder = tmp_path / "fm"
    fmt.write_idx_dataset(folder)
    # a labels file where images are expected: magic 2049 instead of 2051
    fmt.write_idx(folder / "train-images-idx3-ubyte.gz", np.zeros((6, 28, 28)), magic=2049)
    with pytest.raises(DatasetFormatError) as ei:
        load_dataset("fashion-mnist", root=folder, split="train")
    msg = str(ei.value)
    assert "train-images-idx3-ubyte.gz" in msg and "2049" in msg and "2051" in msg


def test_wrong_image_dims_and_count_mismatch(tmp_path, fmt):
    folder = tmp_path / "fm"
    fmt.write_idx_dataset(folder)
    fmt.write_idx(folder / "train-images-idx3-ubyte.gz", np.zeros((6, 32, 32)))
    with pytest.raises(DatasetFormatError, match="28x28"):
        load_dataset("fashion-mnist", root=folder, split="train")
    fmt.write_idx(folder / "train-images-idx3-ubyte.gz", np.zeros((5, 28, 28)))
    with pytest.raises(DatasetFormatError, match="train-labels-idx1-ubyte.gz.*6 labels"):
        load_dataset("fashion-mnist", root=folder, split="train")


def test_label_out_of_range(tmp_path, fmt):
    folder = tmp_path / "fm"
    fmt.write_idx_dataset(folder)
    fmt.write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.array([0, 1, 2, 12]))
    with pytest.raises(DatasetFormatError, match="t10k-labels.*0..9"):
        load_dataset("fashion-mnist", root=folder, split="test")


def test_empty_and_corrupt_gzip(tmp_path, fmt):
    folder = tmp_path / "fm"
    fmt.write_idx_dataset(folder)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"")
    with pytest.raises(DatasetFormatError, match="train-labels.*too short"):
        load_dataset("fashion-mnist", root=folder, split="train")
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b" + b"\xff" * 40)
    with pytest.raises(DatasetFormatError, match="train-labels.*gzip"):
        load_dataset("fashion-mnist", root=folder, split="train")


def test_missing_test_file_names_it(tmp_path, fmt):
    folder = tmp_path / "fm"
    fmt.write_idx_dataset(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    assert len(load_dataset("fashion-mnist", root=folder, split="train")) == 6
    with pytest.raises(DatasetNotFoundError) as ei:
        load_dataset("fashion-mnist", root=folder, split="all")
    assert str(folder / "t10k-labels-idx1-ubyte.gz") in str(ei.value)
    assert "apt-get install dataset-fashion-mnist" in str(ei.value)
