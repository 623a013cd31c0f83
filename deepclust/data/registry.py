"""The dataset registry: names, root resolution, ``load_dataset`` and ``dataset_status``.

Root resolution for a named dataset stored in a folder (``spec.folder``):

1. ``root=`` given: ``root/<folder>`` if it holds the dataset, else ``root`` itself (so both
   the data root and the dataset folder can be passed);
2. otherwise ``$DEEPCLUST_DATA_ROOT/<folder>`` when the variable is set,
3. then ``~/.deepclust/data/<folder>``,
4. then dataset-specific system folders (``/usr/share/datasets/fashion-mnist`` for
   Fashion-MNIST, from the Debian package ``dataset-fashion-mnist``).

The first candidate that holds the dataset is used; with none, DatasetNotFoundError says
which file was expected where, what was searched and how to get the data.
"""
from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import arrays, cifar, folder, idx, realdisp, stl10
from .base import ImageDataset
from .errors import DatasetNotFoundError, _MissingFile
from .imbalance import apply_imbalance

__all__ = ["DatasetSpec", "REGISTRY", "ENV_VAR", "SOURCE_FILE", "load_dataset", "load_source",
           "write_source", "read_source", "list_datasets", "dataset_status", "resolve_name",
           "default_data_root"]

ENV_VAR = "DEEPCLUST_DATA_ROOT"
#: The file of a run folder holding its data's ``ImageDataset.source`` record.
SOURCE_FILE = "data.json"
SPLITS_TT = ("train", "test", "all")
SPLITS_SINGLE = ("all", "train")
#: Options of the image-folder datasets; image_size None = automatic (:func:`folder.stored_side`).
IMAGE_OPTIONS = {"image_size": None, "channels": 3, "on_error": "raise", "crop": False, "check_memory": True}


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: str                    # "folder": named dataset in a folder; "builtin"; "user"
    loader: Callable[..., ImageDataset]
    splits: tuple[str, ...]
    options: dict = field(default_factory=dict)   # option name -> default
    folder: str | None = None    # default folder name under the data root
    present: Callable[[Path], bool] | None = None
    expect: str = ""             # what identifies the dataset in its folder (for messages)
    hint: str = ""               # how to get it; "{dest}" = the data root to extract into
    system_dirs: tuple[str, ...] = ()
    description: str = ""


def _any_file(*names):
    return lambda p: any((p / n).is_file() for n in names)


def _has_subdirs(p: Path) -> bool:
    if not p.is_dir():
        return False
    base = p / "train" if (p / "train").is_dir() else p
    with os.scandir(base) as entries:
        return any(e.is_dir() and not e.name.startswith(".") for e in entries)


def _idx_hint(url: str) -> str:
    return ("download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from " + url +
            " into {path}")


def _load_npz(path, split):
    return arrays.load_npz(path, split)


def _load_digits(path, split):
    return arrays.load_digits_dataset(split)


def _imagenet_subset(name: str, folder_name: str, what: str, description: str) -> "DatasetSpec":
    """A registry entry for one of the ImageNet subsets of Chang et al. (class folders of train images)."""
    return DatasetSpec(
        name, "folder", lambda p, s, **o: folder.load_imagenet_subset(p, s, name=name, **o),
        SPLITS_SINGLE, dict(IMAGE_OPTIONS), folder=folder_name, present=_has_subdirs,
        expect="one sub-folder of images per class (ImageNet wnids)",
        hint=f"{what}, Chang et al., ICCV 2017) is not distributed on its own: build it from the ILSVRC2012 "
             "train set (https://image-net.org) as one sub-folder per class wnid in {path}",
        description=description)


