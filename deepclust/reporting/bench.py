"""``deepclust bench``: every method and the strongest simple baselines on the same data and seeds.

Each deep method is trained with its ``cpu-fashion-mnist`` preset (or ``preset``), with the
``overrides`` (``--set KEY=VALUE``) on top, under a wall-clock budget of ``budget_minutes`` per
run. The baselines (``--baselines``, see :func:`parse_baseline`) are k-means and UMAP + GMM on
pixels or on a random backbone's features, and N2D (``ae-umap-gmm``), whose autoencoder gets the
same preset rule and budget as a method.
Every run is repeated for every seed (default 0, 1, 2); the table shows mean ± sample standard
deviation and the JSON keeps every run. Each run also scores its embeddings with the labels
(:mod:`deepclust.evaluation.embedding_quality`), and a closing line per method says whether its
mean ACC beats the best baseline's by more than the seeds' spread
(:func:`deepclust.reporting.table.compare_with_best_baseline`).

Every run keeps its folder (config, log, metrics, model, data.json) under ``runs_dir``; the table
is rewritten after every run, so an interrupted benchmark still leaves the finished rows, and
``resume`` keeps the finished runs (:func:`claim_run_folders`).

Rows beside a deep method's own, from the same training: ``refine`` (``<method> + refine``, after
the refine stage), ``readout`` (``<method> + UMAP-GMM``, its embeddings clustered by UMAP +
GMM; a kept run gets its readout row from its ``model.pt``, :func:`resumed_rows`) and ``ensemble``
(the consensus of each seed's deep runs).

Two checks that a recipe holds beyond the full table: ``classes`` benchmarks a class subset (its own
K), and ``held_out`` (a split, with ``split="train"``) scores every run on images it never trained
on: the fitted estimator's ``predict`` and ``transform`` on the held-out split, the training images'
scores kept as ``fit_acc``, ``fit_nmi``, ``fit_ari``.
"""
from __future__ import annotations

import inspect
import json
import os
import platform
import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from deepclust.backbones import list_backbones
from deepclust.cluster.umap_gmm import UmapGmm, import_umap
from deepclust.data import ImageDataset, load_dataset, write_source
from deepclust.engine.config import ConfigError, deep_merge, parse_assignments
from deepclust.engine.run_folder import RunFolderError, clear_run, run_markers
from deepclust.engine.runtime import matmul_gflops, reference_matmul_size, resolve_device
from deepclust.ensemble import ensemble_runs, write_labels
from deepclust.evaluation import evaluate_clustering
from deepclust.evaluation.embedding_quality import PROTOCOL as EMBEDDING_QUALITY_PROTOCOL
from deepclust.evaluation.embedding_quality import embedding_quality
from deepclust.methods import DeepClusterer, get_method, list_methods, load_estimator
from deepclust.methods.features import PIXELS
from deepclust.reporting.memory import PeakMemory
from deepclust.reporting.table import (
    COMPARISON_RULE, aggregate_records, compare_with_best_baseline, comparison_lines, write_results,
)

DEFAULT_PRESET = "cpu-fashion-mnist"
DEFAULT_SEEDS = (0, 1, 2)
#: ``--baselines all``: the strongest simple baselines, one of each kind.
ALL_BASELINES = ("kmeans", "umap-gmm", "ae-umap-gmm")
#: The 80/20 split of every linear probe (the same images for every method and seed).
PROBE_SEED = 0


@dataclass
class BenchSettings:
    dataset: str
    budget_minutes: float
    methods: str | list[str] = "all"
    seeds: list[int] = field(default_factory=lambda: list(DEFAULT_SEEDS))
    preset: str | None = None
    subset: int | None = None
    subset_seed: int = 0
    split: str = "all"
    classes: list | None = None  #: the class subset benchmarked (label indices or names); None: every class
    held_out: str | None = None  #: score every run on this split instead of the training images
    imbalance: int = 0
    data_root: str | None = None
    out: str = "benchmarks/results"
    runs_dir: str | None = None
    device: str = "auto"
    n_clusters: int | None = None
    baselines: str | list[str] = "all"
    baseline_image_size: int | None = None
    kmeans_n_init: int = 10
    embedding_quality: bool = True
    overwrite: bool = False  #: run again the jobs whose run folders already hold runs
    resume: bool = False  #: keep the finished runs already in the run folders (their earlier rows)
    overrides: list[str] = field(default_factory=list)  #: ``KEY=VALUE`` over every deep method's preset (``--set``)
    refine: dict | None = None  # the deep methods' ``refine`` section overrides (None: no refine stage)
    readout: dict | None = None  #: UMAP + GMM options of each deep method's ``+ UMAP-GMM`` row (None: no such row)
    ensemble: bool = False
    verbose: bool = False


