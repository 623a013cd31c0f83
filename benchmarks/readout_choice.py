"""How a trained run's clusters are read: its own labels, k-means, or UMAP + GMM on its embeddings.

    python benchmarks/readout_choice.py [--methods dchl,htcn,hadis] [--subset 20000] [--seed 7]
        [--minutes 4] [--runs-dir runs/readout-choice] [--out benchmarks/results]

Each method is trained once with its ``cpu-fashion-mnist`` preset on a seeded subset of
Fashion-MNIST (``ImageDataset.sample(subset, seed)``; the seed also seeds training and every
readout) for ``--minutes``; then the same embeddings (its ``transform``) are clustered four ways:
the method's own labels (``labels_``), cosine k-means (10 restarts), and UMAP + GMM
(:class:`deepclust.cluster.umap_gmm.UmapGmm`) with its Euclidean default and with the cosine
metric. A tuning look for ``deepclust bench --readout``: use a seed other than the table's.

Writes ``<out>/readout-choice.json`` (ACC and NMI of every readout).
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

import deepclust
from deepclust.cluster import kmeans
from deepclust.cluster.umap_gmm import UmapGmm
from deepclust.evaluation import cluster_accuracy, normalized_mutual_info

READOUTS = {"umap-gmm": {}, "umap-gmm cosine": {"metric": "cosine"}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="dchl,htcn,hadis")
    parser.add_argument("--subset", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--runs-dir", default="runs/readout-choice")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    data = deepclust.load_dataset("fashion-mnist").sample(args.subset, args.seed)

    def scores(labels) -> dict:
        return {"acc": cluster_accuracy(data.labels, labels), "nmi": normalized_mutual_info(data.labels, labels)}

    results = {"command": shlex.join(["python", "benchmarks/readout_choice.py", *(argv or sys.argv[1:])]),
               "methods": {}}
    for method in args.methods.split(","):
        estimator = deepclust.make(method, n_clusters=10, preset="cpu-fashion-mnist", seed=args.seed,
                                   max_minutes=args.minutes, out_dir=f"{args.runs_dir}/{method}", overwrite=True)
        estimator.fit(data)
        embeddings = estimator.transform(data)
        found = {"own": scores(estimator.labels_),
                 "kmeans cosine": scores(kmeans(torch.from_numpy(embeddings), 10, metric="cosine", seed=args.seed,
                                                n_init=10).labels.numpy())}
        for name, options in READOUTS.items():
            found[name] = scores(UmapGmm(10, seed=args.seed, **options).fit_predict(embeddings))
        found["epochs"] = estimator.metrics_.get("epochs")
        results["methods"][method] = found
        print(method, json.dumps(found), flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "readout-choice.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