_SPECS = [
    DatasetSpec(
        "fashion-mnist", "folder",
        lambda p, s: idx.load_idx_dataset(p, s, "fashion-mnist", idx.FASHION_MNIST_CLASSES),
        SPLITS_TT, folder="fashion-mnist", present=idx.has_idx_files,
        expect="file 'train-images-idx3-ubyte.gz'",
        hint="apt-get install dataset-fashion-mnist (installs the files into "
             "/usr/share/datasets/fashion-mnist, searched automatically), or "
             + _idx_hint("https://github.com/zalandoresearch/fashion-mnist"),
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        description="Fashion-MNIST, 70,000 28x28 grayscale images, 10 classes (IDX files)"),
    DatasetSpec(
        "mnist", "folder",
        lambda p, s: idx.load_idx_dataset(p, s, "mnist", idx.MNIST_CLASSES),
        SPLITS_TT, folder="mnist", present=idx.has_idx_files,
        expect="file 'train-images-idx3-ubyte.gz'",
        hint=_idx_hint("http://yann.lecun.com/exdb/mnist/ (or a mirror)"),
        description="MNIST, 70,000 28x28 grayscale digits, 10 classes (IDX files)"),
    DatasetSpec(
        "digits", "builtin", _load_digits, SPLITS_SINGLE,
        hint="bundled with scikit-learn (sklearn.datasets.load_digits); nothing to download",
        description="scikit-learn digits, 1,797 8x8 grayscale images, 10 classes"),
    DatasetSpec(
        "cifar10", "folder", cifar.load_cifar10, SPLITS_TT, folder="cifar-10-batches-py",
        present=_any_file("data_batch_1", "test_batch"), expect="file 'data_batch_1'",
        hint="download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html "
             "and extract it into {dest} (it creates cifar-10-batches-py/)",
        description="CIFAR-10, 60,000 32x32 colour images, 10 classes (python pickles)"),
    DatasetSpec(
        "cifar100", "folder", cifar.load_cifar100, SPLITS_TT, {"label_level": "coarse"},
        folder="cifar-100-python", present=_any_file("train", "test"), expect="file 'train'",
        hint="download cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html "
             "and extract it into {dest} (it creates cifar-100-python/)",
        description="CIFAR-100, 60,000 32x32 colour images, 20 superclasses "
                    "(label_level='coarse', default) or 100 classes ('fine')"),
    DatasetSpec(
        "stl10", "folder", stl10.load_stl10, SPLITS_TT + ("unlabeled",),
        {"include_unlabeled": False}, folder="stl10_binary",
        present=_any_file("train_X.bin", "test_X.bin", "unlabeled_X.bin"),
        expect="file 'train_X.bin'",
        hint="download stl10_binary.tar.gz from https://cs.stanford.edu/~acoates/stl10/ and "
             "extract it into {dest} (it creates stl10_binary/)",
        description="STL-10, 13,000 labelled 96x96 colour images, 10 classes, plus 100,000 "
                    "unlabelled (binary files)"),
    _imagenet_subset("imagenet10", "imagenet-10", "ImageNet-10 (10 classes x 1,300 ImageNet train images",
                     "ImageNet-10, 13,000 images, 10 classes (class folders)"),
    _imagenet_subset("imagenet-dogs", "imagenet-dogs", "ImageNet-Dogs (15 dog classes, 19,500 ImageNet train images",
                     "ImageNet-Dogs, 19,500 images, 15 classes (class folders)"),
    DatasetSpec(
        "tiny-imagenet", "folder", folder.load_tiny_imagenet, SPLITS_TT,
        dict(IMAGE_OPTIONS), folder="tiny-imagenet-200",
        present=_any_file("wnids.txt"), expect="file 'wnids.txt'",
        hint="download tiny-imagenet-200.zip from http://cs231n.stanford.edu/"
             "tiny-imagenet-200.zip and unzip it into {dest} (it creates tiny-imagenet-200/)",
        description="Tiny-ImageNet, 100,000 train + 10,000 val 64x64 images, 200 classes"),
    DatasetSpec(
        "realdisp", "folder", realdisp.load_realdisp, SPLITS_SINGLE,
        {"window": 512, "stride": 5, "scenario": "ideal"}, folder="realdisp",
        present=realdisp.has_realdisp_logs, expect="RealDisp log files subject<N>_<scenario>.log",
        hint="download the RealDisp activity recognition dataset from "
             "https://archive.ics.uci.edu/dataset/305 and extract its .log files into {path}",
        description="RealDisp sensor windows (117 channels x 512 steps, stride 5), 33 "
                    "activities, stored as (117, 1, 512) uint8 'images'"),
    DatasetSpec(
        "image-folder", "user", folder.load_image_folder, SPLITS_SINGLE, dict(IMAGE_OPTIONS),
        hint="your own images: load_dataset('image-folder', root='<folder>') with one "
             "sub-folder per class, or only image files for an unlabelled set",
        description="any folder of images (class sub-folders or flat)"),
    DatasetSpec(
        "npz", "user", _load_npz, SPLITS_SINGLE, {"path": None},
        hint="your own arrays: load_dataset('npz', root='<file.npz>') with an array 'x' "
             "(N,C,H,W), (N,H,W) or (N,H,W,C) and an optional 'y'",
        description="a .npz file with arrays x and optional y"),
]

