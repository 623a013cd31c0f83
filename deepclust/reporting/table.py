"""The benchmark results table: pure functions from per-run records to Markdown, CSV and JSON.

A *record* is one training run (one method or baseline, one seed), a dict with:

``name`` (row label, e.g. ``"htcn"`` or ``"k-means (pixels)"``), ``kind`` (``"method"`` or
``"baseline"``), ``method`` (registry name), ``preset``, ``seed``, ``status`` (``"ok"``,
``"skipped"`` or ``"failed"``), ``note`` (why it was skipped/failed), and for ``ok`` runs
``acc``, ``nmi``, ``ari``, ``n_clusters_used``, ``epochs``, ``train_seconds``, ``images_per_second``,
``peak_memory_mb``, ``memory_kind``, ``device``, ``run_dir``, and where the run had embeddings
``supervised_knn_acc`` and ``supervised_probe_acc`` (scores that USE THE LABELS,
:mod:`deepclust.evaluation.embedding_quality`).

:func:`aggregate_records` groups the records by (kind, name) into table rows with the mean and
the sample standard deviation (``ddof=1``) over the seeds that finished; rows of methods come
first, then the baselines, each in order of first appearance. :func:`compare_with_best_baseline`
says, per method, whether its mean ACC beats the best baseline's by more than the seeds' spread
(:data:`COMPARISON_RULE`).
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np

#: Numeric fields averaged over seeds: record key -> row key prefix.
AVERAGED = {"acc": "acc", "nmi": "nmi", "ari": "ari", "train_minutes": "train_minutes",
            "images_per_second": "images_per_second", "peak_memory_mb": "peak_memory_mb", "epochs": "epochs",
            "supervised_knn_acc": "supervised_knn_acc", "supervised_probe_acc": "supervised_probe_acc"}

#: How :func:`compare_with_best_baseline` decides (written into the results page and JSON).
COMPARISON_RULE = ("A method is above the best baseline (the baseline with the highest mean ACC) when its mean ACC "
                   "minus that baseline's mean ACC exceeds the spread: the larger of the two sample standard "
                   "deviations (ddof = 1) of ACC over the seeds. With one seed there is no spread and no verdict. "
                   "Each line also sets the method's mean NMI against the highest mean NMI of any baseline.")

CSV_COLUMNS = [
    "name", "kind", "method", "preset", "status", "n_seeds", "seeds",
    "acc_mean", "acc_std", "nmi_mean", "nmi_std", "ari_mean", "ari_std",
    "clusters_min", "clusters_max", "epochs_mean", "epochs_std", "train_minutes_mean", "train_minutes_std",
    "images_per_second_mean", "images_per_second_std", "peak_memory_mb_mean", "peak_memory_mb_std",
    "supervised_knn_acc_mean", "supervised_knn_acc_std", "supervised_probe_acc_mean", "supervised_probe_acc_std",
    "memory_kind", "device", "note", "run_dirs",
]


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _train_minutes(record: dict) -> float | None:
    if record.get("train_minutes") is not None:
        return _number(record["train_minutes"])
    seconds = _number(record.get("train_seconds"))
    return None if seconds is None else seconds / 60.0


def _preset_shown(record: dict) -> Any:
    """A run's preset as its row shows it: with its ``--set`` overrides, if any."""
    overrides = record.get("overrides")
    return record.get("preset") if not overrides else " ".join([str(record.get("preset")),
                                                                *(f"--set {a}" for a in overrides)])


def _unique(values: Iterable[Any]) -> list:
    seen = []
    for value in values:
        if value not in (None, "") and value not in seen:
            seen.append(value)
    return seen


