"""``deepclust ensemble``: one consensus clustering of several fitted runs on the same images.

A member is a run folder of ``deepclust fit`` (its labels: those ``model.pt`` holds) or of
``deepclust ensemble`` (its ``labels.csv``), or a labels file inside a run folder that labels the
same training images another way (the readout's ``umap-gmm-labels.csv``); the folder's
``data.json`` names the images it clustered, and every member's must be equal. The consensus is
K-means-based consensus clustering (:func:`deepclust.cluster.consensus`, Wu et al., IEEE TKDE 2015), which maximises the
co-association objective J without building the N × N co-association matrix.

The ensemble's folder holds ``labels.csv`` (index,label), ``data.json`` (the members'),
``ensemble.json`` (the members with their metrics and J, the settings, the consensus's J) and
``metrics.json`` (ACC/NMI/ARI when the images have labels, the collapse statistics and J).
"""
from __future__ import annotations

import csv
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from deepclust.cluster import consensus
from deepclust.data import SOURCE_FILE, load_source, read_source
from deepclust.engine.checkpoint import load_checkpoint
from deepclust.evaluation import evaluate_clustering
from deepclust.methods.base import prepare_out_dir, write_metrics

LABELS_FILE = "labels.csv"
ENSEMBLE_FILE = "ensemble.json"
#: The metrics of each member that ``ensemble.json`` records.
MEMBER_METRICS = ("acc", "nmi", "ari", "n_clusters_used")


@dataclass
class Member:
    """One fitted run: its folder, method, labels of the training images and number of clusters."""

    run: Path
    method: str
    labels: np.ndarray
    n_clusters: int


@dataclass
class EnsembleResult:
    """labels: the consensus; metrics: what metrics.json holds; members: what ensemble.json lists."""

    labels: np.ndarray
    metrics: dict
    members: list[dict]


def write_labels(path: Path, labels: np.ndarray, paths=None) -> None:
    """CSV ``index,label``, or ``index,path,label`` with the file of each image (``paths``, image folders)."""
    labels = np.asarray(labels).tolist()
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if paths is None:
            writer.writerow(["index", "label"])
            writer.writerows(enumerate(labels))
        else:
            writer.writerow(["index", "path", "label"])
            writer.writerows((index, str(file), label) for index, (file, label) in enumerate(zip(paths, labels)))


def read_labels(path: Path) -> np.ndarray:
    """The labels of a CSV of :func:`write_labels` (with or without its ``path`` column), in index order."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or set(rows[0]) not in ({"index", "label"}, {"index", "path", "label"}):
        raise ValueError(f"{path} must have the columns index,label or index,path,label (as `deepclust ensemble` "
                         "and `deepclust predict` write them)")
    return np.array([int(row["label"]) for row in sorted(rows, key=lambda row: int(row["index"]))], dtype=np.int64)


def member_folder(run: str | Path) -> Path:
    """The run folder of member ``run``: ``run`` itself, or the folder of a labels file."""
    run = Path(run)
    return run.parent if run.is_file() else run


def read_member(run: str | Path, labels_file: str | None = None) -> Member:
    """The labels of run folder ``run``: from its model.pt, else (an ensemble's folder) its labels.csv;
    with ``labels_file``, the labels that file of the folder holds (other images than the training ones).
    ``run`` may also be a labels file inside a run folder (of the training images, read another way):
    its labels, with the folder's method (the file's name beside it) and number of clusters."""
    run = Path(run)
    folder = member_folder(run)
    if run.is_file():
        if labels_file is not None:
            raise ValueError(f"member {run} is a labels file, and labels_file={labels_file!r} names another: "
                             "give run folders with labels_file, or labels files without it")
        listed, suffix = run, f" ({run.name})"
    else:
        listed, suffix = (folder / labels_file if labels_file is not None else None), ""
    if (folder / "model.pt").is_file():
        state = load_checkpoint(folder / "model.pt")
        if listed is not None:
            labels = read_labels(listed)
        elif state.get("labels") is None:
            raise ValueError(f"{folder / 'model.pt'} holds no training labels (not written by `deepclust fit`)")
        else:
            labels = np.asarray(state["labels"], dtype=np.int64)
        n_clusters = state.get("n_clusters") or state["params"]["n_clusters"]
        return Member(run, state["method"] + suffix, labels, int(n_clusters))
    listed = listed or folder / LABELS_FILE
    if listed.is_file():
        labels = read_labels(listed)
        return Member(run, "ensemble" + suffix, labels, int(len(np.unique(labels))))
    raise ValueError(f"{run} is not a fitted run folder: it has neither model.pt nor {listed.name}")


def common_source(runs: Sequence[Path]) -> dict:
    """The data.json record every run folder shares; a ValueError naming the runs and keys otherwise."""
    sources = []
    for run in runs:
        source = read_source(run)
        if source is None:
            raise ValueError(f"{run} has no {SOURCE_FILE} (written by `deepclust fit`): cannot check which images "
                             "it clustered")
        sources.append(source)
    for run, source in zip(runs[1:], sources[1:]):
        if source != sources[0]:
            keys = sorted(key for key in set(source) | set(sources[0]) if source.get(key) != sources[0].get(key))
            raise ValueError(f"the runs were fitted on different data: {SOURCE_FILE} of {run} differs from that of "
                             f"{runs[0]} at {', '.join(keys)} ({ {key: source.get(key) for key in keys} } vs "
                             f"{ {key: sources[0].get(key) for key in keys} })")
    return sources[0]


def _ground_truth(source: dict, n_samples: int, data_root: str | None) -> tuple[np.ndarray | None, str | None]:
    """The true labels of the members' images (None when their record names no dataset) and its name."""
    if source.get("dataset") is None:
        return None, None
    dataset = load_source(source, data_root)
    if len(dataset) != n_samples:
        raise ValueError(f"{SOURCE_FILE} loads {len(dataset)} images, the runs labelled {n_samples}")
    return dataset.labels, dataset.name