REGISTRY: dict[str, DatasetSpec] = {s.name: s for s in _SPECS}

_ALIASES = {
    "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
    "cifar-10": "cifar10", "cifar-100": "cifar100", "cifar20": "cifar100",
    "cifar-20": "cifar100", "cifar100-20": "cifar100", "cifar-100-20": "cifar100",
    "stl-10": "stl10", "imagenet-10": "imagenet10", "imagenetdogs": "imagenet-dogs",
    "imagenet-dog": "imagenet-dogs", "tinyimagenet": "tiny-imagenet",
    "tiny-imagenet-200": "tiny-imagenet", "imagefolder": "image-folder",
    "folder": "image-folder",
}


def list_datasets() -> list[str]:
    """Registered dataset names (aliases such as "cifar20" or "fashion_mnist" also work)."""
    return list(REGISTRY)


def resolve_name(name: str) -> DatasetSpec:
    """The spec for ``name`` (case-insensitive, ``_`` = ``-``, aliases); ValueError listing
    the valid names otherwise."""
    if not isinstance(name, str):
        raise ValueError(f"dataset name must be a string; got {name!r}")
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in REGISTRY:
        close = difflib.get_close_matches(key, list(REGISTRY) + list(_ALIASES), n=1)
        guess = f" (did you mean {_ALIASES.get(close[0], close[0])!r}?)" if close else ""
        raise ValueError(f"unknown dataset {name!r}{guess}; valid names: "
                         f"{', '.join(REGISTRY)}")
    return REGISTRY[key]


