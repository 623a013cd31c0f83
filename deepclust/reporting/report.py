"""``deepclust report RUN_DIR``: one HTML page with the figures of a finished run.

The page holds the run's metrics and configuration and these PNGs (each written next to it):

- ``training_curves.png``: every loss term of the ``step`` events of ``log.jsonl`` (and the lr);
- ``eval_curves.png``: ACC / NMI / ARI of the ``eval`` events;
- ``confusion_matrix.png``: true class × cluster, clusters ordered by the Hungarian matching;
- ``embedding.png``: t-SNE (or UMAP when the ``umap`` package is installed) of ``transform`` on a
  random subsample of at most ``max_points`` images, coloured by cluster and by true class;
- ``cluster_sizes.png``: images per cluster;
- ``cluster_samples.png``: ``samples_per_cluster`` random images of every cluster.

The model is loaded with :func:`deepclust.methods.load_estimator`; the data is the one the run's
``data.json`` records (:func:`deepclust.data.load_source` loads the same images again), or the one
given. Run folders older than ``data.json`` fall back to the dataset named in ``config.yaml`` /
``metrics.json``, with the split or seeded subset of the run's size.
"""
from __future__ import annotations

import html
import importlib.util
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import yaml

from deepclust.data import SOURCE_FILE, ImageDataset, load_source, read_source
from deepclust.engine.config import load_yaml
from deepclust.engine.run_folder import read_log
from deepclust.evaluation import evaluate_clustering, hungarian_mapping
from deepclust.methods import load_estimator
from deepclust.reporting import plots

#: Keys of a ``step`` event that are not loss terms.
STEP_FIELDS = {"event", "time", "epoch", "step", "lr", "images_per_second"}
EVAL_METRICS = ("acc", "nmi", "ari")
SPOT_CHECK = 256


@dataclass
class ReportOptions:
    out: str | None = None
    dataset: str | None = None
    data_root: str | None = None
    split: str = "all"
    classes: list | None = None
    subset: int | None = None
    subset_seed: int | None = None
    imbalance: int = 0
    device: str = "auto"
    max_points: int = 2000
    samples_per_cluster: int = 10
    max_cluster_rows: int = 30
    embedding: str = "auto"
    seed: int = 0


@dataclass
class RunFiles:
    """What a run folder holds (each part optional except the model)."""

    path: Path
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    steps: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    has_log: bool = False
    bad_log_lines: int = 0


def read_run(run_dir: str | Path) -> RunFiles:
    path = Path(run_dir)
    if not path.is_dir():
        raise ValueError(f"run folder {path} does not exist (expected the --out folder of `deepclust fit`)")
    if not (path / "model.pt").is_file():
        raise ValueError(f"run folder {path} holds no model.pt (the run has not finished, or this is not a run folder)")
    run = RunFiles(path)
    if (path / "config.yaml").is_file():
        run.config = load_yaml((path / "config.yaml").read_text(encoding="utf-8")) or {}
    if (path / "metrics.json").is_file():
        run.metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
    run.data = read_source(path) or {}
    log = path / "log.jsonl"
    if log.is_file():  # a resumed run's repeated steps keep their last record (read_log)
        run.has_log = True
        events, run.bad_log_lines = read_log(log)
        run.steps = [event for event in events if event.get("event") == "step"]
        run.evals = [event for event in events if event.get("event") == "eval"]
    return run


def resolve_dataset(run: RunFiles, options: ReportOptions, run_seed: int) -> tuple[ImageDataset, list[str], bool]:
    """The dataset to report on, notes on how it was found, and whether it is the run's own data."""
    if options.dataset:
        return load_source(_given_source(options.dataset, options, run_seed)), [], False
    if not run.data:
        return (*_data_of_old_run(run, options, run_seed), True)
    if run.data.get("dataset") is None:
        raise ValueError(f"{run.path / SOURCE_FILE}: the run was fitted on data of kind {run.data.get('kind')!r}, "
                         "not a dataset loaded by name, so it cannot be loaded again; give --dataset")
    dataset = load_source(run.data, data_root=options.data_root)
    notes = []
    if run.data.get("subset") is not None:
        notes.append(_subset_note(_pool_name(run.data), run.data["subset"], run.data.get("subset_of"),
                                  run.data.get("subset_seed", 0), f" (as the run's {SOURCE_FILE} records)"))
    return dataset, notes, True