@dataclass(frozen=True)
class Baseline:
    """One baseline of the benchmark: ``spelling`` (its ``--baselines`` name), ``label`` (its row),
    ``method`` (registry name) and ``features`` (what it clusters; None for a trained baseline)."""

    spelling: str
    label: str
    method: str
    features: str | None = None

    @property
    def folder(self) -> str:
        return self.method if self.features is None else f"{self.method}-{self.features}"

    @property
    def preset_note(self) -> str | None:
        return None if self.features is None else f"features={self.features}"


_FEATURE_BASELINES = {"kmeans": "k-means", "umap-gmm": "UMAP + GMM"}
_TRAINED_BASELINES = {"ae-umap-gmm": "AE + UMAP + GMM (N2D)"}


def baseline_spellings() -> list[str]:
    """Every name ``--baselines`` accepts, in words (for error messages and ``--help``)."""
    return ["all", "none", *ALL_BASELINES, "kmeans-<backbone>", "umap-gmm-<backbone>",
            "(old) pixels = kmeans", "(old) <backbone> = kmeans-<backbone>"]


def parse_baseline(name: str) -> Baseline:
    """``kmeans`` / ``umap-gmm`` (on pixels), ``kmeans-<backbone>`` / ``umap-gmm-<backbone>`` (on a
    randomly initialised backbone, e.g. ``kmeans-small_cnn``), ``ae-umap-gmm`` (N2D, trained).
    The old spellings ``pixels`` and ``<backbone>`` mean k-means on those features."""
    name = name.strip()
    if name in _TRAINED_BASELINES:
        return Baseline(name, _TRAINED_BASELINES[name], name)
    if name == PIXELS or name in list_backbones():  # the spellings of earlier versions: k-means features
        name = f"kmeans-{name}"
    for method, words in _FEATURE_BASELINES.items():
        features = PIXELS if name == method else name[len(method) + 1:] if name.startswith(f"{method}-") else None
        if features is None:
            continue
        if features != PIXELS and features not in list_backbones():
            raise ValueError(f"baseline '{name}': '{features}' is neither pixels nor a backbone "
                             f"({', '.join(list_backbones())})")
        label = f"{words} ({PIXELS})" if features == PIXELS else f"{words} (random {features})"
        spelling = method if features == PIXELS else f"{method}-{features}"
        return Baseline(spelling, label, method, features)
    raise ValueError(f"unknown baseline '{name}'; valid: {', '.join(baseline_spellings())}")


def resolve_baselines(spec: str | list[str]) -> list[Baseline]:
    """``"all"`` → :data:`ALL_BASELINES`; ``"none"`` → none; ``"a,b"`` or a list → those, once each."""
    names = [part.strip() for part in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    names = [name for name in names if name]
    if names == ["none"]:
        return []
    baselines: list[Baseline] = []
    for name in names:
        for baseline in map(parse_baseline, ALL_BASELINES if name == "all" else [name]):
            if baseline not in baselines:
                baselines.append(baseline)
    return baselines


def is_baseline_method(name: str) -> bool:
    return bool(getattr(get_method(name), "baseline", False))


def deep_methods() -> list[str]:
    """Registered methods trained by gradient descent (every :class:`DeepClusterer` that is not a baseline)."""
    return [name for name in list_methods()
            if issubclass(get_method(name), DeepClusterer) and not is_baseline_method(name)]


def resolve_methods(spec: str | list[str]) -> tuple[list[str], list[str]]:
    """(deep methods, baselines named among them): ``"all"`` → every deep method; ``"a,b"`` → those.
    A baseline's method name (``kmeans``, ``umap-gmm``, ``ae-umap-gmm``) joins the baselines."""
    if isinstance(spec, str):
        if spec.strip() == "all":
            return deep_methods(), []
        spec = [part.strip() for part in spec.split(",") if part.strip()]
    if not spec:
        raise ValueError("--methods is empty; give 'all' or a comma-separated list of method names")
    names, baselines = [], []
    for name in spec:
        get_method(name)  # raises ValueError naming the valid methods
        chosen = baselines if is_baseline_method(name) else names
        if name not in chosen:
            chosen.append(name)
    return names, baselines


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    return f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()}, " \
           f"{torch.get_num_threads()} torch threads, torch {torch.__version__})"


#: The file of a run's labels of the held-out images (index,label).
HELD_OUT_LABELS = "held-out-labels.csv"
#: The readout's labels in a run folder: of the training images, and of the held-out ones.
READOUT_LABELS, HELD_OUT_READOUT_LABELS = "umap-gmm-labels.csv", "held-out-umap-gmm-labels.csv"
#: The training scores a held-out row keeps as ``fit_<score>``.
FIT_SCORES = ("acc", "nmi", "ari")
#: How a readout row's name ends (``--readout``).
READOUT_SUFFIX = " + UMAP-GMM"