def default_data_root() -> Path:
    """``$DEEPCLUST_DATA_ROOT`` when set, else ``~/.deepclust/data``."""
    env = os.environ.get(ENV_VAR, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".deepclust" / "data"


def _candidates(spec: DatasetSpec, root=None, root_is_parent: bool = False) -> list[Path]:
    if root is not None:
        root = Path(root).expanduser()
        if root_is_parent:
            return [root / spec.folder]
        return [root / spec.folder, root] if root.name != spec.folder else [root]
    out = []
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        out.append(Path(env).expanduser() / spec.folder)
    out.append(Path.home() / ".deepclust" / "data" / spec.folder)
    out.extend(Path(d) for d in spec.system_dirs)
    return out


def _find(spec: DatasetSpec, candidates: list[Path]) -> Path | None:
    for c in candidates:
        try:
            if c.is_dir() and spec.present(c):
                return c
        except OSError:
            continue
    return None


def _not_found(spec: DatasetSpec, problem: str, missing, searched: list[Path],
               root) -> DatasetNotFoundError:
    """The full message: what is missing where, what was searched, how to choose the location
    and how to get the data."""
    dest = searched[0]
    env = os.environ.get(ENV_VAR, "").strip()
    how = (f"root={str(root)!r} was given" if root is not None else
           f"root= not given, {ENV_VAR}={env!r}" if env else f"root= not given, {ENV_VAR} not set")
    lines = [f"dataset {spec.name!r} not found: {problem}."]
    if len(searched) > 1:
        lines.append("Searched: " + ", ".join(str(p) for p in searched) + ".")
    lines.append(f"Location ({how}): pass load_dataset({spec.name!r}, root='<folder>') with the "
                 f"dataset folder or its parent, or set {ENV_VAR} to the parent folder "
                 f"(used as ${ENV_VAR}/{spec.folder}); default ~/.deepclust/data/{spec.folder}.")
    hint = spec.hint.format(dest=dest.parent, path=dest)
    lines.append(f"To get it: {hint}.")
    return DatasetNotFoundError("\n".join(lines), dataset=spec.name, path=missing,
                                searched=searched, hint=hint)


def _check_options(spec: DatasetSpec, options: dict) -> dict:
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        valid = ", ".join(spec.options) if spec.options else "none"
        raise ValueError(f"unexpected option(s) {unknown} for dataset {spec.name!r}; "
                         f"valid options: {valid}")
    return {**spec.options, **options}


def load_dataset(name: str, root: str | os.PathLike | None = None, split: str = "all", *,
                 training_size: int | None = None, classes=None, **options) -> ImageDataset:
    """Load a registered dataset into memory as an :class:`ImageDataset`.

    name:    one of :func:`list_datasets` (case-insensitive; aliases like "cifar20").
    root:    the dataset folder or the data root holding it (see the module docstring);
             for "image-folder" the folder, for "npz" the file (required).
    split:   "train", "test" or "all" (train + test merged, the default, as in the
             clustering papers); "unlabeled" for STL-10. Datasets with a single split
             (digits, image-folder, npz, imagenet10, imagenet-dogs) accept "all"/"train".
    training_size: the image side the method will train on (a preset's
             ``augmentation.image_size``). Image folders, ImageNet subsets and Tiny-ImageNet
             without an ``image_size`` option are stored at this side, capped at the images'
             own size (:func:`deepclust.data.folder.stored_side`); other datasets ignore it.
    classes: keep the images of these classes only (label indices or class names), relabelled
             0..len(classes)-1 in that order (:meth:`ImageDataset.select_classes`); None: all.
    options: per dataset: cifar100 ``label_level`` ("coarse"|"fine"); stl10
             ``include_unlabeled``; image folders / ImageNet subsets / Tiny-ImageNet
             ``image_size`` (the stored side; None, the default, = ``training_size`` or 96,
             never above the images' own size: 64 for Tiny-ImageNet), ``channels`` (3|1),
             ``on_error`` ("raise"|"skip"), ``crop`` (center square crop before resizing),
             ``check_memory`` (True: refuse with DatasetTooLargeError when the images would not
             fit in the available memory; the size is printed before decoding); npz ``path``;
             realdisp ``window`` (512), ``stride`` (5), ``scenario`` ("ideal"). Every
             dataset: ``imbalance`` (0 = none; 1, 2, 3: HardReg's class-imbalance protocol,
             :mod:`deepclust.data.imbalance`) subsampled with ``seed`` (default 0).

    The dataset's ``source`` records these arguments (``root`` made absolute, and the side an
    image folder was stored at as ``image_size``), so :func:`load_source` loads the same images again.

    Raises ValueError (unknown name, split or option),
    DatasetNotFoundError (missing folder/file, with how to get it), DatasetFormatError
    (malformed file, naming it).
    """
    imbalance = options.pop("imbalance", 0)
    seed = options.pop("seed", 0)
    spec = resolve_name(name)
    if split not in spec.splits:
        raise ValueError(f"unknown split {split!r} for dataset {spec.name!r}; valid splits: "
                         f"{', '.join(spec.splits)}")
    opts = _check_options(spec, options)
    if "image_size" in spec.options:
        opts["training_size"] = training_size
    dataset = _load_split(spec, root, split, opts)
    if "image_size" in spec.options:  # the side chosen, so that load_source stores the images alike
        options = {**options, "image_size": dataset.shape[-1]}
    dataset.source = {
        "kind": "registry", "dataset": spec.name, "split": split,
        "data_root": None if root is None else os.path.abspath(os.path.expanduser(root)),
        "options": {key: os.fspath(value) if isinstance(value, os.PathLike) else value
                    for key, value in options.items()},
        "classes": None, "imbalance": 0, "imbalance_seed": None, "subset": None, "subset_seed": None,
        "subset_of": None}
    if classes is not None:
        source = dataset.source
        dataset = dataset.select_classes(list(classes))
        dataset.source = {**source, "classes": list(dataset.class_names)}
    return apply_imbalance(dataset, imbalance, seed=seed) if imbalance else dataset


def _load_split(spec: DatasetSpec, root, split: str, opts: dict) -> ImageDataset:
    if spec.kind == "builtin":
        return spec.loader(None, split, **opts)
    if spec.kind == "user":
        path = opts.pop("path", None)
        target = root if root is not None else path
        if target is None:
            what = "a .npz file" if spec.name == "npz" else "a folder of images"
            raise ValueError(f"dataset {spec.name!r} needs root= ({what})")
        target = Path(target).expanduser()
        try:
            return spec.loader(target, split, **opts)
        except DatasetNotFoundError as exc:
            if exc.dataset is not None:
                raise
            raise DatasetNotFoundError(f"dataset {spec.name!r} not found: {exc}. "
                                       f"Usage: {spec.hint}.",
                                       dataset=spec.name, path=exc.filename or target,
                                       searched=[target], hint=spec.hint) from None
    candidates = _candidates(spec, root)
    found = _find(spec, candidates)
    if found is None:
        first = candidates[0]
        if spec.expect.startswith("file '"):
            missing = first / spec.expect.split("'")[1]
            problem = f"expected file {missing.name!r} at {missing}"
        else:
            missing = first
            problem = f"expected {spec.expect} in {first}"
        if not first.is_dir():
            problem += " (that folder does not exist)"
        raise _not_found(spec, problem, missing, candidates, root)
    try:
        return spec.loader(found, split, **opts)
    except DatasetNotFoundError as exc:
        if exc.dataset is not None:
            raise
        problem = (f"expected {exc.what} {Path(exc.filename).name!r} at {exc.filename}"
                   if isinstance(exc, _MissingFile) else str(exc))
        raise _not_found(spec, problem, exc.filename, [found], root) from None


def load_source(source: dict, data_root: str | os.PathLike | None = None) -> ImageDataset:
    """Load again the images a ``source`` record describes (an ``ImageDataset.source``, a run
    folder's ``data.json``): the named dataset, its classes, its imbalance draw, then its subset draw.

    data_root: where to look instead of the record's ``data_root``.
    Raises ValueError when the record names no dataset (arrays or hand-picked indices) or
    when the subset's pool no longer has the recorded size (the dataset files changed).
    """
    name = source.get("dataset")
    if name is None:
        raise ValueError(f"data of kind {source.get('kind')!r} cannot be loaded again: its source "
                         "record names no dataset (only load_dataset records one)")
    dataset = load_dataset(name, root=data_root or source.get("data_root"), split=source.get("split", "all"),
                           imbalance=source.get("imbalance") or 0,
                           # records of `deepclust bench` older than "imbalance_seed" drew both with subset_seed
                           seed=source.get("imbalance_seed", source.get("subset_seed", 0)),
                           classes=source.get("classes"), **source.get("options", {}))
    if source.get("subset") is None:
        return dataset
    pool = source.get("subset_of")
    if pool is not None and pool != len(dataset):
        raise ValueError(f"the recorded subset of {source['subset']} images was drawn from {pool} images of "
                         f"{name!r}, but {len(dataset)} are loaded now: the dataset files changed")
    return dataset.sample(source["subset"], source.get("subset_seed", 0))


def write_source(folder: str | os.PathLike, dataset: ImageDataset) -> Path:
    """Write ``dataset.source`` to ``folder/data.json`` (creating the folder); return the file."""
    path = Path(folder) / SOURCE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataset.source, indent=2) + "\n", encoding="utf-8")
    return path


