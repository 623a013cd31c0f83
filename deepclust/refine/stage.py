"""The refine stage of ``fit``: a second training run, through the same engine, after the method's.

Run folder: the method's training writes ``<run>/checkpoints/last.pt`` and ``<run>/log.jsonl`` as
always; the refine stage is a run folder of its own inside it, ``<run>/refine/`` (its
``checkpoints/last.pt`` and ``log.jsonl``), so both stages resume where they stopped. ``<run>/model.pt``
and ``<run>/metrics.json`` are the refined estimator's; ``metrics.json`` also holds the metrics
before refinement (``before_refine``) and how the stage ran (``refine``).
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from deepclust.data import ImageDataset
from deepclust.engine import distributed
from deepclust.engine.run_folder import clear_run
from deepclust.engine.trainer import FitResult, Trainer
from deepclust.evaluation import evaluate_clustering
from deepclust.refine.model import RefinedModel

#: The refine stage's run folder inside the method's.
REFINE_FOLDER = "refine"
#: Keys of the ``refine`` section that become the stage's ``training`` and ``optimizer`` sections.
TRAINING_KEYS = ("epochs", "batch_size", "eval_every", "max_minutes")


def without_refine(config: dict) -> dict:
    """The configuration the method's own training sees: all but the ``refine`` section, so that
    turning refinement on or tuning it never blocks resuming the method's training."""
    return {key: value for key, value in config.items() if key != "refine"}


def refine_config(config: dict) -> dict:
    """The refine stage's configuration for the trainer: the method's, with ``training`` taking
    ``refine.epochs/batch_size/eval_every/max_minutes``, ``optimizer`` ``refine.optimizer`` and a
    constant learning rate; the rest of ``refine`` stays (resuming checks it is unchanged)."""
    options = config["refine"]
    training = {**config["training"], **{key: options[key] for key in TRAINING_KEYS}}
    rest = {key: value for key, value in options.items() if key not in (*TRAINING_KEYS, "optimizer")}
    return {**config, "training": training, "optimizer": options["optimizer"],
            "schedule": {"name": "constant", "warmup_epochs": 0}, "refine": rest}


def refinement_due(config: dict, result: FitResult) -> bool:
    """Refine when ``refine.enabled``, unless a signal stopped the method's training (a time
    budget does not: the refine stage has its own, ``refine.max_minutes``)."""
    return bool(config["refine"]["enabled"]) and not result.stop_reason.startswith("stopped by")


def run_refinement(estimator, dataset: ImageDataset, images: torch.Tensor, out_dir: Path | None) -> None:
    """Refine the fitted ``estimator`` (a :class:`~deepclust.methods.base.DeepClusterer` whose
    ``fit`` just trained on ``dataset``, ``images`` its uint8 tensor) and make the refined network
    its model: ``model_``, ``labels_`` and the clustering entries of ``metrics_`` become the refined
    ones; ``metrics_["before_refine"]`` keeps those of the method's training and
    ``metrics_["refine"]`` records the stage (epochs, steps, seconds, stop reason)."""
    started = time.perf_counter()
    n_clusters = estimator.model_.n_clusters
    before = {**evaluate_clustering(dataset.labels, estimator.labels_, n_clusters),
              **estimator.extra_metrics(estimator.labels_)}
    model = RefinedModel(estimator.model_)
    stage_dir = None if out_dir is None else Path(out_dir) / REFINE_FOLDER
    if stage_dir is not None and distributed.is_main_process():
        stage_dir.mkdir(parents=True, exist_ok=True)
        if not estimator.resume:  # the method's folder was claimed afresh: so is its refine stage
            clear_run(stage_dir)
    trainer = Trainer(
        model, images, refine_config(estimator.config_), device=estimator.device_, seed=estimator.seed,
        labels=dataset.labels, out_dir=stage_dir, resume=estimator.resume, verbose=estimator.verbose,
        meta={"method": estimator.method_name, "stage": REFINE_FOLDER, "n_clusters": n_clusters,
              "input_shape": list(dataset.shape)},
    )
    result = trainer.fit()
    after = {**evaluate_clustering(dataset.labels, result.labels, n_clusters),
             **estimator.extra_metrics(result.labels)}  # a method's extra metrics read its own model_
    seconds = time.perf_counter() - started
    estimator.model_, estimator.labels_, estimator.refine_result_ = model, result.labels, result
    estimator.metrics_ = {
        **estimator.metrics_, **after, "before_refine": before,
        "refine": {"epochs": result.epochs_completed, "steps": result.global_step,
                   "train_seconds": round(result.train_seconds, 2), "seconds": round(seconds, 2),
                   "images_per_second": round(result.images_per_second, 1), "stop_reason": result.stop_reason},
        "seconds": round(estimator.metrics_["seconds"] + seconds, 2),
    }