def load_bench_data(settings: BenchSettings) -> ImageDataset:
    """The benchmark's training data: imbalance draw and subset draw both seeded with ``subset_seed``."""
    dataset = load_dataset(settings.dataset, root=settings.data_root, split=settings.split, classes=settings.classes,
                           imbalance=settings.imbalance, seed=settings.subset_seed)
    return dataset if settings.subset is None else dataset.sample(settings.subset, settings.subset_seed)


def load_held_out(settings: BenchSettings) -> ImageDataset | None:
    """``settings.held_out``: the images every run is scored on, all of that split (same classes); None
    without one. Refused when they could overlap the training split."""
    if settings.held_out is None:
        return None
    if "all" in (settings.split, settings.held_out) or settings.split == settings.held_out:
        raise ValueError(f"--held-out {settings.held_out} needs a training split that holds none of its images "
                         f"(e.g. --split train --held-out test); got --split {settings.split}")
    return load_dataset(settings.dataset, root=settings.data_root, split=settings.held_out, classes=settings.classes)


def results_name(settings: BenchSettings, dataset: ImageDataset) -> str:
    """The stem of the results files and of the default run folder: the dataset's name, then the class
    subset's names, the held-out split and the ``--set`` overrides (so that these checks and variants
    never overwrite the full table)."""
    words = [dataset.name]
    if settings.classes is not None:
        words += ["classes", *dataset.class_names]
    if settings.held_out is not None:
        words += ["held-out", settings.held_out]
    if settings.overrides:
        words += ["set", *settings.overrides]
    return "-".join(re.sub(r"[\W_]+", "-", word.lower()).strip("-") for word in words)


def _accepted(cls) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


def _error_note(error: BaseException) -> str:
    last = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    where = f" ({Path(last[0].filename).name}:{last[0].lineno})" if last else ""
    return f"{type(error).__name__}: {error}{where}".replace("\n", " ")


#: The clustering scores of a row.
METRIC_KEYS = ("acc", "nmi", "ari", "n_clusters_used", "largest_cluster_share", "n_samples")


def _metric_fields(metrics: dict) -> dict:
    return {key: metrics.get(key) for key in METRIC_KEYS}


def _embeddings_once(estimator, training: ImageDataset) -> Callable[[ImageDataset], np.ndarray]:
    """The fitted ``estimator``'s embeddings of an image set, computed once per set, so that the labelled
    embedding scores and the readout take the same; of its ``training`` images ``embedding_`` where the
    estimator keeps them, else ``transform``."""
    computed: dict[int, np.ndarray] = {}

    def embeddings(dataset: ImageDataset) -> np.ndarray:
        if id(dataset) not in computed:
            kept = getattr(estimator, "embedding_", None) if dataset is training else None
            computed[id(dataset)] = estimator.transform(dataset) if kept is None else kept
        return computed[id(dataset)]
    return embeddings


def _quality_fields(embeddings: Callable[[ImageDataset], np.ndarray], dataset: ImageDataset,
                    settings: BenchSettings, device: torch.device) -> dict:
    """The labelled scores of the run's ``embeddings`` of ``dataset``; a failure becomes a note, the run
    stays ``ok``."""
    if not settings.embedding_quality or dataset.labels is None:
        return {}
    try:
        return embedding_quality(embeddings(dataset), dataset.labels, seed=PROBE_SEED, device=device)
    except Exception as error:  # the clustering result stands without these scores
        return {"quality_note": f"embedding quality failed: {_error_note(error)}"}


def _held_out_fields(estimator, held_out: ImageDataset, settings: BenchSettings, run_dir: Path,
                     device: torch.device, embeddings: Callable[[ImageDataset], np.ndarray]) -> dict:
    """The scores of a fitted run on the held-out images (their labels also written to the run folder,
    for the ensemble), its scores on the training images kept as ``fit_*``."""
    labels = estimator.predict(held_out)
    write_labels(run_dir / HELD_OUT_LABELS, labels)
    trained = {f"fit_{key}": estimator.metrics_.get(key) for key in FIT_SCORES}
    scores = evaluate_clustering(held_out.labels, labels, estimator.n_clusters)
    return {**_metric_fields({**scores, "n_samples": len(held_out)}), **trained,
            **_quality_fields(embeddings, held_out, settings, device)}