def _given_source(name: str, options: ReportOptions, run_seed: int) -> dict:
    """The source record of ``name`` with the data options of the command line; both draws seeded with
    ``--subset-seed``, by default the run's seed."""
    seed = options.subset_seed if options.subset_seed is not None else run_seed
    return {"dataset": name, "split": options.split, "data_root": options.data_root, "classes": options.classes,
            "imbalance": options.imbalance, "imbalance_seed": seed, "subset": options.subset, "subset_seed": seed}


def _pool_name(source: dict) -> str:
    imbalance = source.get("imbalance")
    return source["dataset"] + (f" after HardReg's class-imbalance protocol {imbalance}" if imbalance else "")


def _subset_note(pool_name: str, subset: int, pool: int | None, seed: int, how: str = "") -> str:
    size = f"{subset} of the {pool}" if pool else f"{subset}"
    return (f"The run was trained on {size} images of {pool_name}: the report uses the subset "
            f"`deepclust fit --subset {subset} --seed {seed}` draws{how}.")


def _data_of_old_run(run: RunFiles, options: ReportOptions, run_seed: int) -> tuple[ImageDataset, list[str]]:
    """A run folder without data.json: the dataset its config.yaml/metrics.json names, with the given
    split and subset, or else the split or the seeded subset of the run's size (metrics.json)."""
    name = (run.config.get("run") or {}).get("dataset") or run.config.get("dataset") or run.metrics.get("dataset")
    if not name:
        raise ValueError(f"{run.path} names no dataset (no {SOURCE_FILE}, no config.yaml/metrics.json with "
                         "'dataset'); give --dataset")
    given = _given_source(name, options, run_seed)
    dataset = load_source(given)
    trained_on = run.metrics.get("n_samples")
    if options.subset is not None or not trained_on or trained_on >= len(dataset):
        return dataset, []
    if options.split == "all":
        for part in ("train", "test"):  # a run of `deepclust fit --split train|test`
            try:
                candidate = load_source({**given, "split": part})
            except (ValueError, OSError):
                continue
            if len(candidate) == trained_on:
                return candidate, [f"The run was trained on {trained_on} images: the report uses the '{part}' "
                                   f"split of {name}, which has that size."]
    seed = given["subset_seed"]
    return dataset.sample(int(trained_on), seed), [_subset_note(_pool_name(given), trained_on, len(dataset), seed)]


def _cluster_order(y: np.ndarray | None, labels: np.ndarray, k: int, sizes: np.ndarray) -> tuple[list[int], dict]:
    """Clusters matched to classes first (in class order), then the others by decreasing size."""
    mapping = {}
    if y is not None:
        known = y >= 0
        if known.any():
            mapping = hungarian_mapping(y[known], labels[known])
    matched = sorted(mapping, key=lambda c: mapping[c])
    rest = sorted((c for c in range(k) if c not in mapping), key=lambda c: (-sizes[c], c))
    return matched + rest, mapping


