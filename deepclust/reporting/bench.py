"""``deepclust bench``: every method and the k-means baselines on the same data and seeds.

Each deep method is trained with its ``cpu-fashion-mnist`` preset (or ``preset``) under a
wall-clock budget of ``budget_minutes`` per run; the baselines are k-means on pixels and k-means
on the features of a randomly initialised backbone. Every run keeps its folder (config, log,
metrics, model, data.json) under ``runs_dir``; the table is rewritten after every run, so an
interrupted benchmark still leaves the finished rows.
"""
from __future__ import annotations

import inspect
import os
import platform
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from deepclust.data import ImageDataset, load_dataset, write_source
from deepclust.engine.runtime import resolve_device
from deepclust.methods import DeepClusterer, get_method, list_methods
from deepclust.reporting.memory import PeakMemory
from deepclust.reporting.table import write_results

DEFAULT_PRESET = "cpu-fashion-mnist"
BASELINE_METHOD = "kmeans"


@dataclass
class BenchSettings:
    dataset: str
    budget_minutes: float
    methods: str | list[str] = "all"
    seeds: list[int] = field(default_factory=lambda: [0])
    preset: str | None = None
    subset: int | None = None
    subset_seed: int = 0
    split: str = "all"
    imbalance: int = 0
    data_root: str | None = None
    out: str = "benchmarks/results"
    runs_dir: str | None = None
    device: str = "auto"
    n_clusters: int | None = None
    baselines: list[str] = field(default_factory=lambda: ["pixels", "small_cnn"])
    baseline_image_size: int | None = None
    kmeans_n_init: int = 10
    verbose: bool = False


def deep_methods() -> list[str]:
    """Registered methods trained by gradient descent (every :class:`DeepClusterer`)."""
    return [name for name in list_methods() if issubclass(get_method(name), DeepClusterer)]


def resolve_methods(spec: str | list[str]) -> list[str]:
    """``"all"`` → every registered deep method; ``"a,b"`` → those (``kmeans`` is always a baseline)."""
    if isinstance(spec, str):
        if spec.strip() == "all":
            return deep_methods()
        spec = [part.strip() for part in spec.split(",") if part.strip()]
    if not spec:
        raise ValueError("--methods is empty; give 'all' or a comma-separated list of method names")
    names = []
    for name in spec:
        get_method(name)  # raises ValueError naming the valid methods
        if name != BASELINE_METHOD and name not in names:
            names.append(name)
    return names


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    return f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()}, " \
           f"{torch.get_num_threads()} torch threads, torch {torch.__version__})"


def load_bench_data(settings: BenchSettings) -> ImageDataset:
    """The benchmark's data: imbalance draw and subset draw both seeded with ``subset_seed``."""
    dataset = load_dataset(settings.dataset, root=settings.data_root, split=settings.split,
                           imbalance=settings.imbalance, seed=settings.subset_seed)
    return dataset if settings.subset is None else dataset.sample(settings.subset, settings.subset_seed)


def _accepted(cls) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


def _error_note(error: BaseException) -> str:
    last = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    where = f" ({Path(last[0].filename).name}:{last[0].lineno})" if last else ""
    return f"{type(error).__name__}: {error}{where}".replace("\n", " ")


def run_deep_method(name: str, dataset: ImageDataset, seed: int, settings: BenchSettings, run_dir: Path,
                    n_clusters: int, device: torch.device) -> dict:
    preset = settings.preset or DEFAULT_PRESET
    record = {"name": name, "kind": "method", "method": name, "preset": preset, "seed": seed}
    cls = get_method(name)
    try:
        cls.preset_config(preset)
    except Exception as error:  # no preset file yet, or no such preset
        return {**record, "status": "skipped", "note": f"preset '{preset}' not available: {error}"}
    missing = {"preset", "max_minutes", "out_dir", "seed", "device"} - _accepted(cls)
    if missing:
        return {**record, "status": "skipped", "note": f"estimator takes no {', '.join(sorted(missing))}"}
    estimator = cls(n_clusters=n_clusters, preset=preset, max_minutes=settings.budget_minutes,
                    device=str(device), seed=seed, out_dir=str(run_dir), verbose=settings.verbose)
    write_source(run_dir, dataset)
    with PeakMemory(device) as peak:
        estimator.fit(dataset)
    metrics = estimator.metrics_
    return {**record, "status": "ok", "note": "", **_metric_fields(metrics),
            "train_seconds": metrics.get("train_seconds"), "images_per_second": metrics.get("images_per_second"),
            "epochs": metrics.get("epochs"), "steps": metrics.get("steps"), "stop_reason": metrics.get("stop_reason"),
            "peak_memory_mb": peak.megabytes, "memory_kind": peak.kind, "device": metrics.get("device", str(device)),
            "run_dir": str(run_dir)}


def _metric_fields(metrics: dict) -> dict:
    keys = ("acc", "nmi", "ari", "n_clusters_used", "largest_cluster_share", "n_samples")
    return {key: metrics.get(key) for key in keys}