def _fit(estimator, dataset: ImageDataset, settings: BenchSettings, run_dir: Path, device: torch.device,
         held_out: ImageDataset | None = None, readout: dict | None = None) -> dict:
    """Fit with peak-memory measurement; the fields every finished run records, scored on ``held_out``
    when given; with ``readout`` (UMAP + GMM options) also the run's ``readout`` (:func:`_readout_fields`),
    from the same embeddings."""
    write_source(run_dir, dataset)
    with PeakMemory(device) as peak:
        estimator.fit(dataset)
    embeddings = _embeddings_once(estimator, dataset)
    scores = ({**_metric_fields(estimator.metrics_), **_quality_fields(embeddings, dataset, settings, device)}
              if held_out is None else _held_out_fields(estimator, held_out, settings, run_dir, device, embeddings))
    note = scores.pop("quality_note", "")
    fields = {"status": "ok", "note": note, **scores,
              "peak_memory_mb": peak.megabytes, "memory_kind": peak.kind,
              "device": estimator.metrics_.get("device", str(device)), "run_dir": str(run_dir)}
    if readout is not None:
        fields["readout"] = _readout_fields(embeddings, dataset, readout, estimator.n_clusters, estimator.seed, run_dir,
                                            held_out)
    return fields


def check_overrides(methods: list[str], settings: BenchSettings) -> None:
    """Before any training: every deep method whose preset exists takes the ``--set`` overrides
    (known keys, values of the right types), else a ValueError naming the method and the key; an
    assignment without ``=`` is a ConfigError here, before anything is written."""
    if not settings.overrides:
        return
    config = parse_assignments(settings.overrides)
    preset = settings.preset or DEFAULT_PRESET
    for name in methods:
        cls = get_method(name)
        try:
            cls.preset_config(preset)
        except Exception:  # the job is skipped for its missing preset, as without --set
            continue
        if "config" not in _accepted(cls):
            raise ValueError(f"--set: method '{name}' takes no configuration")
        try:
            cls(n_clusters=2, preset=preset, config=config).resolved_config()
        except ConfigError as error:
            raise ValueError(f"--set: method '{name}': {error}") from None


def job_record(name: str, baseline: Baseline | None, seed: int, settings: BenchSettings) -> dict:
    """The fields that name one run of the benchmark (a deep method ``name``, or ``baseline``), whether
    it finishes or fails: its row name, kind, registry method, preset (or features), the ``--set``
    overrides of a deep method, and seed."""
    preset = settings.preset or DEFAULT_PRESET
    if baseline is None:
        overrides = {"overrides": list(settings.overrides)} if settings.overrides else {}
        return {"name": name, "kind": "method", "method": name, "preset": preset, **overrides, "seed": seed}
    return {"name": baseline.label, "kind": "baseline", "method": baseline.method,
            "preset": preset if baseline.features is None else baseline.preset_note, "seed": seed}


def run_trained(record: dict, dataset: ImageDataset, settings: BenchSettings, run_dir: Path,
                n_clusters: int, device: torch.device, held_out: ImageDataset | None = None) -> dict:
    """A method trained by the engine (a deep method, or the ``ae-umap-gmm`` baseline) under the budget;
    ``record`` is its :func:`job_record`. With ``--refine`` and ``held_out`` the method is fitted without
    the refine stage first, scored on the held-out images, then resumed with it (the method's training
    done, only the stage runs), so both rows are scored on the held-out images."""
    preset, kind, seed = record["preset"], record["kind"], record["seed"]
    cls = get_method(record["method"])
    try:
        cls.preset_config(preset)
    except Exception as error:  # no preset file yet, or no such preset
        return {**record, "status": "skipped", "note": f"preset '{preset}' not available: {error}"}
    missing = {"preset", "max_minutes", "out_dir", "seed", "device"} - _accepted(cls)
    if missing:
        return {**record, "status": "skipped", "note": f"estimator takes no {', '.join(sorted(missing))}"}
    config = parse_assignments(record.get("overrides", [])) if kind == "method" else {}
    refines = kind == "method" and settings.refine is not None

    def fit(refine: bool, resume: bool = False) -> tuple[DeepClusterer, dict]:
        options = deep_merge(config, {"refine": {**settings.refine, "enabled": True}}, strict=False) if refine \
            else config
        estimator = cls(n_clusters=n_clusters, preset=preset, max_minutes=settings.budget_minutes,
                        device=str(device), seed=seed, out_dir=str(run_dir), verbose=settings.verbose,
                        **({"config": options} if options else {}), **({"resume": True} if resume else {}))
        return estimator, _fit(estimator, dataset, settings, run_dir, device, held_out,
                               readout=settings.readout if kind == "method" else None)

    before_held_out = None
    if refines and held_out is not None:  # the unrefined model scored on the held-out images too
        _, unrefined = fit(refine=False)
        before_held_out = {key: unrefined[key] for key in (*METRIC_KEYS, *(f"fit_{key}" for key in FIT_SCORES))}
    estimator, fields = fit(refine=refines, resume=before_held_out is not None)
    metrics = estimator.metrics_
    staged = {key: metrics[key] for key in ("before_refine", "refine") if key in metrics}
    if before_held_out is not None:
        staged["before_refine"] = before_held_out
    return {**record, **fields, "train_seconds": metrics.get("train_seconds"),
            "images_per_second": metrics.get("images_per_second"), "epochs": metrics.get("epochs"),
            "steps": metrics.get("steps"), "stop_reason": metrics.get("stop_reason"), **staged}


