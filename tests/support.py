"""Helpers shared by test modules (import as ``from support import ...``; ``conftest`` is ambiguous)."""
from __future__ import annotations

import gzip
import json
import math
import os
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from deepclust.engine.config import deep_merge, preset_config

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
#: DEEPCLUST_FULL=1 runs the slow real-data tests at full size; by default (and in CI) they run short.
FULL = os.environ.get("DEEPCLUST_FULL") == "1"


def naive_sinkhorn(scores, eps, n_iters):
    """SwAV's Sinkhorn-Knopp transcribed with python floats, no stabilisation: B×K lists in and out."""
    b, k = len(scores), len(scores[0])
    q = [[math.exp(scores[i][j] / eps) for i in range(b)] for j in range(k)]  # K x B
    total = sum(sum(row) for row in q)
    q = [[v / total for v in row] for row in q]
    for _ in range(n_iters):
        for j in range(k):  # each cluster (row) -> mass 1/K
            r = sum(q[j])
            q[j] = [v / r / k for v in q[j]]
        for i in range(b):  # each sample (column) -> mass 1/B
            c = sum(q[j][i] for j in range(k))
            for j in range(k):
                q[j][i] = q[j][i] / c / b
    return [[q[j][i] * b for j in range(k)] for i in range(b)]  # B x K


def naive_kmeans(points, n_groups, n_iterations):
    """Lloyd's algorithm with lists and ``n_groups`` slots, as DCHL's reference runs it: seeds =
    the first rows (fewer than ``n_groups`` when the batch is smaller), squared Euclidean, first
    index on ties; every update fills all ``n_groups`` slots, an empty group counting 1 (centroid
    0). Labels of the last assignment, centroids their means."""
    points = [[float(v) for v in row] for row in points]
    dim = len(points[0])
    centroids = [list(row) for row in points[:n_groups]]
    for _ in range(n_iterations):
        labels = []
        for p in points:
            distances = [sum((a - b) ** 2 for a, b in zip(p, c)) for c in centroids]
            labels.append(distances.index(min(distances)))
        centroids = []
        for k in range(n_groups):
            members = [p for p, label in zip(points, labels) if label == k]
            count = max(len(members), 1)
            centroids.append([sum(p[d] for p in members) / count for d in range(dim)])
    return labels, centroids


def naive_cos(u, v):
    """cos(u, v) of two sequences, with python floats."""
    dot = sum(float(a) * float(b) for a, b in zip(u, v))
    return dot / (math.sqrt(sum(float(a) ** 2 for a in u)) * math.sqrt(sum(float(b) ** 2 for b in v)))


def unit(*values):
    """The vector ``values`` scaled to length 1, as a list."""
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def on_circle(degrees):
    """The unit vector at ``degrees`` on the circle."""
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


def unit_rows(*shape, seed=0):
    """Seeded random rows of length 1."""
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=1)


def separated_groups(n_per_group=3, n_groups=4, dim=8, noise=0.05, seed=0):
    """Unit vectors around orthogonal centres; rows 0..n_groups-1 hold one member of each group."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.eye(dim)[:n_groups]
    rows = centres.repeat(n_per_group, 1) + noise * torch.randn(n_per_group * n_groups, dim, generator=generator)
    return F.normalize(rows, dim=1), torch.arange(n_groups).repeat(n_per_group)


def three_views(shape, seed, softmax=False):
    """Seeded random (online, target) triples of tensors, as HTCN's three views give them."""
    generator = torch.Generator().manual_seed(seed)
    views = [torch.randn(*shape, generator=generator) for _ in range(6)]
    if softmax:
        views = [v.softmax(dim=1) for v in views]
    return views[:3], views[3:]


# --- tiny methods ---------------------------------------------------------------------------------
#: The small CNN at quarter width (64 features), the backbone of the tiny deep methods.
SMALL_CNN = {"name": "small_cnn", "width": 0.25}
#: Each method made small for fast tests: overrides of its ``cpu-fashion-mnist`` preset that keep
#: every loss term and shrink the networks (and the noise rows, projections, groups, restarts).
TINY = {
    "concurl": {"backbone": SMALL_CNN,
                "method": {"low_dim": 8, "hidden_dim": 32, "out_dim": 16, "nce_k": 32, "n_transforms": 3,
                           "projection_dim": 4}},
    "dchl": {"backbone": SMALL_CNN, "method": {"hidden_dim": 32, "instance_dim": 16, "group_dim": 16, "n_groups": 8}},
    "hadis": {"backbone": SMALL_CNN,
              "method": {"projector_hidden_dim": 32, "predictor_hidden_dim": 32, "feature_dim": 16,
                         "kmeans_restarts": 1}},
    "ae-umap-gmm": {"method": {"hidden_dims": [32, 32]}, "inference": {"n_components": 4, "n_epochs": 30}},
    "hardreg": {"method": {"nz": 16}},
    "htcn": {"backbone": SMALL_CNN,
             "method": {"projector_hidden": 32, "projection_dim": 16, "predictor_hidden": 32, "cluster_hidden": 16}},
}