def read_source(folder: str | os.PathLike) -> dict | None:
    """The source record of ``folder/data.json``; None when the folder has none."""
    path = Path(folder) / SOURCE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None


def dataset_status(root: str | os.PathLike | None = None) -> list[dict]:
    """One dict per registered dataset, for ``deepclust datasets``.

    Keys: ``name``; ``found`` (bool); ``path`` (where found, else where expected; None for
    user datasets, which need an explicit root); ``hint`` (how to get it); ``kind``
    ("folder", "builtin" or "user"); ``splits``; ``description``. ``root`` is a data root
    (like ``$DEEPCLUST_DATA_ROOT``): each dataset is looked up in ``root/<folder>``.
    """
    out = []
    for spec in REGISTRY.values():
        row = {"name": spec.name, "kind": spec.kind, "splits": list(spec.splits),
               "description": spec.description}
        if spec.kind == "builtin":
            row.update(found=True, path=arrays.digits_data_path(), hint=spec.hint)
        elif spec.kind == "user":
            row.update(found=False, path=None, hint=spec.hint)
        else:
            cands = _candidates(spec, root, root_is_parent=True)
            found = _find(spec, cands)
            dest = found or cands[0]
            row.update(found=found is not None, path=str(dest),
                       hint=spec.hint.format(dest=dest.parent, path=dest))
        out.append(row)
    return out