def _readout_fields(embeddings: Callable[[ImageDataset], np.ndarray], dataset: ImageDataset, options: dict,
                    n_clusters: int, seed: int, run_dir: Path, held_out: ImageDataset | None = None) -> dict:
    """``--readout``: UMAP + GMM (:class:`~deepclust.cluster.umap_gmm.UmapGmm`, N2D's clustering step)
    fitted on the run's ``embeddings`` of its training images, in place of the method's own labels: the
    scores of those labels (with ``held_out``: of UMAP + GMM's ``predict`` on the held-out images'
    embeddings, the training images' kept as ``fit_*``), the options and the seconds it took. The labels
    are written to ``run_dir`` (:data:`READOUT_LABELS`, :data:`HELD_OUT_READOUT_LABELS`). A failure
    becomes a note; the method's own row stands."""
    started = time.perf_counter()
    try:
        clustering = UmapGmm(n_clusters, seed=seed, **options)
        labels = clustering.fit_predict(embeddings(dataset))
        write_labels(run_dir / READOUT_LABELS, labels)
        scores = {**evaluate_clustering(dataset.labels, labels, n_clusters), "n_samples": len(dataset)}
        if held_out is not None:
            trained = {f"fit_{key}": scores.get(key) for key in FIT_SCORES}
            held_out_labels = clustering.predict(embeddings(held_out))
            write_labels(run_dir / HELD_OUT_READOUT_LABELS, held_out_labels)
            scores = {**evaluate_clustering(held_out.labels, held_out_labels, n_clusters),
                      **trained, "n_samples": len(held_out)}
    except Exception as error:
        return {"status": "failed", "options": options, "note": f"UMAP + GMM readout failed: {_error_note(error)}"}
    return {"status": "ok", "options": options, **scores, "seconds": time.perf_counter() - started}


def refined_rows(record: dict) -> list[dict]:
    """A method fitted with ``--refine`` gives two rows from one training: ``<method>`` with its
    metrics before refinement (``before_refine``) and ``<method> + refine`` with those after, its
    embedding scores and the time of both stages. Any other record is its own row."""
    before, stage = record.pop("before_refine", None), record.pop("refine", None)
    if before is None:
        return [record]
    kept = ("name", "kind", "method", "preset", "overrides", "seed", "status", "device", "run_dir", "peak_memory_mb",
            "memory_kind", "train_seconds", "images_per_second", "epochs", "steps", "stop_reason")
    unrefined = {**{key: record[key] for key in kept if key in record}, **_metric_fields(before),
                 **{key: before[key] for key in before if key.startswith("fit_")},
                 "n_samples": before.get("n_samples") or record.get("n_samples"),
                 "note": "before refinement (one training with its + refine row)"}
    refined = {**record, "name": f"{record['name']} + refine",
               "train_seconds": (record.get("train_seconds") or 0) + stage["train_seconds"],
               "note": f"{stage['epochs']} refine epochs ({stage['stop_reason']}) after the method's "
                       f"{record.get('epochs')}; {record.get('note') or ''}".rstrip("; ")}
    return [unrefined, refined]


def readout_rows(record: dict) -> list[dict]:
    """A method benchmarked with ``--readout`` gives, besides its own row, ``<row> + UMAP-GMM``: the
    same run and embeddings, labelled by UMAP + GMM on them (:func:`_readout_fields`; its options kept
    as ``readout_options``); its time adds the readout's to the training's. Any other record is its
    own row."""
    readout = record.pop("readout", None)
    if readout is None:
        return [record]
    name = f"{record['name']}{READOUT_SUFFIX}"
    if readout["status"] != "ok":
        return [record, {**{key: record[key] for key in ("kind", "method", "preset", "overrides", "seed", "run_dir")
                            if key in record},
                         "name": name, "status": "failed", "note": readout["note"]}]
    scored = {**_metric_fields(readout), **{f"fit_{key}": readout[f"fit_{key}"] for key in FIT_SCORES
                                            if f"fit_{key}" in readout}}
    return [record, {**record, **scored, "name": name, "readout_options": readout["options"],
                     "train_seconds": (record.get("train_seconds") or 0) + readout["seconds"],
                     "note": f"UMAP + GMM on the embeddings ({readout['seconds']:.0f} s) after the method's "
                             f"{record.get('epochs')} epochs; {record.get('note') or ''}".rstrip("; ")}]


