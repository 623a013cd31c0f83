"""IDX files (MNIST / Fashion-MNIST), gzip-compressed or not.

Format (big-endian): 4-byte magic ``0x00 0x00 <type> <ndim>`` with type 0x08 = unsigned byte,
then ``ndim`` uint32 dimension sizes, then ``prod(dims)`` bytes of data in row-major order.
Images: magic 2051 (0x00000803), dims (N, rows, cols). Labels: magic 2049 (0x00000801), (N,).
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from .base import ImageDataset
from .errors import DatasetFormatError, _MissingFile

__all__ = ["read_idx", "load_idx_dataset", "FASHION_MNIST_CLASSES", "MNIST_CLASSES"]

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot"]
MNIST_CLASSES = [str(d) for d in range(10)]

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_bytes(path: Path) -> tuple[bytes, bool]:
    """Whole file content, gunzipped when it starts with the gzip magic. Returns
    ``(data, truncated_gzip)``; a gzip stream cut short returns what could be decompressed."""
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw, False
    parts, rest = [], raw
    try:
        while rest:
            d = zlib.decompressobj(wbits=31)
            parts.append(d.decompress(rest))
            if not d.eof:
                return b"".join(parts), True
            rest = d.unused_data
            if rest and rest[:2] != b"\x1f\x8b":
                break  # trailing garbage after the last member, as gzip tolerates
    except zlib.error as exc:
        raise DatasetFormatError(path, f"corrupt gzip data ({exc})") from None
    return b"".join(parts), False


def read_idx(path, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file with ``ndim`` dimensions; returns a writable uint8 array.

    Raises DatasetFormatError on bad magic, short header, or a payload whose length differs
    from the product of the declared dimensions (bytes expected vs found in the message).
    """
    path = Path(path)
    data, truncated_gz = _read_bytes(path)
    gz_note = " (the gzip stream also ends early: the file is truncated)" if truncated_gz else ""
    expected_magic = 0x0800 + ndim
    kind = {1: "labels", 3: "images"}.get(ndim, f"{ndim}-D")
    if len(data) < 4:
        raise DatasetFormatError(path, f"{len(data)} bytes is too short for an IDX header; "
                                       f"expected at least {4 + 4 * ndim} bytes{gz_note}")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise DatasetFormatError(path, f"bad magic number {magic} (0x{magic:08x}); expected "
                                       f"{expected_magic} (0x{expected_magic:08x}) for IDX "
                                       f"{kind} of unsigned bytes")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetFormatError(path, f"truncated header: expected {header} bytes, found "
                                       f"{len(data)}{gz_note}")
    dims = struct.unpack(">" + "I" * ndim, data[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    found = len(data) - header
    if found != expected or truncated_gz:
        what = "truncated" if found < expected else (
            "too long" if found > expected else "incomplete")
        raise DatasetFormatError(
            path, f"{what}: header declares dims {tuple(dims)} = {expected} bytes of data "
                  f"({header + expected} bytes in all), found {found} bytes of data "
                  f"({len(data)} in all){gz_note}")
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(dims).copy()


def find_idx_file(folder: Path, stem: str) -> Path:
    """``stem`` or ``stem.gz`` in ``folder`` (also the ``train-images.idx3-ubyte`` spelling
    some extracted archives use). Raises _MissingFile naming ``stem.gz``."""
    alt = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", alt, alt + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise _MissingFile(folder / (stem + ".gz"))


def has_idx_files(folder: Path) -> bool:
    try:
        find_idx_file(folder, IDX_FILES["train"][0])
        return True
    except _MissingFile:
        try:
            find_idx_file(folder, IDX_FILES["test"][0])
            return True
        except _MissingFile:
            return False


def _read_split(folder: Path, split: str, size=(28, 28)):
    img_path = find_idx_file(folder, IDX_FILES[split][0])
    lab_path = find_idx_file(folder, IDX_FILES[split][1])
    images = read_idx(img_path, 3)
    labels = read_idx(lab_path, 1)
    if tuple(images.shape[1:]) != tuple(size):
        raise DatasetFormatError(img_path, f"expected {size[0]}x{size[1]} images; header "
                                           f"declares {images.shape[1]}x{images.shape[2]}")
    if len(images) != len(labels):
        raise DatasetFormatError(lab_path, f"holds {len(labels)} labels but {img_path.name} "
                                           f"holds {len(images)} images")
    if len(labels) and labels.max() > 9:
        raise DatasetFormatError(lab_path, f"labels must be 0..9; found {int(labels.max())}")
    return images, labels


def load_idx_dataset(folder, split: str, name: str, class_names) -> ImageDataset:
    """Fashion-MNIST / MNIST from the four IDX files in ``folder``."""
    folder = Path(folder)
    parts = ["train", "test"] if split == "all" else [split]
    read = [_read_split(folder, s) for s in parts]
    images = np.concatenate([r[0] for r in read])[:, None] if len(read) > 1 else read[0][0][:, None]
    labels = np.concatenate([r[1] for r in read]) if len(read) > 1 else read[0][1]
    return ImageDataset(np.ascontiguousarray(images), labels.astype(np.int64), name,
                        list(class_names), len(class_names))