def _embed_2d(features: np.ndarray, technique: str, seed: int) -> np.ndarray:
    features = np.nan_to_num(features.reshape(len(features), -1).astype(np.float64))
    if technique == "UMAP":
        import umap

        return umap.UMAP(n_components=2, random_state=seed).fit_transform(features)
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if features.shape[1] > 50 and len(features) > 50:
        features = PCA(n_components=50, random_state=seed).fit_transform(features)
    perplexity = float(min(30.0, max(2.0, (len(features) - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                random_state=seed).fit_transform(features)


def _class_name(names: list[str], c: int) -> str:
    return names[c] if 0 <= c < len(names) else str(c)


class Figure(NamedTuple):
    """One figure of the page: its heading, PNG file (next to the page) and HTML caption."""

    title: str
    file: str
    caption: str


@dataclass
class ReportContext:
    """What the figure sections share: the run, the data and its clustering."""

    run: RunFiles
    method: str
    estimator: object
    dataset: ImageDataset
    options: ReportOptions
    out: Path
    rng: np.random.Generator
    labels: np.ndarray
    k: int
    y: np.ndarray | None
    sizes: np.ndarray
    order: list[int]
    mapping: dict
    names: list[str]
    metrics: dict


def cluster_labels(estimator, dataset: ImageDataset, own: bool,
                   rng: np.random.Generator) -> tuple[np.ndarray, str, list[str]]:
    """The labels to report, where they come from, and a warning when the model disagrees with them.

    The run's stored labels when the data is the run's own (spot-checked against the model's
    predictions on ``SPOT_CHECK`` images), else the model's predictions on ``dataset``.
    """
    stored = getattr(estimator, "labels_", None)
    stored = None if stored is None else np.asarray(stored)
    n = len(dataset)
    if not (own and stored is not None and len(stored) == n):
        return (np.asarray(estimator.predict(dataset)).astype(np.int64), "labels predicted by the model on this data",
                [])
    labels = stored.astype(np.int64)
    check = np.sort(rng.choice(n, size=min(n, SPOT_CHECK), replace=False))
    agreement = float((estimator.predict(dataset.subset(check)) == labels[check]).mean())
    warnings = []
    if agreement < 0.9:
        warnings.append(f"Warning: the model's predictions agree with the run's stored labels on only "
                        f"{agreement:.0%} of {len(check)} checked images — this is probably not the data the "
                        f"run was trained on (give --dataset/--subset/--subset-seed).")
    return labels, "the labels stored in the run (the ones its metrics were computed from)", warnings


def training_curves_section(context: ReportContext) -> Figure | str:
    run, method = context.run, context.method
    if not run.steps:
        if run.has_log:
            return ("No training curves: log.jsonl has no <code>step</code> events (fewer steps than "
                    "<code>training.log_every</code>?).")
        return (f"No training curves: the run folder has no log.jsonl ({html.escape(method)} is not trained "
                "by the training engine — e.g. the k-means baseline)." if method == "kmeans" else
                "No training curves: the run folder has no log.jsonl.")
    terms: dict[str, list] = {}
    for event in run.steps:
        for key, value in event.items():
            if key not in STEP_FIELDS and isinstance(value, (int, float)) and not isinstance(value, bool):
                terms.setdefault(key, [])
    for key in terms:
        terms[key] = [event.get(key) for event in run.steps]
    lr = [event.get("lr") for event in run.steps] if all("lr" in e for e in run.steps) else None
    plots.training_curves([e["step"] for e in run.steps], terms, context.out / "training_curves.png", lr=lr,
                          title=f"{method}: training losses ({len(run.steps)} logged steps)")
    return Figure("Training losses", "training_curves.png",
                  f"Every loss term of the {len(run.steps)} <code>step</code> events of log.jsonl; the bold line "
                  "is a moving average.")


def eval_curves_section(context: ReportContext) -> Figure | str | None:
    run = context.run
    evals = [e for e in run.evals if any(e.get(m) is not None for m in EVAL_METRICS)]
    if not evals:
        return ("No evaluation curves: log.jsonl has no <code>eval</code> events "
                "(<code>training.eval_every</code> is 0 or larger than the number of epochs run)."
                if run.has_log else None)
    final = None
    if run.metrics.get("steps") is not None and any(run.metrics.get(m) is not None for m in EVAL_METRICS):
        final = (run.metrics["steps"], {m: run.metrics.get(m) for m in EVAL_METRICS})
    plots.eval_curves([e["step"] for e in evals], {m: [e.get(m, np.nan) for e in evals] for m in EVAL_METRICS},
                      context.out / "eval_curves.png", epochs=[e.get("epoch", 0) for e in evals], final=final)
    return Figure("ACC / NMI / ARI during training", "eval_curves.png",
                  f"The {len(evals)} <code>eval</code> events of log.jsonl (labels re-computed on all "
                  "training images at each evaluation)" + ("; stars: the final scores of metrics.json." if final
                                                           else "."))


def confusion_section(context: ReportContext) -> Figure | str:
    y, labels, names = context.y, context.labels, context.names
    if y is None:
        return "No confusion matrix and no colouring by class: the dataset has no labels."
    known = y >= 0
    classes = sorted(set(np.unique(y[known]).tolist()))
    counts = np.zeros((len(classes), context.k), dtype=np.int64)
    class_index = {c: i for i, c in enumerate(classes)}
    np.add.at(counts, (np.array([class_index[c] for c in y[known]]), labels[known]), 1)
    counts = counts[:, context.order]
    plots.confusion_matrix(counts, [_class_name(names, c) for c in classes], [str(c) for c in context.order],
                           context.out / "confusion_matrix.png",
                           title=f"{context.method} on {context.dataset.name}: ACC {context.metrics['acc']:.3f}")
    return Figure("Confusion matrix", "confusion_matrix.png",
                  "Rows: true classes; columns: clusters, each placed under the class the Hungarian matching "
                  "gives it (unmatched clusters last). Colour: share of the class's images; numbers: counts.")


def cluster_sizes_section(context: ReportContext) -> Figure:
    order, mapping, sizes = context.order, context.mapping, context.sizes
    annotations = ["→ " + _class_name(context.names, mapping[c]) if c in mapping else "" for c in order]
    plots.cluster_sizes(sizes[order], order, context.out / "cluster_sizes.png", annotations=annotations)
    return Figure("Cluster sizes", "cluster_sizes.png",
                  f"Images per cluster ({int((sizes > 0).sum())} of {context.k} clusters non-empty); the label over a "
                  "bar is the class the cluster is matched to.")


def embedding_technique(name: str) -> str:
    """``"UMAP"`` or ``"t-SNE"`` for ``--embedding`` ``name`` (auto: UMAP when umap-learn is installed);
    ``ValueError`` for another name or for umap without umap-learn, naming what to install."""
    technique = name.lower()
    installed = importlib.util.find_spec("umap") is not None
    if technique == "auto":
        technique = "umap" if installed else "tsne"
    if technique not in ("tsne", "umap"):
        raise ValueError(f"--embedding must be auto, tsne or umap, got '{name}'")
    if technique == "umap" and not installed:
        raise ValueError("--embedding umap needs the umap-learn package: pip install 'deepclust[baselines]' "
                         "(or pip install umap-learn), or use --embedding tsne")
    return "UMAP" if technique == "umap" else "t-SNE"


def embedding_section(context: ReportContext) -> Figure | str:
    options, y = context.options, context.y
    technique = embedding_technique(options.embedding)
    n = len(context.dataset)
    sample = np.sort(context.rng.choice(n, size=min(n, options.max_points), replace=False))
    if len(sample) < 5:
        return "No embedding map: fewer than 5 images."
    started = time.perf_counter()
    features = np.asarray(context.estimator.transform(context.dataset.subset(sample)))
    coords = _embed_2d(features, technique, options.seed)
    plots.embedding_map(coords, context.labels[sample], context.out / "embedding.png",
                        classes=None if y is None else y[sample], class_names=context.names, technique=technique,
                        n_clusters=context.k)
    return Figure(f"{technique} map of the embeddings", "embedding.png",
                  f"{technique} of <code>transform</code> ({features.shape[1]}-d) on {len(sample)} random images "
                  f"({time.perf_counter() - started:.0f} s), coloured by cluster (left) and true class (right).")


def cluster_samples_section(context: ReportContext) -> Figure:
    options, order, mapping = context.options, context.order, context.mapping
    shown = order[: options.max_cluster_rows]
    rows, titles = [], []
    for c in shown:
        members = np.flatnonzero(context.labels == c)
        pick = np.sort(context.rng.choice(members, size=min(len(members), options.samples_per_cluster),
                                          replace=False))
        rows.append(context.dataset.images[pick])
        match = f"\n→ {_class_name(context.names, mapping[c])}" if c in mapping else ""
        titles.append(f"cluster {c}\n{len(members)} img{match}")
    plots.cluster_samples(rows, titles, context.out / "cluster_samples.png", per_row=options.samples_per_cluster,
                          title=f"{options.samples_per_cluster} random images per cluster")
    caption = f"{options.samples_per_cluster} random images of each cluster, with its size and matched class."
    if len(order) > len(shown):
        caption += f" Only the first {len(shown)} of {len(order)} clusters are shown."
    return Figure("Sample images per cluster", "cluster_samples.png", caption)


#: The figure sections of the page, in page order. Each returns its Figure (PNG written), a "not shown"
#: note (HTML) or None; the embedding and samples draw from the shared generator, in this order.
SECTIONS = (training_curves_section, eval_curves_section, confusion_section, cluster_sizes_section,
            embedding_section, cluster_samples_section)


def build_report(run_dir: str | Path, options: ReportOptions | None = None, log=print) -> Path:
    """Write ``report.html`` and its PNGs into ``options.out`` (default ``RUN_DIR/report``); return the page."""
    options = options or ReportOptions()
    embedding_technique(options.embedding)  # a missing package fails before the work starts
    run = read_run(run_dir)
    out = Path(options.out) if options.out else run.path / "report"
    out.mkdir(parents=True, exist_ok=True)
    estimator = load_estimator(run.path / "model.pt", device=options.device)
    method = (getattr(estimator, "method_name", None) or run.metrics.get("method")
              or (run.config.get("run") or {}).get("method", "?"))
    run_seed = int(getattr(estimator, "seed", 0) or 0)
    dataset, notes, own = resolve_dataset(run, options, run_seed)
    log(f"report on {run.path}: {method}, {dataset.name} ({len(dataset)} images) → {out}")

    rng = np.random.default_rng(options.seed)
    labels, label_source, warnings = cluster_labels(estimator, dataset, own, rng)
    k = int(max(int(getattr(estimator, "n_clusters", 0) or 0), int(labels.max()) + 1))
    y = dataset.labels if dataset.labels is not None and (dataset.labels >= 0).any() else None
    sizes = np.bincount(labels, minlength=k)
    order, mapping = _cluster_order(y, labels, k, sizes)
    names = list(dataset.class_names) or [str(c) for c in range(dataset.n_classes)]
    metrics = evaluate_clustering(y, labels, k)
    context = ReportContext(run, method, estimator, dataset, options, out, rng, labels, k, y, sizes, order, mapping,
                            names, metrics)
    shown = [section(context) for section in SECTIONS]
    figures = [entry for entry in shown if isinstance(entry, Figure)]
    missing = [entry for entry in shown if isinstance(entry, str)]

    page = out / "report.html"
    page.write_text(_html(run, method, dataset, metrics, k, label_source, figures, missing, notes + warnings,
                          options), encoding="utf-8")
    log(f"wrote {page} and {len(figures)} figures")
    return page


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ccc; padding: 3px 8px; }
th { background: #f4f4f4; text-align: left; } img { max-width: 100%; border: 1px solid #eee; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.4em 0.8em; margin: 0.5em 0; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.caption { color: #555; font-size: 0.9em; }
"""


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
    return html.escape(str(value))


def _html(run: RunFiles, method: str, dataset: ImageDataset, metrics: dict, k: int, label_source: str,
          figures: list, missing: list, notes: list, options: ReportOptions) -> str:
    e = html.escape
    parts = [f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{e(method)} on "
             f"{e(dataset.name)} — deepclust report</title><style>{_STYLE}</style></head><body>",
             f"<h1>{e(method)} on {e(dataset.name)}</h1>",
             f"<p>Run folder <code>{e(str(run.path.resolve()))}</code>; {len(dataset)} images of shape "
             f"{dataset.shape}; K = {k}. Made by <code>deepclust report {e(str(run.path))}</code> on "
             f"{time.strftime('%Y-%m-%d %H:%M')}.</p>"]
    parts += [f"<p class='note'>{e(note)}</p>" for note in notes]
    parts.append("<h2>Metrics</h2>")
    shown = [(name.upper(), metrics[name]) for name in EVAL_METRICS if name in metrics]
    shown += [("non-empty clusters", metrics["n_clusters_used"]),
              ("largest cluster share", metrics["largest_cluster_share"]),
              ("normalised size entropy", metrics["normalized_size_entropy"])]
    parts.append(f"<p class='caption'>Computed here from {e(label_source)}.</p><table>"
                 + "".join(f"<tr><th>{e(name)}</th><td>{_format(value)}</td></tr>" for name, value in shown)
                 + "</table>")
    if run.metrics:
        keys = [key for key in ("method", "features", "dataset", "n_samples", "epochs", "steps", "train_seconds",
                                "seconds", "images_per_second", "stop_reason", "device") if key in run.metrics]
        parts.append("<p class='caption'>From the run's metrics.json:</p><table>"
                     + "".join(f"<tr><th>{e(key)}</th><td>{_format(run.metrics[key])}</td></tr>" for key in keys)
                     + "</table>")
    for title, file, caption in figures:
        parts.append(f"<h2>{e(title)}</h2><img src='{e(file)}' alt='{e(title)}'><p class='caption'>{caption}</p>")
    if missing:
        parts.append("<h2>Not shown</h2>" + "".join(f"<p class='note'>{text}</p>" for text in missing))
    if run.bad_log_lines:
        parts.append(f"<p class='note'>{run.bad_log_lines} line(s) of log.jsonl could not be read and were skipped.</p>")
    if run.config:
        parts.append("<h2>Configuration</h2><details><summary>config.yaml</summary><pre>"
                     + e(yaml.safe_dump(run.config, sort_keys=False)) + "</pre></details>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