def resumed_rows(rows: list[dict], settings: BenchSettings, dataset: ImageDataset, run_dir: Path,
                 n_clusters: int, device: torch.device, held_out: ImageDataset | None = None) -> list[dict]:
    """The rows of a run kept by ``--resume``, its readout row made to follow this benchmark's
    ``--readout``: dropped without it; kept when it was made with the same options; else (none, it
    failed, or other options) made now from the run's ``model.pt``, without training again."""
    own = [row for row in rows if not row["name"].endswith(READOUT_SUFFIX)]
    if settings.readout is None or own[-1].get("kind") != "method":
        return own
    earlier = [row for row in rows if row["name"].endswith(READOUT_SUFFIX)]
    if earlier and earlier[-1].get("readout_options") == settings.readout:
        return rows
    estimator = load_estimator(run_dir / "model.pt", device=str(device))
    readout = _readout_fields(_embeddings_once(estimator, dataset), dataset, settings.readout, n_clusters,
                              own[-1]["seed"], run_dir, held_out)
    return own[:-1] + readout_rows({**own[-1], "readout": readout})


def run_ensemble(records: list[dict], seed: int, runs_dir: Path, n_clusters: int,
                 held_out: ImageDataset | None = None) -> dict | None:
    """``--ensemble``: the consensus (:func:`deepclust.ensemble.ensemble_runs`) of the deep
    methods' finished runs of ``seed`` (with ``held_out``: of their labels of the held-out images);
    None when fewer than two finished."""
    members = {r["run_dir"]: r["method"] for r in records
               if r["kind"] == "method" and r["seed"] == seed and r["status"] == "ok" and r["method"] != "ensemble"}
    if len(members) < 2:
        return None
    record = {"name": f"ensemble ({' + '.join(members.values())})", "kind": "method", "method": "ensemble",
              "preset": "consensus of the runs above", "seed": seed}
    out = runs_dir / f"ensemble-seed{seed}"
    try:
        scored = {} if held_out is None else {"labels_file": HELD_OUT_LABELS, "truth": held_out.labels}
        result = ensemble_runs(list(members), out, n_clusters=n_clusters, seed=seed, overwrite=True, **scored).metrics
    except Exception as error:  # the members' rows stand without it
        return {**record, "status": "failed", "note": _error_note(error), "run_dir": str(out)}
    return {**record, "status": "ok", "note": f"consensus J {result['objective']:.4f}",
            **_metric_fields(result), "train_seconds": result["seconds"], "run_dir": str(out)}


def run_feature_baseline(record: dict, baseline: Baseline, dataset: ImageDataset, settings: BenchSettings,
                         run_dir: Path, n_clusters: int, device: torch.device,
                         held_out: ImageDataset | None = None) -> dict:
    """A baseline that clusters fixed features (no training): its whole fit is its time; ``record``
    is its :func:`job_record`."""
    cls = get_method(baseline.method)
    params = {"n_clusters": n_clusters, "features": baseline.features, "image_size": settings.baseline_image_size,
              "device": str(device), "seed": record["seed"], "out_dir": str(run_dir)}
    if "n_init" in _accepted(cls) and baseline.method == "kmeans":
        params["n_init"] = settings.kmeans_n_init
    estimator = cls(**params)
    fields = _fit(estimator, dataset, settings, run_dir, device, held_out)
    seconds = float(estimator.metrics_["seconds"])
    return {**record, **fields, "train_seconds": seconds, "images_per_second": len(dataset) / max(seconds, 1e-9)}


def _run_line(record: dict, seconds: float) -> str:
    if record["status"] != "ok":
        return f"  {record['name']} seed {record['seed']}: {record['status']} — {record['note']}"
    shown = "  ".join(f"{key.upper()} {record[key]:.4f}" for key in ("acc", "nmi", "ari") if record.get(key) is not None)
    if record.get("supervised_knn_acc") is not None:
        shown += (f"; embeddings, scored WITH THE LABELS: kNN-20 {record['supervised_knn_acc']:.4f}, "
                  f"linear probe {record['supervised_probe_acc']:.4f}")
    if record.get("note"):
        shown += f" ({record['note']})"
    return f"  {record['name']} seed {record['seed']}: {shown} ({seconds:.0f} s)"


