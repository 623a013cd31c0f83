"""The README's results table, generated from a committed benchmark JSON (never typed by hand).

:func:`readme_block` turns the JSON written by ``deepclust bench`` (:func:`~deepclust.reporting.
table.results_json`) into the Markdown between the README's markers :data:`BEGIN` … :data:`END`;
:func:`replace_block` puts it there. ``python benchmarks/readme_table.py`` does both for
``benchmarks/results/fashion-mnist.json``, and a test checks the README holds what it generates.
"""
from __future__ import annotations

import shlex

from deepclust.reporting.table import COMPARISON_RULE, compare_with_best_baseline, comparison_lines

BEGIN = "<!-- results-table:begin"
END = "<!-- results-table:end -->"
#: Columns: (header, row key prefix); the † columns only when some row has them.
SCORES = [("ACC", "acc"), ("NMI", "nmi"), ("ARI", "ari"), ("kNN ACC†", "supervised_knn_acc"),
          ("probe ACC†", "supervised_probe_acc")]


def _command_shown(command: str) -> str:
    """The recorded command without ``--out`` (where the files went on the benchmark's machine)."""
    words = shlex.split(command)
    shown = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word == "--out":
            skip = True
        elif not word.startswith("--out="):
            shown.append(word)
    return shlex.join(shown)


def _score(row: dict, prefix: str, best: float | None) -> str:
    mean, std = row.get(f"{prefix}_mean"), row.get(f"{prefix}_std")
    if mean is None:
        return "–"
    text = f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None else "")
    return f"**{text}**" if best is not None and round(mean, 3) == round(best, 3) else text


def _epochs(row: dict) -> str:
    mean = row.get("epochs_mean")
    if mean is None:
        return "–"
    return f"{mean:.0f}" if float(mean).is_integer() else f"{mean:.1f}"


def _setting(data: dict) -> str:
    seeds = data.get("seeds") or []
    seed_text = (f"seed {seeds[0]}" if len(seeds) == 1 else
                 f"seeds {', '.join(map(str, seeds))} (mean ± sample standard deviation, ddof = 1)")
    split = data.get("split", "all")
    images = f"{data['n_samples']:,} images" + (" (train + test)" if split == "all" else f" (split {split})")
    if data.get("subset"):
        images = f"a seeded subset of {images}"
    elif split == "all":
        images = "All " + images
    images = images[0].upper() + images[1:]
    budget = data.get("budget_minutes")
    overrides = "".join(f" `--set {assignment}`" for assignment in data.get("overrides") or [])
    return (f"{images}, K = {data['n_clusters']}, {seed_text}, each method's `{data.get('preset')}` preset"
            + (f" +{overrides}" if overrides else "")
            + (f" with {budget:g} minutes of training per run" if budget is not None else "")
            + (f", on {data['machine']}" if data.get("machine") else "")
            + (f", float32 matmul {data.get('matmul_size', '?')}² at {data['matmul_gflops']:.0f} GFLOP/s"
               if data.get("matmul_gflops") is not None else "")
            + (f", {data['date']}" if data.get("date") else "") + ";")


def readme_block(data: dict, results_page: str) -> str:
    """The Markdown of the README's results block for the benchmark JSON ``data``; ``results_page``
    is the link to the full results page (with run notes)."""
    rows = [row for row in data["rows"] if row.get("status") == "ok"]
    scores = [(header, prefix) for header, prefix in SCORES
              if prefix in ("acc", "nmi", "ari") or any(row.get(f"{prefix}_mean") is not None for row in rows)]
    best = {prefix: max((row[f"{prefix}_mean"] for row in rows if row.get(f"{prefix}_mean") is not None),
                        default=None) for _, prefix in scores}
    ordered = sorted((row for row in rows if row["kind"] != "baseline"), key=lambda row: -row["acc_mean"]) + \
        sorted((row for row in rows if row["kind"] == "baseline"), key=lambda row: -row["acc_mean"])
    header = ["method", *(name for name, _ in scores), "epochs", "train min", "images/s"]
    lines = [f"{_setting(data)} made by `{_command_shown(data.get('command', '?'))}` "
             f"([{results_page}]({results_page}), with run notes):", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in ordered:
        name = f"`{row['name']}`" if row["kind"] != "baseline" else f"{row['name']} *(baseline)*"
        trained = row.get("epochs_mean") is not None
        minutes = row.get("train_minutes_mean")
        speed = row.get("images_per_second_mean")
        cells = [name, *(_score(row, prefix, best[prefix]) for _, prefix in scores), _epochs(row),
                 "–" if minutes is None else f"{minutes:.1f}",
                 f"{speed:,.0f}" if trained and speed is not None else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    if any(prefix.startswith("supervised_") for _, prefix in scores):
        lines += ["", "† Scores of each run's embeddings that USE THE GROUND-TRUTH LABELS (supervised evaluation of "
                      "the representation, not clustering): leave-one-out 20-nearest-neighbour accuracy (cosine) "
                      "and a logistic-regression probe on a seeded 80/20 split."]
    not_run = [row for row in data["rows"] if row.get("status") != "ok"]
    if not_run:
        lines += ["", "Not run: " + "; ".join(f"{row['name']} ({row['status']}: {row.get('note') or 'no reason'})"
                                              for row in not_run) + "."]
    comparisons = comparison_lines(compare_with_best_baseline(ordered))
    if comparisons:
        lines += ["", f"**Against the best baseline.** {COMPARISON_RULE}", "", *comparisons]
    return "\n".join(lines) + "\n"


def replace_block(readme: str, block: str, source: str) -> str:
    """``readme`` with the text between its :data:`BEGIN` and :data:`END` markers replaced by
    ``block``; the begin marker names ``source`` (the JSON) and the generator."""
    start, stop = readme.find(BEGIN), readme.find(END)
    if start < 0 or stop < start:
        raise ValueError(f"the README has no results block: expected a line starting with '{BEGIN}' and, "
                         f"after it, a line '{END}'")
    marker = f"{BEGIN} generated by benchmarks/readme_table.py from {source}; do not edit by hand -->"
    return readme[:start] + marker + "\n" + block + readme[stop:]


def current_block(readme: str) -> str:
    """The text between the markers (without them), as :func:`readme_block` would have written it."""
    start, stop = readme.find(BEGIN), readme.find(END)
    if start < 0 or stop < start:
        raise ValueError(f"the README has no results block ('{BEGIN}' … '{END}')")
    return readme[readme.index("\n", start) + 1:stop]
