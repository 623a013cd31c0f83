"""Launching small torch.distributed runs from tests: W CPU processes on the gloo backend.

``launch`` plays torchrun's part (the environment variables it sets); ``fit_worker`` is one
process of ``estimator.fit`` and saves its final model state to ``<out_dir>/rank<r>.pt`` so
the test can compare processes with each other and with a one-process run.
"""
from __future__ import annotations

import copy
import json
import os
import socket
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp

from deepclust.data import ImageDataset
from deepclust.engine import distributed
from deepclust.methods import get_method


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(world_size: int, target, *args) -> None:
    """Run ``target(rank, world_size, port, *args)`` in ``world_size`` fresh processes and wait."""
    mp.spawn(target, args=(world_size, free_port(), *args), nprocs=world_size, join=True)


def join_process_group(rank: int, world_size: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)


def make_estimator(method: str, config: dict, **params):
    """The method's estimator trained with exactly ``config`` (no preset merged underneath)."""
    cls = get_method(method)
    estimator = cls(**params)
    estimator.resolved_config = lambda run_config=None: copy.deepcopy(config)
    return estimator


def training_data(data_file: str) -> ImageDataset:
    """The images and labels of ``data_file`` (.npz); its optional array ``unlabeled`` names the
    images of the dataset part "unlabeled"."""
    data = np.load(data_file)
    parts = {"unlabeled": data["unlabeled"]} if "unlabeled" in data else None
    n_classes = int(data["labels"].max()) + 1
    return ImageDataset(data["images"], data["labels"], "npz", [str(k) for k in range(n_classes)], n_classes,
                        parts=parts)


def fit_worker(rank: int, world_size: int, port: int, method: str, config: dict, data_file: str,
               out_dir: str, params: dict) -> None:
    join_process_group(rank, world_size, port)
    estimator = make_estimator(method, config, device="cpu", seed=0, out_dir=out_dir, **params)
    estimator.fit(training_data(data_file))
    torch.save({"state": estimator.model_.state_dict(), "labels": estimator.labels_,
                "steps": estimator.fit_result_.global_step}, Path(out_dir) / f"rank{rank}.pt")
    distributed.shutdown()


def logged_steps(out_dir: str | Path) -> list[dict]:
    """The ``step`` events of a run's log."""
    lines = (Path(out_dir) / "log.jsonl").read_text().splitlines()
    return [event for event in map(json.loads, lines) if event["event"] == "step"]
