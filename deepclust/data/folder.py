"""Image folders decoded with PIL: generic class-per-sub-folder / flat folders, ImageNet-10,
ImageNet-Dogs (class sub-folders, optionally under ``train/``) and Tiny-ImageNet (official
``tiny-imagenet-200`` layout).

Every image is stored as an S×S uint8 array. S is the loader option ``image_size`` when given;
otherwise the side the method trains on (``training_size``, a preset's
``augmentation.image_size``; :data:`DEFAULT_IMAGE_SIZE` when unknown), but never more than the
largest short side among the images, which are not upsampled in memory (Tiny-ImageNet: 64 px).
Before decoding, the loader prints the memory the images take (N × C × S × S bytes) and, with
``check_memory`` (the default), refuses with :class:`DatasetTooLargeError` when that is more than
the memory available.
"""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np

from .base import ImageDataset
from .errors import DatasetFormatError, DatasetNotFoundError, DatasetTooLargeError, _MissingFile

__all__ = ["DEFAULT_IMAGE_SIZE", "IMAGE_EXTENSIONS", "available_memory", "load_image_folder",
           "load_imagenet_subset", "load_tiny_imagenet", "read_images", "scan_image_folder", "stored_side"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
#: The stored side when neither ``image_size`` nor ``training_size`` is given.
DEFAULT_IMAGE_SIZE = 96


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _visible(name: str) -> bool:
    return not name.startswith(".") and name != "__MACOSX"


def _check_side(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")


def _check_image_options(image_size, channels, on_error):
    """``image_size`` a positive integer, or None (automatic: :func:`stored_side`) where loaders take it."""
    if image_size is not None:
        _check_side(image_size, "image_size")
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
    _check_side(image_size, "image_size")
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


#: :func:`stored_side` reads the headers of at most this many images, evenly spaced over the dataset.
SIZE_PROBES = 1000


def stored_side(paths, training_size: int | None = None) -> int:
    """The side S images of ``paths`` are stored at when no ``image_size`` is given: ``training_size``
    (:data:`DEFAULT_IMAGE_SIZE` when None), or the largest short side among the images when every
    image is smaller than that. Reads the headers of up to :data:`SIZE_PROBES` evenly spaced images
    and stops at the first one large enough; unreadable files are passed over (decoding reports them)."""
    from PIL import Image

    wanted = DEFAULT_IMAGE_SIZE if training_size is None else training_size
    _check_side(wanted, "training_size")
    largest = 0
    probes = np.unique(np.linspace(0, len(paths) - 1, min(len(paths), SIZE_PROBES)).round().astype(int))
    for path in (paths[i] for i in probes):
        try:
            with Image.open(path) as im:
                short = min(im.size)
        except Exception:  # PIL raises OSError, ValueError, SyntaxError, ...
            continue
        if short >= wanted:
            return int(wanted)
        largest = max(largest, short)
    return int(largest or wanted)


def available_memory() -> int | None:
    """Bytes of memory available to new allocations: ``MemAvailable`` of /proc/meminfo (Linux), else
    the free physical pages (``os.sysconf``), else None (unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _size_text(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.2f} GB" if n_bytes >= 10**7 else f"{n_bytes / 1e6:.1f} MB"


def _reserve_memory(name: str, n: int, channels: int, side: int, check: bool) -> None:
    """Print what ``n`` images of ``channels``×``side``×``side`` take; with ``check``, raise
    DatasetTooLargeError when that (times the processes of this machine under torchrun) is more
    than :func:`available_memory`."""
    needed = n * channels * side * side
    if os.environ.get("RANK", "0") == "0":
        print(f"{name}: {n:,} images of {channels}x{side}x{side} px take {_size_text(needed)} in memory",
              file=sys.stderr, flush=True)
    available = available_memory()
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if not check or available is None or needed * processes <= available:
        return
    each = f" in each of {processes} processes" if processes > 1 else ""
    raise DatasetTooLargeError(
        f"{name}: {n:,} images of {channels}x{side}x{side} px need {_size_text(needed)} of memory{each}, "
        f"but {_size_text(available)} are available; store them smaller with the loader option "
        f"image_size (e.g. --data-option image_size={max(side // 2, 1)}), or set check_memory=false to "
        "load them anyway", needed * processes, available)


def _finish(root, paths, labels, class_names, name, image_size, channels, on_error, crop, training_size,
            check_memory):
    side = stored_side(paths, training_size) if image_size is None else image_size
    _reserve_memory(name, len(paths), channels, side, check_memory)
    images, kept = read_images(paths, side, channels, on_error, crop)
    if len(images) == 0:
        raise DatasetFormatError(root, f"none of the {len(paths)} image files could be decoded")
    paths = np.asarray(paths, dtype=str)[kept]
    if labels is None:
        return ImageDataset(images, None, name, [], 0, paths=paths)
    return ImageDataset(images, np.asarray(labels, dtype=np.int64)[kept], name, class_names,
                        len(class_names), paths=paths)


def load_image_folder(root, split: str = "all", image_size: int | None = None, channels: int = 3,
                      on_error: str = "raise", crop: bool = False, name: str | None = None,
                      training_size: int | None = None, check_memory: bool = True):
    """Generic folder: one class per sub-folder (sorted names, images searched recursively in
    each) or, with no sub-folders, a flat unlabelled set (labels None). Single split: "all"
    and "train" both return everything. The dataset is named after the folder. ``image_size``
    None: stored at :func:`stored_side` of ``training_size`` (see the module docstring)."""
    _check_image_options(image_size, channels, on_error)
    root = Path(root).expanduser()
    paths, labels, class_names = scan_image_folder(root)
    return _finish(root, paths, labels, class_names, name or root.name, image_size, channels,
                   on_error, crop, training_size, check_memory)


def load_imagenet_subset(root, split: str = "all", image_size: int | None = None, channels: int = 3,
                         on_error: str = "raise", crop: bool = False, name: str = "imagenet10",
                         training_size: int | None = None, check_memory: bool = True):
    """ImageNet-10 / ImageNet-Dogs: class sub-folders (wnids) of ImageNet train images, in
    ``root`` or ``root/train``. Single split: "all" and "train" return everything."""
    root = Path(root)
    if (root / "train").is_dir():
        root = root / "train"
    return load_image_folder(root, split, image_size, channels, on_error, crop, name=name,
                             training_size=training_size, check_memory=check_memory)


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


def load_tiny_imagenet(root, split: str = "all", image_size: int | None = None, channels: int = 3,
                       on_error: str = "raise", crop: bool = False, training_size: int | None = None,
                       check_memory: bool = True):
    """Tiny-ImageNet-200. Classes: the wnids of ``wnids.txt`` in sorted order; class names:
    the first synonym in ``words.txt`` (the wnid when absent). "train":
    ``train/<wnid>/images/*.JPEG``; "test": the labelled validation set ``val/images`` with
    labels from ``val/val_annotations.txt`` (the official test set has no labels and is not
    used); "all": train + val. ``image_size`` None: the images' own 64 px (or ``training_size``
    when smaller)."""
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
                   crop, training_size, check_memory)