def ensemble_runs(runs: Sequence[str | Path], out_dir: str | Path | None = None, *, n_clusters: int | None = None,
                  seed: int = 0, n_init: int = 10, data_root: str | None = None, device: str = "cpu",
                  overwrite: bool = False, labels_file: str | None = None,
                  truth: np.ndarray | None = None) -> EnsembleResult:
    """The consensus of the fitted ``runs`` (at least two run folders on the same data).

    n_clusters: K of the consensus (default: the members', when they agree); seed, n_init: of the
    k-means++ starts of :func:`deepclust.cluster.consensus`; data_root: where the members'
    dataset is loaded from for ACC/NMI/ARI (default: their data.json's); out_dir: where the
    ensemble's folder is written (None: nothing is written; a folder holding a run is refused
    unless ``overwrite``). labels_file: combine the labels this file of every run folder holds
    (the bench's labels of held-out images) instead of the training labels; they are scored against
    ``truth`` (the true labels of those images; None: not scored), and the consensus is written
    to a file of that name (``truth`` without ``labels_file`` is refused).
    """
    started = time.perf_counter()
    runs = [Path(run) for run in runs]
    if len(runs) < 2:
        raise ValueError(f"an ensemble needs at least two runs, got {len(runs)}")
    missing = [str(run) for run in runs if not run.exists()]
    if missing:
        raise ValueError(f"no such run folder or labels file: {', '.join(missing)}")
    if truth is not None and labels_file is None:
        raise ValueError("truth scores the labels of labels_file, and no labels_file was given (the members' "
                         "training labels are scored against their own dataset's)")
    source = common_source([member_folder(run) for run in runs])
    members = [read_member(run, labels_file) for run in runs]
    for member in members[1:]:
        if len(member.labels) != len(members[0].labels):
            raise ValueError(f"{member.run} labels {len(member.labels)} images, {members[0].run} labels "
                             f"{len(members[0].labels)}")
    if n_clusters is None:
        counts = sorted({member.n_clusters for member in members})
        if len(counts) > 1:
            raise ValueError(f"the runs have different numbers of clusters ({', '.join(map(str, counts))}); "
                             "give n_clusters (--n-clusters)")
        n_clusters = counts[0]
    if labels_file is None:
        truth, dataset_name = _ground_truth(source, len(members[0].labels), data_root)
    else:
        dataset_name = source.get("dataset")
        if truth is not None and len(truth) != len(members[0].labels):
            raise ValueError(f"{len(truth)} true labels for the {len(members[0].labels)} images of {labels_file}")
    partitions = [member.labels for member in members]
    result = consensus(partitions, n_clusters, seed=seed, n_init=n_init, device=device)
    listed = [{"run": str(member.run), "method": member.method, "objective": objective,
               **{key: value for key, value in evaluate_clustering(truth, member.labels, n_clusters).items()
                  if key in MEMBER_METRICS}}
              for member, objective in zip(members, result.member_objectives)]
    metrics = {**evaluate_clustering(truth, result.labels, n_clusters), "method": "ensemble",
               "dataset": dataset_name, "n_samples": len(result.labels), "n_members": len(members),
               "members": [str(run) for run in runs], "objective": result.objective,
               "seconds": round(time.perf_counter() - started, 2)}
    if out_dir is not None:
        folder = prepare_out_dir(out_dir, overwrite=overwrite)
        write_labels(folder / (labels_file or LABELS_FILE), result.labels)
        shutil.copyfile(member_folder(runs[0]) / SOURCE_FILE, folder / SOURCE_FILE)
        settings = {"n_clusters": int(n_clusters), "seed": seed, "n_init": n_init, "objective": result.objective,
                    "members": listed}
        (folder / ENSEMBLE_FILE).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        write_metrics(folder, metrics)
    return EnsembleResult(labels=result.labels, metrics=metrics, members=listed)


__all__ = ["EnsembleResult", "Member", "common_source", "ensemble_runs", "member_folder", "read_labels", "read_member",
           "write_labels"]