def claim_run_folders(run_dirs: list[Path], settings: BenchSettings, results: Path) -> dict[Path, list[dict]]:
    """Before the benchmark writes anything: run folders of its jobs that already hold runs are refused
    unless ``settings.overwrite`` (their run files are deleted) or ``settings.resume``: a finished run
    (model.pt, metrics.json and its rows in the earlier ``results`` JSON) is kept, its rows returned
    by folder; an unfinished or failed one is deleted and run again. A finished run that ``results``
    does not list (a results file of another ``--out``, or none) is refused, and nothing is deleted:
    its rows hold what the run folder does not (embedding scores, times). The results files are always rewritten."""
    held = [folder for folder in run_dirs if run_markers(folder)]
    if settings.resume and settings.overwrite:
        raise RunFolderError("--resume and --overwrite exclude each other")
    if held and not (settings.resume or settings.overwrite):
        raise RunFolderError(f"--runs-dir {held[0].parent} already holds runs of this benchmark "
                             f"({', '.join(folder.name for folder in held)}); give --resume to keep the finished ones "
                             "and run the others, or --overwrite to run them all again (deletes their run files)")
    earlier = json.loads(results.read_text(encoding="utf-8")).get("runs", []) if held and results.is_file() else []
    rows_by_folder = {folder: [row for row in earlier if row.get("run_dir") == str(folder)] for folder in held}
    finished = [folder for folder in held if {"model.pt", "metrics.json"} <= set(run_markers(folder))]
    unlisted = [folder for folder in finished if not rows_by_folder[folder]]
    if settings.resume and unlisted:
        raise RunFolderError(f"--resume: {', '.join(str(folder) for folder in unlisted)} "
                             f"{'holds a finished run' if len(unlisted) == 1 else 'hold finished runs'} that "
                             f"{results} does not list{'' if results.is_file() else ' (no such file)'}; give the "
                             "--out of the benchmark that made them, or --overwrite to run them again (deletes "
                             "their run files); nothing was deleted")
    kept = {}
    for folder in held:
        succeeded = [row for row in rows_by_folder[folder] if row.get("status") == "ok"]
        if settings.resume and folder in finished and succeeded:
            kept[folder] = succeeded
        else:
            clear_run(folder)
    return kept


def run_job(name: str, baseline: Baseline | None, seed: int, settings: BenchSettings, dataset: ImageDataset,
            run_dir: Path, n_clusters: int, device: torch.device, log: Callable[[str], None],
            held_out: ImageDataset | None = None) -> list[dict]:
    """One run of the benchmark (a deep method, or a baseline): its rows (one more with ``--refine``, one
    more with ``--readout``), logged;
    scored on ``held_out`` when given."""
    started = time.perf_counter()
    named = job_record(name, baseline, seed, settings)
    try:
        if baseline is None or baseline.features is None:
            record = run_trained(named, dataset, settings, run_dir, n_clusters, device, held_out)
        else:
            record = run_feature_baseline(named, baseline, dataset, settings, run_dir, n_clusters, device, held_out)
    except Exception as error:  # one broken method must not stop the benchmark
        record = {**named, "status": "failed", "note": _error_note(error), "run_dir": str(run_dir)}
    rows = refined_rows(record)
    rows[-1:] = readout_rows(rows[-1])  # the readout labels the final (refined) network's embeddings
    for row in rows:
        log(_run_line(row, time.perf_counter() - started))
    return rows


