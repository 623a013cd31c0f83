"""Image folders decoded with PIL: generic class-per-sub-folder / flat folders, ImageNet-10,
ImageNet-Dogs (class sub-folders, optionally under ``train/``) and Tiny-ImageNet (official
``tiny-imagenet-200`` layout)."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .base import ImageDataset
from .errors import DatasetFormatError, DatasetNotFoundError, _MissingFile

__all__ = ["IMAGE_EXTENSIONS", "load_image_folder", "load_imagenet_subset", "load_tiny_imagenet",
           "read_images", "scan_image_folder"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _visible(name: str) -> bool:
    return not name.startswith(".") and name != "__MACOSX"


def _check_image_options(image_size, channels, on_error):
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) \
            or image_size < 1:
        raise ValueError(f"image_size must be a positive integer; got {image_size!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB); got {channels!r}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip'; got {on_error!r}")


def _decode(path: str, size: int, mode: str, crop: bool) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert(mode)  # forces a full decode: truncated files fail here
        if crop:
            w, h = im.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            im = im.crop((left, top, left + side, top + side))
        if im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        arr = np.asarray(im, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def read_images(paths, image_size: int, channels: int = 3, on_error: str = "raise",
                crop: bool = False):
    """Decode ``paths`` into a uint8 (N, C, S, S) array, preallocated once (linear time).

    Images are converted to RGB (``channels=3``) or L (``channels=1``), optionally
    center-cropped to a square (``crop=True``), and resized to ``image_size`` squared
    (bilinear, antialiased when shrinking). Unreadable files raise DatasetFormatError naming
    the file (``on_error="raise"``) or are dropped with a warning naming each one
    (``on_error="skip"``). Returns ``(images, kept)`` with ``kept`` a boolean mask over paths.
    """
    _check_image_options(image_size, channels, on_error)
    mode = "RGB" if channels == 3 else "L"
    out = np.empty((len(paths), channels, image_size, image_size), dtype=np.uint8)
    kept = np.ones(len(paths), dtype=bool)
    for i, p in enumerate(paths):
        try:
            out[i] = _decode(str(p), image_size, mode, crop)
        except Exception as exc:  # PIL raises OSError, ValueError, SyntaxError, ...
            msg = f"cannot decode image ({type(exc).__name__}: {exc})"
            if on_error == "raise":
                raise DatasetFormatError(p, msg) from None
            warnings.warn(f"skipping unreadable image {p}: {msg}", RuntimeWarning, stacklevel=3)
            kept[i] = False
    if not kept.all():
        out = out[kept]
    return out, kept


def _walk_images(folder: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if _visible(d))
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames) if _is_image(f))
    return found


def scan_image_folder(root: Path):
    """``(paths, labels or None, class_names)`` for a class-per-sub-folder or flat folder."""
    if not root.is_dir():
        raise _MissingFile(root, "image folder")
    with os.scandir(root) as it:
        entries = sorted(it, key=lambda e: e.name)
    class_dirs = [e.name for e in entries if e.is_dir() and _visible(e.name)]
    top_files = [os.path.join(root, e.name) for e in entries if e.is_file() and _is_image(e.name)]
    if not class_dirs:
        if not top_files:
            raise DatasetNotFoundError(
                f"no image files ({', '.join(IMAGE_EXTENSIONS)}) and no class sub-folders "
                f"found in {root}", path=root)
        return top_files, None, []
    if top_files:
        warnings.warn(f"{root}: ignoring {len(top_files)} image file(s) next to the class "
                      f"sub-folders {class_dirs[:3]}{'...' if len(class_dirs) > 3 else ''}",
                      RuntimeWarning, stacklevel=3)
    paths, labels, empty = [], [], []
    for k, name in enumerate(class_dirs):
        files = _walk_images(root / name)
        if not files:
            empty.append(name)
        paths.extend(files)
        labels.extend([k] * len(files))
    if empty:
        raise DatasetFormatError(root, f"class sub-folder(s) without any image file "
                                       f"({', '.join(IMAGE_EXTENSIONS)}): {empty}")
    return paths, np.asarray(labels, dtype=np.int64), class_dirs


def _finish(root, paths, labels, class_names, name, image_size, channels, on_error, crop):
    images, kept = read_images(paths, image_size, channels, on_error, crop)
    if len(images) == 0:
        raise DatasetFormatError(root, f"none of the {len(paths)} image files could be decoded")
    if labels is None:
        return ImageDataset(images, None, name, [], 0)
    return ImageDataset(images, np.asarray(labels, dtype=np.int64)[kept], name, class_names,
                        len(class_names))


def load_image_folder(root, split: str = "all", image_size: int = 96, channels: int = 3,
                      on_error: str = "raise", crop: bool = False, name: str | None = None):
    """Generic folder: one class per sub-folder (sorted names, images searched recursively in
    each) or, with no sub-folders, a flat unlabelled set (labels None). Single split: "all"
    and "train" both return everything. The dataset is named after the folder."""
    _check_image_options(image_size, channels, on_error)
    root = Path(root).expanduser()
    paths, labels, class_names = scan_image_folder(root)
    return _finish(root, paths, labels, class_names, name or root.name, image_size, channels,
                   on_error, crop)


def load_imagenet_subset(root, split: str = "all", image_size: int = 96, channels: int = 3,
                         on_error: str = "raise", crop: bool = False, name: str = "imagenet10"):
    """ImageNet-10 / ImageNet-Dogs: class sub-folders (wnids) of ImageNet train images, in
    ``root`` or ``root/train``. Single split: "all" and "train" return everything."""
    root = Path(root)
    if (root / "train").is_dir():
        root = root / "train"
    return load_image_folder(root, split, image_size, channels, on_error, crop, name=name)


def _tiny_words(root: Path) -> dict[str, str]:
    path = root / "words.txt"
    if not path.is_file():
        return {}
    words = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        wnid, _, names = line.partition("\t")
        if names:
            words[wnid.strip()] = names.split(",")[0].strip()
    return words


def load_tiny_imagenet(root, split: str = "all", image_size: int = 64, channels: int = 3,
                       on_error: str = "raise", crop: bool = False):
    """Tiny-ImageNet-200. Classes: the wnids of ``wnids.txt`` in sorted order; class names:
    the first synonym in ``words.txt`` (the wnid when absent). "train":
    ``train/<wnid>/images/*.JPEG``; "test": the labelled validation set ``val/images`` with
    labels from ``val/val_annotations.txt`` (the official test set has no labels and is not
    used); "all": train + val."""
    _check_image_options(image_size, channels, on_error)
    root = Path(root)
    wnids_path = root / "wnids.txt"
    if not wnids_path.is_file():
        raise _MissingFile(wnids_path)
    wnids = sorted({w.strip() for w in wnids_path.read_text().splitlines() if w.strip()})
    if not wnids:
        raise DatasetFormatError(wnids_path, "expected one wnid per line; found none")
    index = {w: k for k, w in enumerate(wnids)}
    paths, labels = [], []
    if split in ("train", "all"):
        for w in wnids:
            folder = root / "train" / w / "images"
            if not folder.is_dir():
                raise _MissingFile(folder, "folder")
            files = sorted(f for f in os.listdir(folder) if _is_image(f))
            paths.extend(str(folder / f) for f in files)
            labels.extend([index[w]] * len(files))
    if split in ("test", "all"):
        ann = root / "val" / "val_annotations.txt"
        if not ann.is_file():
            raise _MissingFile(ann)
        for lineno, line in enumerate(ann.read_text().splitlines(), 1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 2:
                raise DatasetFormatError(ann, f"line {lineno}: expected tab-separated "
                                              f"'file<TAB>wnid<TAB>bbox...'; found {line!r}")
            fname, wnid = fields[0].strip(), fields[1].strip()
            if wnid not in index:
                raise DatasetFormatError(ann, f"line {lineno}: wnid {wnid!r} is not listed in "
                                              f"{wnids_path.name}")
            img = root / "val" / "images" / fname
            if not img.is_file():
                raise _MissingFile(img)
            paths.append(str(img))
            labels.append(index[wnid])
    if not paths:
        raise DatasetNotFoundError(f"no images found for split {split!r} in {root}", path=root)
    words = _tiny_words(root)
    names = [words.get(w, w) for w in wnids]
    return _finish(root, paths, labels, names, "tiny-imagenet", image_size, channels, on_error,
                   crop)
