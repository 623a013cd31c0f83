"""The in-memory dataset container shared by every loader."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

__all__ = ["ImageDataset", "channel_stats", "STATS_BUDGET"]

#: At most this many pixel values (N*C*H*W) enter the mean/std computation; larger datasets
#: use an evenly spaced subset of images (e.g. all 70,000 Fashion-MNIST images fit in ~42,800,
#: CIFAR in ~10,900, STL-10 in ~1,200). The estimate is then within ~1e-3 of the exact value.
STATS_BUDGET = 1 << 25

#: The seeded draws a ``source`` record holds, in the order they are replayed after loading.
REPLAYED_DRAWS = ("imbalance", "subset")


def channel_stats(images: np.ndarray, budget: int = STATS_BUDGET):
    """Per-channel mean and std of ``images / 255`` for a uint8 (N, C, H, W) array.

    Exact (float64 accumulation) when ``N*C*H*W <= budget``, otherwise computed over
    ``budget // (C*H*W)`` evenly spaced images. Returns two tuples of Python floats.
    """
    n, c = images.shape[0], images.shape[1]
    if n == 0:
        raise ValueError("cannot compute channel statistics of an empty image array")
    per_image = int(np.prod(images.shape[1:]))
    m = max(1, min(n, budget // max(per_image, 1)))
    index = None if m == n else np.unique(np.linspace(0, n - 1, m).round().astype(np.int64))
    total = len(index) if index is not None else n
    chunk = max(1, (1 << 22) // max(per_image, 1))  # ~32 MB of float64 per block
    s = np.zeros(c, dtype=np.float64)
    ss = np.zeros(c, dtype=np.float64)
    for start in range(0, total, chunk):
        if index is None:
            block = images[start:start + chunk]
        else:
            block = images[index[start:start + chunk]]
        block = block.astype(np.float64)
        s += block.sum(axis=(0, 2, 3))
        ss += np.square(block).sum(axis=(0, 2, 3))
    count = total * images.shape[2] * images.shape[3]
    mean = s / count / 255.0
    var = np.maximum(ss / count / 255.0 ** 2 - mean ** 2, 0.0)
    return tuple(float(v) for v in mean), tuple(float(v) for v in np.sqrt(var))


@dataclass(eq=False, repr=False)
class ImageDataset:
    """Images held in memory as uint8 plus labels and metadata.

    images:      uint8 array (N, C, H, W), C-contiguous.
    labels:      int64 array (N,), ``-1`` = unknown label; ``None`` when there are no labels.
    name:        dataset name (registry name, folder name for image folders, file stem for npz).
    class_names: ``class_names[k]`` names label ``k`` (empty when unlabelled).
    n_classes:   number of ground-truth classes (0 when unlabelled).
    mean, std:   per-channel statistics of ``images / 255``. Left as ``None`` they are computed
                 from the images with :func:`channel_stats` (exact up to 2**25 pixel values, an
                 evenly spaced subset of images above). All loaders compute them this way; no
                 published constants are used, so they always match the split that was loaded.
    source:      where the images came from, a JSON-ready dict (a run folder's ``data.json``).
                 ``load_dataset`` records ``{"kind": "registry", "dataset", "split", "data_root",
                 "options", "classes", "imbalance", "imbalance_seed", "subset", "subset_seed",
                 "subset_of"}``
                 (see :func:`deepclust.data.registry.load_source`, which loads the same images
                 again); the imbalance protocol and :meth:`sample` fill in their draws. Left as
                 ``None`` it is ``{"kind": "arrays", "dataset": None}``: images with no name to
                 load them again by; :meth:`subset` records ``{"kind": "indices", "dataset": None,
                 "picked_from": <the parent's source>}``.
    parts:       named index arrays into the images, one per split when a loader puts several
                 together (STL-10: "train", "test", "unlabeled"), so that a method can train on
                 them differently (:meth:`deepclust.engine.model.ClusteringModel.epoch_passes`);
                 :meth:`subset` and :meth:`sample` keep them, at the images' new positions. Empty
                 when the loader defines none.
    paths:       the file each image was decoded from (str array (N,), image folders), kept by
                 :meth:`subset` and :meth:`sample` like ``parts``; ``None`` for data without files.
    """

    images: np.ndarray
    labels: np.ndarray | None
    name: str
    class_names: list[str]
    n_classes: int
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    source: dict | None = None
    parts: dict[str, np.ndarray] | None = None
    paths: np.ndarray | None = None

    def __post_init__(self):
        images = self.images
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
            desc = (f"{images.dtype} array of shape {images.shape}"
                    if isinstance(images, np.ndarray) else type(images).__name__)
            raise ValueError(f"ImageDataset.images must be a uint8 array (N, C, H, W); got {desc}")
        self.images = np.ascontiguousarray(images)
        n = images.shape[0]
        if self.labels is not None:
            labels = np.asarray(self.labels)
            if labels.ndim != 1 or len(labels) != n:
                raise ValueError(f"ImageDataset.labels must have shape ({n},) to match images; "
                                 f"got shape {labels.shape}")
            if labels.dtype.kind not in "iu":
                raise ValueError(f"ImageDataset.labels must be integers; got dtype {labels.dtype}")
            self.labels = labels.astype(np.int64, copy=False)
        self.class_names = [str(c) for c in self.class_names]
        self.n_classes = int(self.n_classes)
        if (self.mean is None or self.std is None) and n > 0:
            mean, std = channel_stats(self.images)
            self.mean = mean if self.mean is None else self.mean
            self.std = std if self.std is None else self.std
        self.mean = tuple(float(v) for v in self.mean) if self.mean is not None else ()
        self.std = tuple(float(v) for v in self.std) if self.std is not None else ()
        self.source = ({"kind": "arrays", "dataset": None} if self.source is None
                       else copy.deepcopy(self.source))
        self.parts = {str(name): _part_indices(name, members, n) for name, members in (self.parts or {}).items()}
        if self.paths is not None:
            self.paths = np.asarray(self.paths, dtype=str)
            if self.paths.shape != (n,):
                raise ValueError(f"ImageDataset.paths must hold one file path per image, shape ({n},); got "
                                 f"shape {self.paths.shape}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def subset(self, indices, draw: dict | None = None) -> "ImageDataset":
        """A new dataset with ``images[indices]`` (integer indices, boolean mask or slice) and
        the same metadata (name, class names, n_classes, mean/std of the parent).

        Its ``source`` records hand-picked indices of the parent, which no name loads again,
        unless ``draw`` names the seeded draw that chose them (``{"imbalance": level,
        "imbalance_seed": seed}`` or ``{"subset": n, "subset_seed": seed, "subset_of": N}``)
        and the parent's record can still replay it: load, then one imbalance draw, then one
        subset draw.
        """
        if not isinstance(indices, slice):
            indices = np.asarray(indices)
            if indices.ndim != 1:
                raise ValueError(f"subset indices must be 1-D; got shape {indices.shape}")
            if indices.dtype == bool:
                if len(indices) != len(self):
                    raise ValueError(f"boolean subset mask has length {len(indices)}, "
                                     f"dataset has {len(self)} images")
            elif len(indices) == 0:
                indices = indices.astype(np.int64)
            elif indices.dtype.kind not in "iu":
                raise ValueError(f"subset indices must be integers or booleans; "
                                 f"got dtype {indices.dtype}")
        images = np.ascontiguousarray(self.images[indices])
        labels = None if self.labels is None else np.ascontiguousarray(self.labels[indices])
        source = {"kind": "indices", "dataset": None, "picked_from": self.source}
        if draw is not None:
            first = REPLAYED_DRAWS.index(next(key for key in draw if key in REPLAYED_DRAWS))
            if not any(self.source.get(step) for step in REPLAYED_DRAWS[first:]):
                source = {**self.source, **draw}
        return ImageDataset(images, labels, self.name, list(self.class_names), self.n_classes,
                            self.mean, self.std, source, self._parts_of(indices),
                            None if self.paths is None else self.paths[indices])

    def _parts_of(self, indices) -> dict[str, np.ndarray]:
        """The parts of ``subset(indices)``: each part's images at their positions in the subset."""
        if not self.parts:
            return {}
        picked = np.arange(len(self))[indices]  # the parent index of every image of the subset
        parts = {}
        for name, members in self.parts.items():
            member = np.zeros(len(self), dtype=bool)
            member[members] = True
            parts[name] = np.flatnonzero(member[picked])
        return parts

    def select_classes(self, classes) -> "ImageDataset":
        """The images of ``classes`` only (label indices or class names, at least two, no repeats),
        relabelled ``0..len(classes)-1`` in the order given, with their class names, ``n_classes`` and
        channel statistics: a smaller clustering task with ``K = len(classes)``."""
        if self.labels is None:
            raise ValueError(f"classes can only be chosen from labelled data; {self.name!r} has no labels")
        wanted = [self._class_index(value) for value in classes]
        if len(wanted) < 2:
            raise ValueError(f"choose at least two classes of {self.name!r} to cluster, got {list(classes)!r}")
        if len(set(wanted)) != len(wanted):
            raise ValueError(f"classes {list(classes)!r} name the same class twice")
        keep = np.flatnonzero(np.isin(self.labels, wanted))
        if not len(keep):
            raise ValueError(f"{self.name!r} holds no image of the classes {list(classes)!r}")
        relabel = np.full(max(self.n_classes, int(self.labels.max()) + 1), -1, dtype=np.int64)
        relabel[wanted] = np.arange(len(wanted))
        picked = self.subset(keep)
        names = [self.class_names[k] if k < len(self.class_names) else str(k) for k in wanted]
        return ImageDataset(picked.images, relabel[picked.labels], self.name, names, len(wanted),
                            source=picked.source, parts=picked.parts, paths=picked.paths)

    def _class_index(self, value) -> int:
        """The label index ``value`` names: an index ``0..n_classes-1`` or a class name (any case)."""
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            if 0 <= value < self.n_classes:
                return int(value)
            raise ValueError(f"class {value} is not a label of {self.name!r} (labels 0..{self.n_classes - 1})")
        lowered = [name.lower() for name in self.class_names]
        text = str(value).strip()
        if text.lower() in lowered:
            return lowered.index(text.lower())
        if text.isdigit():
            return self._class_index(int(text))
        raise ValueError(f"class {value!r} is not a class of {self.name!r}; its classes: "
                         + ", ".join(f"{k} {name}" for k, name in enumerate(self.class_names)))

    def sample(self, n: int, seed: int) -> "ImageDataset":
        """``n`` images drawn without replacement with ``numpy.random.default_rng(seed)``, kept
        in their original order (the images of ``np.sort(default_rng(seed).permutation(N)[:n])``):
        what ``deepclust fit --subset n --seed seed`` trains on."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(self):
            raise ValueError(f"subset size must be an integer between 1 and {len(self)} (the images "
                             f"of {self.name!r}), got {n!r}")
        chosen = np.sort(np.random.default_rng(seed).permutation(len(self))[:n])
        return self.subset(chosen, draw={"subset": int(n), "subset_seed": int(seed), "subset_of": len(self)})

    def __repr__(self) -> str:
        c, h, w = self.shape
        lab = "unlabelled" if self.labels is None else f"n_classes={self.n_classes}"
        return f"ImageDataset(name={self.name!r}, n={len(self)}, shape=({c}, {h}, {w}), {lab})"


def _part_indices(name, members, n: int) -> np.ndarray:
    """``members`` of the part ``name`` as an int64 index array, checked against ``n`` images."""
    members = np.asarray(members)
    if members.ndim != 1 or (members.size and members.dtype.kind not in "iu"):
        raise ValueError(f"ImageDataset.parts[{name!r}] must be a 1-D integer index array; got "
                         f"{members.dtype} of shape {members.shape}")
    if members.size and (members.min() < 0 or members.max() >= n):
        raise ValueError(f"ImageDataset.parts[{name!r}] holds indices {members.min()}..{members.max()}, "
                         f"outside the {n} images")
    return members.astype(np.int64, copy=False)
