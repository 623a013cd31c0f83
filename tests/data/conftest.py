"""Isolation and writers of tiny files in the official dataset formats."""
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
from support import idx_bytes, write_idx, write_idx_dataset


@pytest.fixture(autouse=True)
def _isolated_data_env(tmp_path, monkeypatch):
    """No test may see the user's data root or home folder."""
    monkeypatch.delenv("DEEPCLUST_DATA_ROOT", raising=False)
    home = tmp_path / "_home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))


# ---------------------------------------------------------------- CIFAR python pickles
def _dump_py2_style(obj, path):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(folder, batch_sizes=(2, 1, 1, 1, 1), n_test=2, seed=0):
    """Returns the images (N,3,32,32) and labels written, train batches then test."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
             b"ship", b"truck"]
    _dump_py2_style({b"label_names": names, b"num_cases_per_batch": 10000, b"num_vis": 3072},
                    folder / "batches.meta")
    images, labels = [], []
    files = [f"data_batch_{i + 1}" for i in range(5)] + ["test_batch"]
    for fname, n in zip(files, list(batch_sizes) + [n_test]):
        x = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, size=n)]
        _dump_py2_style({b"batch_label": fname.encode(), b"labels": y,
                         b"data": x.reshape(n, 3072),
                         b"filenames": [b"img%d.png" % i for i in range(n)]}, folder / fname)
        images.append(x)
        labels.extend(y)
    return np.concatenate(images), np.asarray(labels)


def write_cifar100(folder, n_train=5, n_test=3, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    fine = [f"fine{i}".encode() for i in range(100)]
    coarse = [f"coarse{i}".encode() for i in range(20)]
    _dump_py2_style({b"fine_label_names": fine, b"coarse_label_names": coarse}, folder / "meta")
    out = {}
    for fname, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        f = [int(v) for v in rng.integers(0, 100, size=n)]
        c = [v // 5 for v in f]
        _dump_py2_style({b"data": x.reshape(n, 3072), b"fine_labels": f, b"coarse_labels": c,
                         b"filenames": [b"x"] * n, b"batch_label": fname.encode()},
                        folder / fname)
        out[fname] = (x, np.asarray(f), np.asarray(c))
    return out


# ---------------------------------------------------------------- STL-10 binary
def stl_image_bytes(img):
    """One (3, 96, 96) image in STL-10's column-major layout, written with explicit loops:
    the row index h varies fastest, then the column w, then the channel c."""
    out = bytearray()
    for c in range(3):
        for w in range(96):
            out.extend(int(img[c, h, w]) for h in range(96))
    return bytes(out)


def write_stl10(folder, n_train=2, n_test=3, n_unl=2, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")
    out = {}
    for split, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unl)):
        x = rng.integers(0, 256, size=(n, 3, 96, 96), dtype=np.uint8)
        (folder / f"{split}_X.bin").write_bytes(b"".join(stl_image_bytes(i) for i in x))
        y = None
        if split != "unlabeled":
            y = (np.arange(n) % 10) + 1  # labels 1..10 on disk
            (folder / f"{split}_y.bin").write_bytes(bytes(int(v) for v in y))
        out[split] = (x, y)
    return out


# ---------------------------------------------------------------- image folders
def write_png(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def fmt():
    return SimpleNamespace(idx_bytes=idx_bytes, write_idx=write_idx,
                           write_idx_dataset=write_idx_dataset, write_cifar10=write_cifar10,
                           write_cifar100=write_cifar100, write_stl10=write_stl10,
                           stl_image_bytes=stl_image_bytes, write_png=write_png)