def run_benchmark(settings: BenchSettings, command: str, log: Callable[[str], None] = print) -> list[Path]:
    """Train everything, write ``<out>/<results name>.md/.csv/.json`` (:func:`results_name`) and return
    their paths."""
    if settings.budget_minutes is None or not settings.budget_minutes > 0:
        raise ValueError(f"--budget-minutes must be a positive number of minutes, got {settings.budget_minutes}")
    if not settings.seeds:
        raise ValueError("--seeds is empty; give e.g. --seeds 0 or --seeds 0,1,2")
    if settings.readout is not None:  # before any training: a bad option or a missing extra
        try:
            UmapGmm(2, **settings.readout)
        except ValueError as error:
            raise ValueError(f"--readout: {error}") from None
        import_umap()
    methods, named_baselines = resolve_methods(settings.methods)
    check_overrides(methods, settings)
    baselines = resolve_baselines(settings.baselines)
    baselines += [b for b in resolve_baselines(named_baselines) if b not in baselines]
    device = resolve_device(settings.device)
    dataset = load_bench_data(settings)
    held_out = load_held_out(settings)
    n_clusters = settings.n_clusters or dataset.n_classes
    if not n_clusters:
        raise ValueError(f"dataset '{dataset.name}' has no labels: give --n-clusters")
    stem = results_name(settings, dataset)
    runs_dir = Path(settings.runs_dir or Path("runs") / f"bench-{stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    matmul_size = reference_matmul_size(device)
    meta = {
        "dataset": dataset.name, "results_name": stem, "command": command, "machine": machine_description(device),
        "matmul_size": matmul_size, "matmul_gflops": round(matmul_gflops(device, matmul_size, min_seconds=0.25), 1),
        "date": time.strftime("%Y-%m-%d"), "n_samples": len(dataset), "n_clusters": n_clusters,
        "seeds": list(settings.seeds), "budget_minutes": settings.budget_minutes,
        "preset": settings.preset or DEFAULT_PRESET, "split": settings.split, "subset": settings.subset,
        "classes": None if settings.classes is None else list(dataset.class_names), "held_out": settings.held_out,
        "imbalance": settings.imbalance, "overrides": list(settings.overrides),
        "baselines": [b.spelling for b in baselines],
        "runs_dir": str(runs_dir), "comparison_rule": COMPARISON_RULE, "notes": [],
    }
    if settings.embedding_quality and dataset.labels is not None:
        meta["embedding_quality"] = EMBEDDING_QUALITY_PROTOCOL + f" Probe split seed {PROBE_SEED} for every run."
    if settings.classes is not None:
        meta["notes"].append(f"Only the classes {', '.join(dataset.class_names)} (K = {len(dataset.class_names)} "
                             "unless --n-clusters says otherwise).")
    if held_out is not None:
        meta["evaluated_on"] = (f"the {len(held_out)} held-out images of the {settings.held_out} split, never trained on "
                                f"(every run fitted on the {len(dataset)} images of the {settings.split} split, then "
                                "its predict and transform applied to them); the JSON keeps each run's scores on its "
                                "training images as fit_acc, fit_nmi, fit_ari")
    if settings.imbalance:
        meta["notes"].append(f"Class-imbalance protocol {settings.imbalance} of HardReg applied with seed "
                             f"{settings.subset_seed} (the same images for every method and seed).")
    if settings.subset is not None:
        meta["notes"].append(f"A subset of {settings.subset} images drawn with seed {settings.subset_seed} "
                             f"(the same images for every method and seed).")
    if settings.overrides:
        meta["notes"].append("Every deep method's configuration: its preset with "
                             + ", ".join(f"`{assignment}`" for assignment in settings.overrides)
                             + " (`--set`); the baselines' are their own.")
    if settings.refine is not None:
        objective = settings.refine.get("objective", "self_label")
        meta["notes"].append(f"Every deep method was trained once with the refine stage, objective `{objective}` "
                             f"(docs/REFINE_AND_ENSEMBLE.md; `refine` settings {settings.refine or 'the defaults'}, "
                             "its time budget `refine.max_minutes` apart from the method's): its row holds the "
                             "metrics before refinement, its `+ refine` row those after.")
    if settings.readout is not None:
        meta["notes"].append("`<method> + UMAP-GMM`: the same run as the method's row, its embeddings of the "
                             "training images (its `transform`) clustered by UMAP + GMM (N2D's clustering step; "
                             f"options {settings.readout or 'the defaults'}, seeded with the run's seed) instead of "
                             "the method's own labels; its time adds the readout's to the training's.")
    if settings.ensemble:
        meta["notes"].append("`ensemble (...)`: the consensus (K-means-based consensus clustering) of that seed's "
                             "deep-method runs" + (" (refined)" if settings.refine is not None else "") + "; its time is the "
                             "consensus's alone.")
    # seed by seed, so that an interrupted benchmark leaves whole seeds (and `--resume` goes on from there)
    jobs: list[tuple[str, Baseline | None, int]] = [
        job for seed in settings.seeds
        for job in [(name, None, seed) for name in methods] + [(b.method, b, seed) for b in baselines]]
    run_dirs = [runs_dir / f"{name if baseline is None else baseline.folder}-seed{seed}" for name, baseline, seed in jobs]
    kept = claim_run_folders(run_dirs, settings, Path(settings.out) / f"{stem}.json")
    scored = "" if held_out is None else f", scored on {len(held_out)} held-out {settings.held_out} images"
    log(f"benchmark on {dataset.name} ({len(dataset)} images{scored}, K={n_clusters}) on {device}: "
        f"{len(methods)} method(s) {', '.join(methods) or '(none)'}, "
        f"baselines {', '.join(b.spelling for b in baselines) or '(none)'}, "
        f"seeds {', '.join(map(str, settings.seeds))}; run folders in {runs_dir}")
    records: list[dict] = []
    paths: list[Path] = []
    last_job_of_seed = {job[2]: job for job in jobs}
    for (name, baseline, seed), run_dir in zip(jobs, run_dirs):
        if run_dir in kept:
            log(f"  {run_dir.name}: finished earlier, kept (--resume)")
            started = time.perf_counter()
            rows = resumed_rows(kept[run_dir], settings, dataset, run_dir, n_clusters, device, held_out)
            records += rows
            for row in (row for row in rows if row not in kept[run_dir]):  # a readout made now
                log(_run_line(row, time.perf_counter() - started))
        else:
            records += run_job(name, baseline, seed, settings, dataset, run_dir, n_clusters, device, log, held_out)
        paths = write_results(records, settings.out, meta)
        if settings.ensemble and (name, baseline, seed) == last_job_of_seed[seed]:
            started = time.perf_counter()
            record = run_ensemble(records, seed, runs_dir, n_clusters, held_out)
            if record is not None:
                records.append(record)
                log(_run_line(record, time.perf_counter() - started))
                paths = write_results(records, settings.out, meta)
    lines = comparison_lines(compare_with_best_baseline(aggregate_records(records)))
    if lines:
        log(f"against the best baseline ({COMPARISON_RULE})")
        for line in lines:
            log(f"  {line}")
    return paths