def aggregate_records(records: list[dict]) -> list[dict]:
    """Table rows, one per (kind, name): mean and std (ddof=1; None for one seed) over ``ok`` runs."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        if "name" not in record:
            raise ValueError(f"benchmark record without a 'name': {record!r}")
        groups.setdefault((record.get("kind", "method"), record["name"]), []).append(record)
    ordered = [key for key in groups if key[0] != "baseline"] + [key for key in groups if key[0] == "baseline"]
    rows = []
    for kind, name in ordered:
        group = groups[(kind, name)]
        done = [r for r in group if r.get("status", "ok") == "ok"]
        not_done = [r for r in group if r.get("status", "ok") != "ok"]
        row: dict[str, Any] = {
            "name": name, "kind": kind, "method": group[0].get("method", name),
            "preset": ", ".join(map(str, _unique(_preset_shown(r) for r in group))) or None,
            "n_seeds": len(done), "seeds": [r.get("seed") for r in done],
            "device": ", ".join(map(str, _unique(r.get("device") for r in done))) or None,
            "memory_kind": ", ".join(_unique(r.get("memory_kind") for r in done)) or None,
            "run_dirs": [r["run_dir"] for r in done if r.get("run_dir")],
        }
        if done:
            row["status"] = "ok"
            notes = [f"seed {r.get('seed')} {r.get('status')}: {r.get('note', '')}".strip() for r in not_done]
            row["note"] = "; ".join(notes)
        else:
            row["status"] = not_done[0].get("status", "failed")
            row["note"] = "; ".join(_unique(r.get("note", "") for r in not_done))
        for key, prefix in AVERAGED.items():
            values = [_train_minutes(r) if key == "train_minutes" else _number(r.get(key)) for r in done]
            values = [v for v in values if v is not None]
            row[f"{prefix}_mean"] = float(np.mean(values)) if values else None
            row[f"{prefix}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        clusters = [int(r["n_clusters_used"]) for r in done if r.get("n_clusters_used") is not None]
        row["clusters_min"] = min(clusters) if clusters else None
        row["clusters_max"] = max(clusters) if clusters else None
        rows.append(row)
    return rows


def compare_with_best_baseline(rows: list[dict]) -> list[dict]:
    """One entry per method row that ran, against the baseline row with the highest mean ACC
    (:data:`COMPARISON_RULE`): ``method``, ``acc_mean``, ``acc_std``, ``baseline``,
    ``baseline_acc_mean``, ``baseline_acc_std``, ``difference``, ``spread`` (None with one seed)
    and ``verdict`` (``"above"``, ``"not above"`` or ``"no verdict"``); and ``nmi_mean`` against
    ``nmi_baseline``, the baseline with the highest mean NMI, and its ``baseline_nmi_mean``, with
    ``nmi_difference``. Empty without a baseline."""
    baselines = [row for row in rows if row["kind"] == "baseline" and row.get("acc_mean") is not None]
    if not baselines:
        return []
    best = max(baselines, key=lambda row: row["acc_mean"])
    best_nmi = max(baselines, key=lambda row: row.get("nmi_mean") or 0.0)
    comparisons = []
    for row in rows:
        if row["kind"] == "baseline" or row.get("acc_mean") is None:
            continue
        difference = row["acc_mean"] - best["acc_mean"]
        stds = (row.get("acc_std"), best.get("acc_std"))
        spread = None if None in stds else max(stds)
        verdict = "no verdict" if spread is None else "above" if difference > spread else "not above"
        comparisons.append({"method": row["name"], "acc_mean": row["acc_mean"], "acc_std": row.get("acc_std"),
                            "baseline": best["name"], "baseline_acc_mean": best["acc_mean"],
                            "baseline_acc_std": best.get("acc_std"), "difference": difference, "spread": spread,
                            "verdict": verdict, "nmi_mean": row.get("nmi_mean"), "nmi_baseline": best_nmi["name"],
                            "baseline_nmi_mean": best_nmi.get("nmi_mean"),
                            "nmi_difference": None if None in (row.get("nmi_mean"), best_nmi.get("nmi_mean"))
                            else row["nmi_mean"] - best_nmi["nmi_mean"]})
    return comparisons


def comparison_lines(comparisons: list[dict]) -> list[str]:
    """One line per method: its mean ACC against the best baseline's, and the verdict of
    :data:`COMPARISON_RULE`."""
    lines = []
    for entry in comparisons:
        text = (f"- {entry['method']}: mean ACC {entry['acc_mean']:.4f} − {entry['baseline_acc_mean']:.4f} of "
                f"{entry['baseline']} = {entry['difference']:+.4f}; ")
        if entry["verdict"] == "no verdict":
            text += "one seed, so no spread: no verdict."
        else:
            word = "above" if entry["verdict"] == "above" else "NOT above"
            text += f"spread {entry['spread']:.4f} → {word} the best baseline by more than the spread."
        if entry.get("nmi_difference") is not None:
            text += (f" Mean NMI {entry['nmi_mean']:.4f} − {entry['baseline_nmi_mean']:.4f} of {entry['nmi_baseline']} "
                     f"= {entry['nmi_difference']:+.4f}.")
        lines.append(text)
    return lines


def _cell(row: dict, prefix: str, digits: int) -> str:
    mean, std = row.get(f"{prefix}_mean"), row.get(f"{prefix}_std")
    if mean is None:
        return "–"
    text = f"{mean:.{digits}f}"
    if std is not None:
        text += f" ± {std:.{digits}f}"
    return text


def _clusters_cell(row: dict) -> str:
    low, high = row.get("clusters_min"), row.get("clusters_max")
    if low is None:
        return "–"
    return str(low) if low == high else f"{low}–{high}"


MARKDOWN_HEADER = ["Method", "Preset", "Seeds", "ACC", "NMI", "ARI", "kNN ACC†", "Probe ACC†", "Non-empty clusters",
                   "Epochs", "Train min", "Images/s", "Peak memory MB", "Device"]
#: The footnote of the † columns.
LABELLED_FOOTNOTE = ("† kNN ACC and Probe ACC score each run's embeddings (its `transform`; pixels for the pixel "
                     "baselines, UMAP coordinates for UMAP + GMM) WITH THE GROUND-TRUTH LABELS — supervised "
                     "evaluation of the representation, not clustering results. kNN: leave-one-out, the 20 most "
                     "cosine-similar other images vote, ties to the lowest label. Probe: logistic regression on "
                     "standardised embeddings, trained on a seeded 80 % of the images, accuracy on the other 20 %.")


def markdown_table(rows: list[dict]) -> str:
    """The Markdown table of the rows that ran (skipped/failed rows are listed by :func:`format_markdown`)."""
    lines = ["| " + " | ".join(MARKDOWN_HEADER) + " |", "|" + "---|" * len(MARKDOWN_HEADER)]
    for row in rows:
        if row["status"] != "ok":
            continue
        name = row["name"] + (" *(baseline)*" if row["kind"] == "baseline" else "")
        cells = [name, row.get("preset") or "–", str(row["n_seeds"]), _cell(row, "acc", 4), _cell(row, "nmi", 4),
                 _cell(row, "ari", 4), _cell(row, "supervised_knn_acc", 4), _cell(row, "supervised_probe_acc", 4),
                 _clusters_cell(row), _cell(row, "epochs", 0 if float(row.get("epochs_mean") or 0).is_integer() else 1), _cell(row, "train_minutes", 2),
                 _cell(row, "images_per_second", 0), _cell(row, "peak_memory_mb", 0), row.get("device") or "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_markdown(rows: list[dict], meta: dict) -> str:
    """The whole results page. ``meta`` keys used: ``dataset``, ``command``, ``machine``,
    ``matmul_size`` and ``matmul_gflops`` (the machine's speed), ``date``,
    ``n_samples``, ``n_clusters``, ``budget_minutes``, ``seeds``, ``preset``, ``notes`` (list)."""
    dataset = meta.get("dataset", "?")
    subset = f" ({', '.join(meta['classes'])})" if meta.get("classes") else ""
    held_out = f", scored on its held-out {meta['held_out']} images" if meta.get("held_out") else ""
    lines = [f"# Benchmark on {dataset}{subset}{held_out}", "", f"Made by: `{meta.get('command', '?')}`", ""]
    facts = []
    if meta.get("machine"):
        facts.append(f"machine: {meta['machine']}")
    if meta.get("matmul_gflops") is not None:
        size = meta.get("matmul_size", "?")
        facts.append(f"its speed: float32 matmul {size}×{size} at {meta['matmul_gflops']:.1f} GFLOP/s")
    if meta.get("date"):
        facts.append(f"date: {meta['date']}")
    if meta.get("n_samples") is not None:
        facts.append(f"{meta['n_samples']} images")
    if meta.get("n_clusters") is not None:
        facts.append(f"K = {meta['n_clusters']}")
    if meta.get("seeds") is not None:
        facts.append("seeds " + ", ".join(map(str, meta["seeds"])))
    if meta.get("budget_minutes") is not None:
        facts.append(f"training budget {meta['budget_minutes']:g} min per run")
    if facts:
        text = "; ".join(facts)
        lines += [text[0].upper() + text[1:] + ".", ""]
    lines += [markdown_table(rows), ""]
    footnotes = [
        f"ACC/NMI/ARI{' and the embedding scores' if meta.get('evaluated_on') else ''} on "
        f"{meta.get('evaluated_on') or 'all benchmarked images (clustering is evaluated on the data it was fitted on)'}; "
        "with several seeds: mean ± sample standard deviation (ddof = 1).",
        "Epochs: full epochs completed (within the budget). "
        "Train min: training time of the deep methods (evaluation excluded); for the k-means baselines the "
        "whole fit (feature extraction and k-means). Images/s: training images per second of the deep "
        "methods; for the baselines, images embedded and clustered per second.",
        LABELLED_FOOTNOTE,
    ]
    kinds = _unique(row.get("memory_kind") for row in rows)
    if kinds:
        footnotes.append("Peak memory: " + "; ".join(kinds) + " — on the CPU the growth of the process's peak "
                         "resident memory during the fit over its size when the fit started (the dataset is "
                         "already loaded); on CUDA the peak tensor memory from torch.cuda.max_memory_allocated.")
    lines += [f"- {note}" for note in footnotes + list(meta.get("notes") or [])]
    comparisons = comparison_lines(compare_with_best_baseline(rows))
    if comparisons:
        lines += ["", "## Against the best baseline", "", COMPARISON_RULE, ""] + comparisons
    missing = [row for row in rows if row["status"] != "ok"]
    partial = [row for row in rows if row["status"] == "ok" and row.get("note")]
    if missing or partial:
        lines += ["", "## Not run or incomplete", ""]
        lines += [f"- {row['name']}: {row['status']} — {row.get('note') or 'no reason recorded'}" for row in missing]
        lines += [f"- {row['name']}: {row['note']}" for row in partial]
    run_lines = [f"- {row['name']}: " + ", ".join(f"`{d}`" for d in row["run_dirs"]) for row in rows if row["run_dirs"]]
    if run_lines:
        lines += ["", "## Run folders", ""] + run_lines
    return "\n".join(lines) + "\n"


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(map(str, value))
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def format_csv(rows: list[dict]) -> str:
    """One CSV line per row (skipped/failed rows included, with their status and note)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: _csv_value(row.get(column)) for column in CSV_COLUMNS})
    return buffer.getvalue()


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    return value


def results_json(rows: list[dict], records: list[dict], meta: dict) -> dict:
    """Everything in one JSON-able dict: the run settings, the table rows, the comparisons with the
    best baseline and every run (per seed)."""
    return _json_safe({**meta, "rows": rows, "comparisons": compare_with_best_baseline(rows), "runs": records})


def write_results(records: list[dict], out_dir: str | Path, meta: dict) -> list[Path]:
    """Write ``<out_dir>/<stem>.md``, ``.csv`` and ``.json`` (stem: ``meta["results_name"]``, else
    ``meta["dataset"]``); returns the three paths."""
    if not meta.get("dataset"):
        raise ValueError("write_results needs meta['dataset'] (it names the result files)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = aggregate_records(records)
    stem = str(meta.get("results_name") or meta["dataset"])
    paths = [out / f"{stem}.md", out / f"{stem}.csv", out / f"{stem}.json"]
    contents = [format_markdown(rows, meta), format_csv(rows),
                json.dumps(results_json(rows, records, meta), indent=2) + "\n"]
    for path, text in zip(paths, contents):
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    return paths
