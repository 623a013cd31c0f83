"""Record a finished run (``deepclust fit --out RUN``) in benchmarks/results/.

    python benchmarks/record.py RUN_DIR --command "deepclust fit ..." [--note "..."]

Writes ``benchmarks/results/<method>-<dataset>-<preset>.json`` and ``.md`` with the metrics, the
command that produced them, and the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from deepclust.engine.config import load_yaml

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()}, torch {torch.__version__})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--command", required=True)
    parser.add_argument("--preset", default=None)
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    run = Path(args.run)
    metrics = json.loads((run / "metrics.json").read_text())
    config = load_yaml((run / "config.yaml").read_text()) if (run / "config.yaml").exists() else {}
    preset = args.preset or "default"
    record = {"method": metrics["method"], "dataset": metrics["dataset"], "preset": preset,
              "command": args.command, "machine": machine(), "date": time.strftime("%Y-%m-%d"),
              "metrics": metrics, "note": args.note,
              "epochs_configured": (config.get("training") or {}).get("epochs")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"{metrics['method']}-{metrics['dataset']}-{preset}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    m = metrics
    lines = [
        f"# {m['method']} on {m['dataset']} ({preset})", "",
        f"Command: `{args.command}`", "",
        f"Machine: {record['machine']}; date {record['date']}", "",
        "| ACC | NMI | ARI | clusters used | largest cluster | epochs | train min | images/s |",
        "|---|---|---|---|---|---|---|---|",
        f"| {m.get('acc', float('nan')):.4f} | {m.get('nmi', float('nan')):.4f} | {m.get('ari', float('nan')):.4f} "
        f"| {m['n_clusters_used']} | {m.get('largest_cluster_share', float('nan')):.3f} | {m.get('epochs', '-')} "
        f"| {m.get('train_seconds', m['seconds']) / 60:.1f} | {m.get('images_per_second', '-')} |",
    ]
    if args.note:
        lines += ["", args.note]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / stem}.json/.md")


if __name__ == "__main__":
    main()