def tiny_config(method: str, *overrides: dict, heads: bool = True) -> dict:
    """``method``'s ``cpu-fashion-mnist`` preset made small by :data:`TINY`, then ``overrides`` in
    order. ``heads=False`` keeps the preset's ``method`` section and takes only the small backbone."""
    tiny = TINY[method] if heads else {key: value for key, value in TINY[method].items() if key != "method"}
    config = preset_config(method, "cpu-fashion-mnist")
    for override in (tiny, *overrides):
        config = deep_merge(config, override)
    return config


def set_options(overrides: dict, prefix: str = "") -> list[str]:
    """A nested configuration dict as the command line's ``--set key=value`` arguments."""
    options = []
    for key, value in overrides.items():
        if isinstance(value, dict):
            options += set_options(value, f"{prefix}{key}.")
        else:
            options += ["--set", f"{prefix}{key}={json.dumps(value)}"]
    return options


def cli_fit(method: str, out, *options: str) -> dict:
    """``deepclust fit`` of ``method`` for one epoch of its ``cpu-fashion-mnist`` preset on 512
    Fashion-MNIST images, with the extra command-line ``options``; the run's metrics.json."""
    from deepclust.cli import main

    assert main(["fit", "--method", method, "--dataset", "fashion-mnist", "--subset", "512",
                 "--preset", "cpu-fashion-mnist", "--set", "training.epochs=1", *options,
                 "--out", str(out), "--quiet"]) == 0
    return json.loads((Path(out) / "metrics.json").read_text())


def fashion_mnist_available() -> bool:
    return os.path.isdir(FASHION_MNIST_DIR)


def fashion_mnist_subset(n: int, seed: int = 0):
    """A seeded random subset of ``n`` Fashion-MNIST images (all classes) as an ImageDataset."""
    from deepclust.data import load_dataset

    data = load_dataset("fashion-mnist")
    return data.subset(np.sort(np.random.default_rng(seed).permutation(len(data))[:n]))


def write_image_folder(root, sizes, n_classes: int = 2) -> Path:
    """Solid-colour PNG images of the given (width, height) in ``root/<class>/``, image k in class k mod
    ``n_classes``; returns ``root``."""
    from PIL import Image

    root = Path(root)
    for k, (width, height) in enumerate(sizes):
        folder = root / f"class{k % n_classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (width, height), (40 * k % 256, 0, 0)).save(folder / f"{k}.png")
    return root


class Loaded(Exception):
    """Stops a fit once its data is loaded."""


def stop_after_loading(monkeypatch, module: str) -> list:
    """Make ``module``'s load_dataset load for real, keep the dataset and stop the caller with Loaded."""
    from deepclust.data import load_dataset

    loaded = []

    def load_and_stop(*args, **kwargs):
        loaded.append(load_dataset(*args, **kwargs))
        raise Loaded

    monkeypatch.setattr(f"{module}.load_dataset", load_and_stop)
    return loaded



#: Runs ``deepclust`` in a fresh process with the toy method registered (``python -c`` of this, then the args).
CLI_BOOTSTRAP = (
    "import sys; sys.path.insert(0, {tests!r}); import torch; torch.set_num_threads(1); import toy_method; "
    "from deepclust.cli import main; sys.exit(main(sys.argv[1:]))"
)


def cli_command(*args: str) -> list[str]:
    """The argv of ``deepclust ARGS`` in a subprocess (the toy method registered, one torch thread)."""
    import sys

    return [sys.executable, "-c", CLI_BOOTSTRAP.format(tests=str(Path(__file__).resolve().parent)), *map(str, args)]


def run_cli(*args: str, timeout: float = 300):
    """``deepclust ARGS`` in a subprocess, waited for: the CompletedProcess (text stdout/stderr)."""
    import subprocess

    return subprocess.run(cli_command(*args), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def load_benchmark(name: str):
    """The module of the script ``benchmarks/<name>.py`` (the scripts are not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"deepclust_benchmark_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_sklearn_checks(estimator, expected_failed: dict[str, str]) -> int:
    """Run scikit-learn's ``check_estimator`` on ``estimator``: exactly the checks of ``expected_failed``
    (check name → why it does not apply) fail, every other one passes (but the array-API check,
    skipped without ``SCIPY_ARRAY_API``). Returns the number of checks that passed."""
    from sklearn.utils.estimator_checks import check_estimator

    results = check_estimator(estimator, on_fail=None, expected_failed_checks=expected_failed)
    unexpected = [(r["check_name"], r["status"], str(r["exception"])[:300]) for r in results
                  if r["status"] != ("xfail" if r["expected_to_fail"] else "passed")
                  and not (r["status"] == "skipped" and r["check_name"] == "check_array_api_input")]
    assert not unexpected, unexpected
    return sum(r["status"] == "passed" for r in results)


# IDX files (MNIST / Fashion-MNIST), as the loaders read them
def idx_bytes(array, magic=None):
    """IDX by the spec: magic 0x0000 08 <ndim>, big-endian uint32 dims, row-major bytes."""
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = (0x08 << 8) | array.ndim
    head = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    return head + array.tobytes()


def write_idx(path, array, gz=True, magic=None):
    data = idx_bytes(array, magic)
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def write_idx_dataset(folder, n_train=6, n_test=4, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    ext = ".gz" if gz else ""
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", x, gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", y, gz)
        out[split] = (x, y)
    return out