def baseline_name(features: str) -> str:
    return "k-means (pixels)" if features == "pixels" else f"k-means (random {features})"


def run_baseline(features: str, dataset: ImageDataset, seed: int, settings: BenchSettings, run_dir: Path,
                 n_clusters: int, device: torch.device) -> dict:
    record = {"name": baseline_name(features), "kind": "baseline", "method": BASELINE_METHOD,
              "preset": f"features={features}", "seed": seed}
    cls = get_method(BASELINE_METHOD)
    estimator = cls(n_clusters=n_clusters, features=features, n_init=settings.kmeans_n_init,
                    image_size=settings.baseline_image_size, device=str(device), seed=seed, out_dir=str(run_dir))
    write_source(run_dir, dataset)
    with PeakMemory(device) as peak:
        estimator.fit(dataset)
    metrics = estimator.metrics_
    seconds = float(metrics["seconds"])
    return {**record, "status": "ok", "note": "", **_metric_fields(metrics), "train_seconds": seconds,
            "images_per_second": len(dataset) / max(seconds, 1e-9), "peak_memory_mb": peak.megabytes,
            "memory_kind": peak.kind, "device": metrics.get("device", str(device)), "run_dir": str(run_dir)}


def run_benchmark(settings: BenchSettings, command: str, log: Callable[[str], None] = print) -> list[Path]:
    """Train everything, write ``<out>/<dataset>.md/.csv/.json`` and return their paths."""
    if settings.budget_minutes is None or not settings.budget_minutes > 0:
        raise ValueError(f"--budget-minutes must be a positive number of minutes, got {settings.budget_minutes}")
    if not settings.seeds:
        raise ValueError("--seeds is empty; give e.g. --seeds 0 or --seeds 0,1,2")
    methods = resolve_methods(settings.methods)
    device = resolve_device(settings.device)
    dataset = load_bench_data(settings)
    n_clusters = settings.n_clusters or dataset.n_classes
    if not n_clusters:
        raise ValueError(f"dataset '{dataset.name}' has no labels: give --n-clusters")
    runs_dir = Path(settings.runs_dir or Path("runs") / f"bench-{dataset.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    meta = {
        "dataset": dataset.name, "command": command, "machine": machine_description(device),
        "date": time.strftime("%Y-%m-%d"), "n_samples": len(dataset), "n_clusters": n_clusters,
        "seeds": list(settings.seeds), "budget_minutes": settings.budget_minutes,
        "preset": settings.preset or DEFAULT_PRESET, "split": settings.split, "subset": settings.subset,
        "imbalance": settings.imbalance,
        "runs_dir": str(runs_dir), "notes": [],
    }
    if settings.imbalance:
        meta["notes"].append(f"Class-imbalance protocol {settings.imbalance} of HardReg applied with seed "
                             f"{settings.subset_seed} (the same images for every method and seed).")
    if settings.subset is not None:
        meta["notes"].append(f"A subset of {settings.subset} images drawn with seed {settings.subset_seed} "
                             f"(the same images for every method and seed).")
    jobs: list[tuple[str, str, int]] = [("method", name, seed) for name in methods for seed in settings.seeds]
    jobs += [("baseline", features, seed) for features in settings.baselines for seed in settings.seeds]
    log(f"benchmark on {dataset.name} ({len(dataset)} images, K={n_clusters}) on {device}: "
        f"{len(methods)} method(s) {', '.join(methods) or '(none)'}, baselines {', '.join(settings.baselines) or '(none)'}, "
        f"seeds {', '.join(map(str, settings.seeds))}; run folders in {runs_dir}")
    records: list[dict] = []
    paths: list[Path] = []
    for kind, name, seed in jobs:
        folder = f"{name}-seed{seed}" if kind == "method" else f"kmeans-{name}-seed{seed}"
        run_dir = runs_dir / folder
        started = time.perf_counter()
        try:
            if kind == "method":
                record = run_deep_method(name, dataset, seed, settings, run_dir, n_clusters, device)
            else:
                record = run_baseline(name, dataset, seed, settings, run_dir, n_clusters, device)
        except Exception as error:  # one broken method must not stop the benchmark
            label = name if kind == "method" else baseline_name(name)
            record = {"name": label, "kind": kind, "method": name if kind == "method" else BASELINE_METHOD,
                      "preset": (settings.preset or DEFAULT_PRESET) if kind == "method" else f"features={name}",
                      "seed": seed, "status": "failed", "note": _error_note(error), "run_dir": str(run_dir)}
        records.append(record)
        if record["status"] == "ok":
            shown = "  ".join(f"{key.upper()} {record[key]:.4f}" for key in ("acc", "nmi", "ari")
                              if record.get(key) is not None)
            log(f"  {record['name']} seed {seed}: {shown} ({time.perf_counter() - started:.0f} s)")
        else:
            log(f"  {record['name']} seed {seed}: {record['status']} — {record['note']}")
        paths = write_results(records, settings.out, meta)
    return paths
