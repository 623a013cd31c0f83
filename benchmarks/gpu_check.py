"""The GPU check: every CUDA code path of deepclust on one CUDA device, within a time limit (10 min).

    ./dev gpu-check [--device cuda] [--time-limit-minutes 10] [--out benchmarks/results] [--work-dir runs/gpu-check]
    ./dev gpu-check --device cpu --dry-run       # every stage at toy size on a CPU, in a minute or two

Stages, in order; each gets its share (:data:`SHARES`) of the time left, so time one leaves unused
goes to the later ones, and one that would start past the limit is reported as not run:

- ``cuda-tests``: ``pytest -m cuda tests`` (tests/engine/test_cuda.py: placement of the model, the
  batches, the step generator and the k-means centroids; finite losses with AMP on and off; a
  bit-exact resume under ``torch.use_deterministic_algorithms``; predict / transform against the CPU).
- ``device-views``: for each method its paper preset (:data:`PAPER_RUNS`: backbone, image size,
  batch) on random uint8 images in device memory, the views made on the device in the step:
  images/s; GFLOP/s of the step (``FlopCounterMode``) against matmul GFLOP/s timed in this run in
  the step's precision; peak memory (``torch.cuda.max_memory_allocated``); the share of the step
  spent in the view pipelines (CUDA events recorded around each pipeline call).
- ``dataloader-views``: the same steps with the views made the usual way: a
  ``torch.utils.data.DataLoader`` whose ``__getitem__`` makes one image's views on the CPU with the
  same pipelines (kornia on a batch of one), ``min(8, CPUs)`` worker processes, pinned memory, then
  ``.to(device, non_blocking=True)``; its images/s and the ratio of the two ways.
- ``training``: ``deepclust fit`` of ``--training-method`` (default hardreg) with its cpu-fashion-mnist
  preset on the device for 2 epochs (Fashion-MNIST when installed, else scikit-learn digits with
  an MLP); model.pt, the checkpoint, the saved estimator's labels, ``deepclust report``.
- ``torchrun``: the same run under ``python -m torch.distributed.run --nproc_per_node 1`` (NCCL on
  CUDA, gloo on the CPU): the process group starts and all-reduces, and the labels and metrics are
  those of the single-process run.

Writes ``<out>/gpu-check.md`` and ``<out>/gpu-check.json``; run folders and logs go to the work
folder. Exits 1 when a stage fails or is cut by the time limit. ``--dry-run`` makes every model,
image and run tiny and writes to runs/gpu-check-dry-run/ unless ``--out`` is given, so committed GPU
figures are never overwritten by a CPU run.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from sklearn.metrics import adjusted_rand_score
from torch.utils.data import DataLoader, Dataset, RandomSampler

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the throughput script's pieces, also when imported

from throughput import StepBench, count_flops, machine, time_steps  # noqa: E402

from deepclust.augment import ViewPipeline, to_float  # noqa: E402
from deepclust.cli import main as deepclust_main  # noqa: E402
from deepclust.data import dataset_status, load_source, read_source  # noqa: E402
from deepclust.engine.checkpoint import load_checkpoint  # noqa: E402
from deepclust.engine import distributed  # noqa: E402
from deepclust.engine.config import deep_merge  # noqa: E402
from deepclust.engine.runtime import matmul_gflops, reference_matmul_size, resolve_device, synchronize  # noqa: E402
from deepclust.engine.step import amp_enabled  # noqa: E402
from deepclust.methods import DeepClusterer, get_method, list_methods, load_estimator  # noqa: E402

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[1]
RESULTS = SCRIPT.parent / "results"
STAGES = ("cuda-tests", "device-views", "dataloader-views", "training", "torchrun")
TITLES = {
    "cuda-tests": "CUDA tests (pytest -m cuda)",
    "device-views": "Throughput at the paper configurations, views made on the device",
    "dataloader-views": "The same steps, views made per image by a CPU DataLoader",
    "training": "Short real training: fit, checkpoint, saved model, report",
    "torchrun": "torchrun --nproc_per_node 1",
}
#: Each stage's share of the time limit; the rest is kept for the matmul reference and the report.
SHARES = {"cuda-tests": 0.3, "device-views": 0.15, "dataloader-views": 0.22, "training": 0.15, "torchrun": 0.12}
RESERVE = 1.0 - sum(SHARES.values())
#: Per method: the paper preset measured, and the shape of the uint8 images its views are made from
#: (at the views' size; the data's own size where the preset keeps it: STL-10, Fashion-MNIST).
#: A deep method missing here fails the throughput stages.
PAPER_RUNS = {
    "htcn": ("paper-imagenet10", (3, 224, 224)),
    "dchl": ("paper-imagenet-dogs", (3, 224, 224)),
    "concurl": ("paper-imagenet10", (3, 160, 160)),
    "hadis": ("paper-imagenet10", (3, 96, 96)),
    "hardreg": ("paper-stl10", (3, 96, 96)),
    "ae-umap-gmm": ("paper-fashion-mnist", (1, 28, 28)),
}
#: What the dry run changes in every paper configuration: a tiny backbone, 16 px images, batch 8.
DRY_RUN_CONFIG = {"backbone": {"name": "small_cnn", "width": 0.25}, "training": {"batch_size": 8}}
DRY_RUN_SIDE = 16
#: (warm-up steps, timed steps, timed DataLoader waves) of a real run and of a dry run
STEPS = {False: (3, 10, 2), True: (1, 2, 1)}
#: options of the training stage's ``deepclust report``, real run and dry run (t-SNE: no UMAP compilation)
REPORT_OPTIONS = {False: [], True: ["--embedding", "tsne", "--max-points", "500"]}
TRAINING_PRESET = "cpu-fashion-mnist"
TRAINING_EPOCHS = 2
#: Metric and label tolerance between two CUDA runs (their kernels may add in another order).
CUDA_RUN_TOLERANCE = {"metric": 0.02, "ari": 0.95}


class StageFailure(Exception):
    """A stage's check did not hold; the message says which and why."""


# --- the time limit ---------------------------------------------------------------------------------
class TimeLimit:
    """The run's time limit, shared out between the stages not yet started in proportion to SHARES."""

    def __init__(self, seconds: float):
        self.started = time.perf_counter()
        self.end = self.started + seconds * (1.0 - RESERVE)
        self.pending = list(STAGES)

    def left(self) -> float:
        return self.end - time.perf_counter()

    def budgets(self, *stages: str) -> list[float]:
        """Seconds for ``stages`` (starting now, side by side), taken from the pending stages' time."""
        total = sum(SHARES[stage] for stage in self.pending)
        left = max(0.0, self.left())
        for stage in stages:
            self.pending.remove(stage)
        return [left * SHARES[stage] / total for stage in stages]


def run_stage(name: str, budget: float, function: Callable[..., dict], *args) -> dict:
    """``function(*args, deadline)`` as stage ``name``: its figures, status, note and seconds."""
    started = time.perf_counter()
    if budget < 1.0:
        return {"name": name, "status": "failed", "note": "not run: the time limit was reached", "seconds": 0.0}
    try:
        stage = {"status": "ok", "note": "", **function(*args, started + budget)}
    except StageFailure as error:
        stage = {"status": "failed", "note": str(error)}
    except Exception as error:  # a broken stage must not stop the others
        traceback.print_exc()
        stage = {"status": "failed", "note": f"{type(error).__name__}: {error}".replace("\n", " ")}
    stage.update(name=name, seconds=round(time.perf_counter() - started, 1), budget_seconds=round(budget, 1))
    print(f"[{name}] {stage['status']} in {stage['seconds']:.0f} s{': ' + stage['note'] if stage['note'] else ''}",
          flush=True)
    return stage


def run_command(command: list[str], log: Path, deadline: float) -> None:
    """Run ``command`` from the repository root, its output in ``log``; killed (with its children)
    at ``deadline``. Raises StageFailure when it fails or runs out of time."""
    timeout = deadline - time.perf_counter()
    if timeout < 1.0:
        raise StageFailure(f"no time left to run {shlex.join(command[-4:])}")
    env = {**os.environ, "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "PYTHONUNBUFFERED": "1"}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as stream:
        process = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT, cwd=REPO, env=env,
                                   start_new_session=True)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise StageFailure(f"{shlex.join(command[1:4])} ... did not finish in its {timeout:.0f} s; log {log}") from None
    if code != 0:
        tail = " | ".join(log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-6:])
        raise StageFailure(f"{shlex.join(command[1:4])} ... exited with {code}: {tail} (log {log})")


# --- stage 1: the CUDA-marked tests ----------------------------------------------------------------
def cuda_tests(device: torch.device, work: Path, deadline: float) -> dict:
    report = work / "cuda-tests.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda",
               f"--junitxml={report}", str(REPO / "tests")]
    try:
        run_command(command, work / "cuda-tests.log", deadline)
    except StageFailure:
        if not report.is_file():
            raise
    cases = list(ElementTree.parse(report).getroot().iter("testcase"))
    failed = [f"{case.get('name')}" for case in cases if case.find("failure") is not None or case.find("error") is not None]
    skipped = {}
    for case in cases:
        if case.find("skipped") is not None:
            reason = case.find("skipped").get("message", "")
            skipped[reason] = skipped.get(reason, 0) + 1
    figures = {"tests": len(cases), "failed": len(failed), "skipped": sum(skipped.values()),
               "passed": len(cases) - len(failed) - sum(skipped.values()), "skip_reasons": skipped,
               "failed_tests": failed}
    if not cases:
        raise StageFailure("no test is marked cuda")
    if failed:
        raise StageFailure(f"{len(failed)} of {len(cases)} failed: {', '.join(failed[:8])} (log {work / 'cuda-tests.log'})")
    if skipped:
        reasons = "; ".join(f"{count} × {reason}" for reason, count in skipped.items())
        if device.type == "cuda" or figures["passed"]:
            raise StageFailure(f"{figures['skipped']} of {len(cases)} skipped on {device}: {reasons}")
        return {**figures, "status": "skipped", "note": f"{len(cases)} tests skipped: {reasons}"}
    return figures


# --- stages 2 and 3: throughput, views on the device and from a DataLoader -------------------------------
def paper_run(name: str, dry_run: bool) -> tuple[str, dict, tuple[int, ...]]:
    """(preset, configuration, image shape) of method ``name``'s measured paper run."""
    if name not in PAPER_RUNS:
        raise StageFailure(f"method '{name}' has no paper run in benchmarks/gpu_check.py's PAPER_RUNS")
    preset, shape = PAPER_RUNS[name]
    config = get_method(name).preset_config(preset)
    if dry_run:
        config = deep_merge(config, DRY_RUN_CONFIG, strict=False)
        shape = (shape[0], DRY_RUN_SIDE, DRY_RUN_SIDE)
        if config["augmentation"].get("image_size"):
            config = deep_merge(config, {"augmentation": {"image_size": DRY_RUN_SIDE, "blur_kernel": None}})
    return preset, config, shape


@contextlib.contextmanager
def routed_views(model: torch.nn.Module, route: Callable[..., torch.Tensor]):
    """Within the block, a call of any of ``model``'s view pipelines on ``x`` returns
    ``route(pipeline, x, forward=the pipeline's own forward)``."""
    pipelines = [module for module in model.modules() if isinstance(module, ViewPipeline)]
    for pipeline in pipelines:
        pipeline.forward = functools.partial(route, pipeline, forward=pipeline.forward)
    try:
        yield
    finally:
        for pipeline in pipelines:
            del pipeline.forward


def views_of_a_step(bench: StepBench) -> list[ViewPipeline]:
    """The view pipelines a training step calls on its batch, in call order (runs one step)."""
    images, indices = bench.prepared[0]
    calls = []

    def record(pipeline, x, forward):
        if x is images:
            calls.append(pipeline)
        return forward(x)

    with routed_views(bench.model, record):
        bench.step(images, indices)
    return calls


class ViewTimer:
    """Time spent in a model's view pipelines while active: CUDA events recorded before and after
    each call on CUDA (the device's clock, no extra synchronisation), the wall clock elsewhere."""

    def __init__(self, model: torch.nn.Module, device: torch.device):
        self.pipelines = [module for module in model.modules() if isinstance(module, ViewPipeline)]
        self.device = device
        self.spans: list[list] = []
        self.handles = []

    def _now(self):
        if self.device.type != "cuda":
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def _start(self, module, args) -> None:
        self.spans.append([self._now(), None])

    def _stop(self, module, args, output) -> None:
        self.spans[-1][1] = self._now()

    def __enter__(self) -> "ViewTimer":
        for pipeline in self.pipelines:
            self.handles += [pipeline.register_forward_pre_hook(self._start), pipeline.register_forward_hook(self._stop)]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()

    def seconds(self) -> float:
        synchronize(self.device)
        if self.device.type == "cuda":
            return sum(start.elapsed_time(stop) for start, stop in self.spans) / 1e3
        return sum(stop - start for start, stop in self.spans)


def measure_on_device(bench: StepBench, dry_run: bool, matmul: dict, deadline: float) -> dict:
    warmup, steps, _ = STEPS[dry_run]
    for _ in range(warmup):
        bench.step()
    device = bench.device
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        resident = torch.cuda.memory_allocated(device)
    with ViewTimer(bench.model, device) as views:
        _, seconds, timed = time_steps(bench.step, 0, steps, device, deadline)
    view_seconds = views.seconds()
    flops = count_flops(bench.step)
    per_step = seconds / timed
    reference = "bfloat16" if bench.amp else "float32"
    row = {"images_per_second": bench.batch_size / per_step, "ms_per_step": 1e3 * per_step,
           "gflop_per_step": flops / 1e9, "gflops": flops / per_step / 1e9, "matmul_reference": reference,
           "share_of_matmul": flops / per_step / 1e9 / matmul[reference], "view_share": view_seconds / seconds,
           "timed_steps": timed, "warmup_steps": warmup}
    if device.type == "cuda":
        row.update(peak_memory_gib=torch.cuda.max_memory_allocated(device) / 2**30, resident_memory_gib=resident / 2**30)
    return row


class PerImageViews(Dataset):
    """The usual input pipeline: item ``i`` is (i, image i, its views), the views made on the CPU by
    ``pipelines`` (those a step calls, in its order) on a batch of this one image."""

    def __init__(self, images: torch.Tensor, pipelines: list[ViewPipeline]):
        self.images = images
        self.pipelines = pipelines

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index]
        one = to_float(image[None])
        return index, image, [pipeline(one)[0] for pipeline in self.pipelines]


def measure_with_dataloader(bench: StepBench, calls: list[ViewPipeline], dry_run: bool, deadline: float) -> dict:
    """Steps whose views come from a CPU DataLoader. Each worker makes whole batches, so batches
    arrive in waves of one per worker: the first wave (worker start-up) is not timed, then whole
    waves are, until ``deadline`` (at least one)."""
    device, waves = bench.device, STEPS[dry_run][2]
    workers = min(8, os.cpu_count() or 1)
    pipelines = [pipeline.cpu() for pipeline in copy.deepcopy(calls)]  # one copy of a pipeline called twice
    dataset = PerImageViews(bench.images.cpu(), pipelines)
    sampler = RandomSampler(dataset, replacement=True, num_samples=(1 + waves) * workers * bench.batch_size,
                            generator=torch.Generator().manual_seed(0))
    loader = DataLoader(dataset, batch_size=bench.batch_size, sampler=sampler, num_workers=workers,
                        pin_memory=device.type == "cuda", drop_last=True)
    started, timed = None, 0
    for position, (indices, images, views) in enumerate(loader):
        images = to_float(images.to(device, non_blocking=True))
        pending = [view.to(device, non_blocking=True) for view in views]

        def replay(pipeline, x, forward):
            if x is not images:
                return forward(x)
            if not pending:
                raise RuntimeError(f"the step asks for more than the {len(views)} views of its recorded step")
            return pending.pop(0)

        with routed_views(bench.model, replay):
            bench.step(images, indices.to(device, non_blocking=True))
        if pending:
            raise RuntimeError(f"the step used {len(views) - len(pending)} of the {len(views)} views of its recorded step")
        if started is not None:
            timed += 1
            if timed % workers == 0 and time.perf_counter() > deadline:
                break
        elif position == workers - 1:
            synchronize(device)
            started = time.perf_counter()
    synchronize(device)
    per_step = (time.perf_counter() - started) / timed
    return {"images_per_second": bench.batch_size / per_step, "ms_per_step": 1e3 * per_step, "workers": workers,
            "timed_steps": timed, "pin_memory": device.type == "cuda"}


def deep_methods() -> list[str]:
    return [name for name in list_methods() if issubclass(get_method(name), DeepClusterer)
            and getattr(get_method(name), "model_class", None) is not None]


def throughput_stages(device: torch.device, args: argparse.Namespace, matmul: dict, budgets: list[float]
                      ) -> tuple[dict, dict]:
    """Stages device-views and dataloader-views, method by method on one network each; a method's
    time is its stage's time left shared by the methods left."""
    started = time.perf_counter()
    names = deep_methods()
    left = {"device-views": budgets[0], "dataloader-views": budgets[1]}
    rows = {"device-views": [], "dataloader-views": []}
    for position, name in enumerate(names):
        base = {"method": name}
        if min(left.values()) < 1.0:
            for stage in rows:
                rows[stage].append({**base, "status": "failed", "note": "not run: the time limit was reached"})
            continue
        share = {stage: seconds / (len(names) - position) for stage, seconds in left.items()}
        method_started = time.perf_counter()
        try:
            preset, config, shape = paper_run(name, args.dry_run)
            base.update(preset=preset, image_shape=list(shape), batch_size=int(config["training"]["batch_size"]))
            bench = StepBench(name, config, shape, args.n_clusters, device)
            calls = views_of_a_step(bench)
            base.update(backbone=bench.backbone, views=len(calls), amp=bench.amp,
                        parameters=sum(p.numel() for p in bench.model.parameters()))
        except Exception as error:
            traceback.print_exc()
            note = f"{type(error).__name__}: {error}".replace("\n", " ")
            for stage in rows:
                rows[stage].append({**base, "status": "failed", "note": note})
            left["device-views"] -= time.perf_counter() - method_started
            continue
        measures = {"device-views": functools.partial(measure_on_device, bench, args.dry_run, matmul),
                    "dataloader-views": functools.partial(measure_with_dataloader, bench, calls, args.dry_run)}
        for stage, measure in measures.items():
            begun = method_started if stage == "device-views" else time.perf_counter()  # building counts as device time
            try:
                row = {**base, "status": "ok", **measure(begun + share[stage])}
                print(f"{name}, {stage}: {row['images_per_second']:.0f} images/s", flush=True)
            except Exception as error:
                traceback.print_exc()
                row = {**base, "status": "failed", "note": f"{type(error).__name__}: {error}".replace("\n", " ")}
            rows[stage].append(row)
            left[stage] -= time.perf_counter() - begun
        device_row, loader_row = rows["device-views"][-1], rows["dataloader-views"][-1]
        if device_row["status"] == loader_row["status"] == "ok":
            loader_row["device_over_dataloader"] = device_row["images_per_second"] / loader_row["images_per_second"]
        del bench, calls, measures
        if device.type == "cuda":
            torch.cuda.empty_cache()
    stages = []
    for stage, budget in zip(rows, budgets):
        failed = [row["method"] for row in rows[stage] if row["status"] != "ok"]
        stages.append({"name": stage, "status": "failed" if failed else "ok",
                       "note": f"failed: {', '.join(failed)}" if failed else "", "methods": rows[stage],
                       "seconds": round(budget - left[stage], 1), "budget_seconds": round(budget, 1)})
    print(f"[throughput] {time.perf_counter() - started:.0f} s", flush=True)
    return stages[0], stages[1]


# --- stages 4 and 5: a short real training, alone and under torchrun -----------------------------------
def fit_arguments(args: argparse.Namespace, device: torch.device, out: Path) -> list[str]:
    """``deepclust fit`` of the training stage: Fashion-MNIST when installed (not in a dry run), else digits."""
    fashion_mnist = not args.dry_run and any(row["name"] == "fashion-mnist" and row["found"] for row in dataset_status())
    data = ["--dataset", "fashion-mnist"] if fashion_mnist else ["--dataset", "digits", "--set", "backbone.name=mlp"]
    return ["fit", "--method", args.training_method, "--preset", TRAINING_PRESET, *data, "--epochs", str(TRAINING_EPOCHS),
            "--device", str(device), "--seed", "0", "--quiet", "--out", str(out)]


def worker_command(args: argparse.Namespace, device: torch.device, out: Path) -> list[str]:
    return [str(SCRIPT), "worker", str(out.parent / f"{out.name}-process-group.json"), str(device),
            *fit_arguments(args, device, out)]


def training(args: argparse.Namespace, device: torch.device, work: Path, deadline: float) -> dict:
    run = work / "fit"
    run_command([sys.executable, *worker_command(args, device, run)], work / "fit.log", deadline)
    missing = [name for name in ("model.pt", "metrics.json", "log.jsonl", "config.yaml", "checkpoints/last.pt")
               if not (run / name).is_file()]
    if missing:
        raise StageFailure(f"the run folder {run} lacks {', '.join(missing)}")
    metrics = json.loads((run / "metrics.json").read_text())
    checkpoint = load_checkpoint(run / "checkpoints" / "last.pt", method=args.training_method)
    if (checkpoint["epoch"], checkpoint["global_step"]) != (TRAINING_EPOCHS, metrics["steps"]):
        raise StageFailure(f"checkpoint at epoch {checkpoint['epoch']}, step {checkpoint['global_step']}; "
                           f"the run ended at epoch {TRAINING_EPOCHS}, step {metrics['steps']}")
    estimator = load_estimator(run / "model.pt", device=str(device))
    dataset = load_source(read_source(run))
    agreement = float(np.mean(estimator.predict(dataset) == estimator.labels_))
    # the run's labels come from its last evaluation, under autocast when AMP is on; predict runs in float32
    required = 0.99 if amp_enabled(estimator.config_["training"], device) else 1.0
    if agreement < required and estimator.model_.label_source == "head":
        raise StageFailure(f"the saved model predicts its own training labels for {agreement:.2%} of the images")
    report_started = time.perf_counter()
    run_command([sys.executable, "-m", "deepclust", "report", str(run), "--device", str(device),
                 *REPORT_OPTIONS[args.dry_run]],
                work / "report.log", deadline)
    if not (run / "report" / "report.html").is_file():
        raise StageFailure(f"deepclust report wrote no {run / 'report' / 'report.html'}")
    return {"command": "deepclust " + shlex.join(fit_arguments(args, device, run)), "dataset": metrics["dataset"],
            "n_samples": metrics["n_samples"], "epochs": metrics["epochs"], "steps": metrics["steps"],
            **{key: metrics[key] for key in ("acc", "nmi", "ari")}, "train_seconds": metrics["train_seconds"],
            "images_per_second": metrics["images_per_second"], "saved_model_label_agreement": agreement,
            "report_seconds": round(time.perf_counter() - report_started, 1), "run_folder": str(run)}


def torchrun(args: argparse.Namespace, device: torch.device, work: Path, deadline: float) -> dict:
    run = work / "torchrun"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
               *worker_command(args, device, run)]
    run_command(command, work / "torchrun.log", deadline)
    group = json.loads((work / "torchrun-process-group.json").read_text())
    backend = "nccl" if device.type == "cuda" else "gloo"
    if (group.get("backend"), group.get("world_size"), group.get("all_reduce_sum")) != (backend, 1, 1.0):
        raise StageFailure(f"expected a {backend} process group of 1 whose all-reduce of 1 gives 1, got {group}")
    single = work / "fit"
    if not (single / "model.pt").is_file():
        raise StageFailure("the single-process run of the training stage is missing: nothing to compare with")
    labels = [torch.load(folder / "model.pt", map_location="cpu", weights_only=False)["labels"] for folder in (single, run)]
    metrics = [json.loads((folder / "metrics.json").read_text()) for folder in (single, run)]
    differences = {key: abs(metrics[1][key] - metrics[0][key]) for key in ("acc", "nmi", "ari")}
    figures = {"backend": group["backend"], "world_size": group["world_size"],
               "labels_identical": bool(np.array_equal(*labels)), "ari_between_runs": float(adjusted_rand_score(*labels)),
               "metric_differences": differences, **{key: metrics[1][key] for key in ("acc", "nmi", "ari")},
               "run_folder": str(run)}
    if figures["labels_identical"]:
        return figures
    close = max(differences.values()) <= CUDA_RUN_TOLERANCE["metric"] and figures["ari_between_runs"] >= CUDA_RUN_TOLERANCE["ari"]
    if device.type != "cuda" or not close:
        raise StageFailure(f"labels differ from the single-process run (ARI between the runs "
                           f"{figures['ari_between_runs']:.3f}, metric differences {differences})")
    return {**figures, "note": "not bit-identical to the single-process run; within the tolerance of two CUDA runs"}


def worker(argv: list[str]) -> int:
    """``worker PROBE_FILE DEVICE fit ...``: ``deepclust fit`` with deterministic CUDA kernels where
    they exist. Under torchrun deepclust's own process group is formed first (NCCL on CUDA, gloo
    elsewhere; also for one process) and all-reduces once; rank 0 writes what it saw to PROBE_FILE."""
    probe_file, device, fit_argv = Path(argv[0]), resolve_device(argv[1]), argv[2:]
    if device.type == "cuda":
        torch.use_deterministic_algorithms(True, warn_only=True)
    if distributed.launched_by_torchrun():
        device = distributed.init_from_environment(device)
        one = torch.ones(1, device=device)
        dist.all_reduce(one)
        if dist.get_rank() == 0:
            probe_file.write_text(json.dumps({"backend": dist.get_backend(), "world_size": dist.get_world_size(),
                                              "all_reduce_sum": float(one)}))
    return deepclust_main(fit_argv)


# --- the report -------------------------------------------------------------------------------------
def device_description(device: torch.device) -> str:
    if device.type != "cuda":
        return f"{machine(device)}, torch {torch.__version__}"
    properties = torch.cuda.get_device_properties(device)
    return (f"{properties.name} ({device}, {properties.total_memory / 2**30:.1f} GiB, compute capability "
            f"{properties.major}.{properties.minor}), CUDA {torch.version.cuda}, torch {torch.__version__}")


def _status(stage: dict) -> str:
    if stage["status"] == "ok":
        return "ok"
    return f"{stage['status']} ({stage['note']})"


def _method_table(header: list[str], cells: Callable[[dict], list[str]]) -> Callable[[dict], list[str]]:
    """A stage's lines: one table row per method, its ``cells`` or why it has none."""
    def lines(stage: dict) -> list[str]:
        table = ["| Method | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
        for row in stage["methods"]:
            if row["status"] == "ok":
                table.append(f"| {row['method']} | " + " | ".join(cells(row)) + " |")
            else:
                table.append(f"| {row['method']} | {row['status']} ({row['note']}) |" + " |" * (len(header) - 1))
        return table
    return lines


def _tests_lines(tests: dict) -> list[str]:
    return ([f"{tests['passed']} passed, {tests['failed']} failed, {tests['skipped']} skipped of {tests['tests']}."]
            + [f"- skipped ({count}): {reason}" for reason, count in tests["skip_reasons"].items()])


def _training_lines(train: dict) -> list[str]:
    return [f"`{train['command']}`", "",
            f"{train['dataset']} ({train['n_samples']} images), {train['epochs']} epochs, {train['steps']} steps: "
            f"ACC {train['acc']:.4f}, NMI {train['nmi']:.4f}, ARI {train['ari']:.4f}; "
            f"{train['train_seconds']:.1f} s of training, {train['images_per_second']:.0f} images/s. "
            f"The checkpoint loads at the last step; the saved model predicts its training labels for "
            f"{100 * train['saved_model_label_agreement']:.1f}% of the images; `deepclust report` wrote "
            f"report.html in {train['report_seconds']:.0f} s."]


def _torchrun_lines(launched: dict) -> list[str]:
    same = "identical labels" if launched["labels_identical"] else \
        f"ARI {launched['ari_between_runs']:.4f} between the runs' labels"
    differences = ", ".join(f"{key.upper()} {value:.4f}" for key, value in launched["metric_differences"].items())
    return [f"Process group: {launched['backend']}, world size {launched['world_size']}, all-reduce ok. "
            f"Against the single-process run: {same}; metric differences {differences}. {launched['note']}".strip()]


#: Per stage: the figure its details need (absent when it failed) and the lines of its section.
SECTIONS = {
    "cuda-tests": ("tests", _tests_lines),
    "device-views": ("methods", _method_table(
        ["Preset", "Backbone", "Images", "Batch", "Views", "AMP", "Images/s", "ms/step", "GFLOP/step", "GFLOP/s",
         "% of matmul", "Peak memory (GiB)", "View share"],
        lambda row: [row["preset"], row["backbone"], "×".join(map(str, row["image_shape"])), str(row["batch_size"]),
                     str(row["views"]), "bf16" if row["amp"] else "off", f"{row['images_per_second']:.0f}",
                     f"{row['ms_per_step']:.1f}", f"{row['gflop_per_step']:.1f}", f"{row['gflops']:.0f}",
                     f"{100 * row['share_of_matmul']:.0f}% of {row['matmul_reference']}",
                     f"{row['peak_memory_gib']:.2f}" if "peak_memory_gib" in row else "n/a (CPU)",
                     f"{100 * row['view_share']:.0f}%"])),
    "dataloader-views": ("methods", _method_table(
        ["Workers", "Pinned", "Images/s", "ms/step", "Timed steps", "Device views ÷ DataLoader"],
        lambda row: [str(row["workers"]), "yes" if row["pin_memory"] else "no (CPU)", f"{row['images_per_second']:.0f}",
                     f"{row['ms_per_step']:.1f}", str(row["timed_steps"]),
                     f"{row['device_over_dataloader']:.2f}×" if "device_over_dataloader" in row else "-"])),
    "training": ("acc", _training_lines),
    "torchrun": ("backend", _torchrun_lines),
}
HOW = [
    "- A step: `training_step` (views included), backward, optimizer step and `on_after_step`, under the engine's "
    "autocast rule (bfloat16 on CUDA when the preset's `training.amp` is on), on random uint8 images of the given "
    "shape; the device-views stage holds them in device memory.",
    "- GFLOP/step: `torch.utils.flop_counter.FlopCounterMode` over one step (matmuls and convolutions, forward and "
    "backward; element-wise work, augmentation and optimizer updates are not counted). % of matmul: GFLOP/s against "
    "a square matmul timed in this run, in bfloat16 for AMP steps, else float32.",
    "- Peak memory: `torch.cuda.max_memory_allocated` over the timed steps, the resident data (the images and 8 "
    "prepared batches) included.",
    "- View share: the time between CUDA events recorded before and after every call of a view pipeline "
    "(augmentation, or HardReg's resize/normalisation) in the timed steps, over the steps' wall time (on a CPU: the "
    "wall clock around those calls).",
    "- DataLoader: each item makes one image's views on the CPU with copies of the step's pipelines (kornia on a "
    "batch of one), in worker processes; pinned batches are copied with `non_blocking=True` and the step replays "
    "them instead of calling its pipelines. Workers make whole batches, so the first wave (one batch per worker, "
    "worker start-up) is not timed, then whole waves are.",
]


def format_markdown(result: dict) -> str:
    stages = {stage["name"]: stage for stage in result["stages"]}
    matmul = result["matmul"]
    lines = [
        "# GPU check" + (" (dry run: toy sizes, not GPU figures)" if result["dry_run"] else ""), "",
        f"Command: `{result['command']}`", "",
        f"Device: {result['device']}; {os.cpu_count()} CPUs; date {result['date']}.", "",
        f"Result: **{'passed' if result['passed'] else 'FAILED'}** in {result['seconds']:.0f} s "
        f"(time limit {result['time_limit_seconds']:.0f} s).", "",
        f"Matmul reference ({matmul['size']}×{matmul['size']}, timed in this run): "
        + ", ".join(f"{dtype} **{value:.0f} GFLOP/s**" for dtype, value in matmul["gflops"].items()) + ".", "",
        "| Stage | Status | Seconds (share) |", "|---|---|---|",
    ]
    lines += [f"| {TITLES[name]} | {_status(stages[name])} | {stages[name]['seconds']:.0f} "
              f"({stages[name].get('budget_seconds', 0):.0f}) |" for name in STAGES]
    for name in STAGES:
        needed, section = SECTIONS[name]
        stage = stages[name]
        lines += ["", f"## {TITLES[name]}", "", *(section(stage) if needed in stage else [_status(stage)])]
    lines += ["", "## How the figures are made", "", *HOW]
    return "\n".join(lines) + "\n"


# --- main -------------------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="./dev gpu-check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="the CUDA device (default cuda); cpu only with --dry-run")
    parser.add_argument("--dry-run", action="store_true", help="every stage at toy size (tiny models, 16 px images)")
    parser.add_argument("--time-limit-minutes", type=float, default=10.0)
    parser.add_argument("--out", help="folder of gpu-check.md/.json (default benchmarks/results; dry run: the work folder)")
    parser.add_argument("--work-dir", help="run folders and logs (default runs/gpu-check, dry run runs/gpu-check-dry-run)")
    parser.add_argument("--training-method", default="hardreg", help="method of the training and torchrun stages")
    parser.add_argument("--n-clusters", type=int, default=10, help="clusters of the throughput networks")
    args = parser.parse_args(argv)
    if args.time_limit_minutes <= 0:
        parser.error(f"--time-limit-minutes must be positive, got {args.time_limit_minutes}")
    try:
        args.device = resolve_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    if args.device.type != "cuda" and not args.dry_run:
        parser.error(f"the GPU check needs a CUDA device, got --device {args.device}; "
                     "use --device cpu --dry-run to try the script on a CPU")
    get_method(args.training_method)
    default_work = REPO / "runs" / ("gpu-check-dry-run" if args.dry_run else "gpu-check")
    args.work_dir = Path(args.work_dir) if args.work_dir else default_work
    args.out = Path(args.out) if args.out else (args.work_dir if args.dry_run else RESULTS)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["worker"]:
        return worker(argv[1:])
    args = parse_args(argv)
    device, work = args.device, args.work_dir.resolve()
    limit = TimeLimit(60.0 * args.time_limit_minutes)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result = {"command": " ".join(["./dev gpu-check", shlex.join(argv)]).strip(), "dry_run": args.dry_run,
              "device": device_description(device), "date": time.strftime("%Y-%m-%d %H:%M"),
              "time_limit_seconds": 60.0 * args.time_limit_minutes, "stages": []}
    print(f"GPU check on {result['device']}; time limit {args.time_limit_minutes:g} min", flush=True)
    result["stages"].append(run_stage("cuda-tests", *limit.budgets("cuda-tests"), cuda_tests, device, work))
    size = 256 if args.dry_run else reference_matmul_size(device)
    dtypes = {"float32": torch.float32, **({"bfloat16": torch.bfloat16} if device.type == "cuda" else {})}
    result["matmul"] = {"size": size, "gflops": {name: matmul_gflops(device, size, dtype=dtype) for name, dtype in dtypes.items()}}
    result["stages"] += throughput_stages(device, args, result["matmul"]["gflops"],
                                          limit.budgets("device-views", "dataloader-views"))
    result["stages"].append(run_stage("training", *limit.budgets("training"), training, args, device, work))
    result["stages"].append(run_stage("torchrun", *limit.budgets("torchrun"), torchrun, args, device, work))
    result["seconds"] = round(time.perf_counter() - limit.started, 1)
    result["passed"] = all(stage["status"] in ("ok", "skipped") for stage in result["stages"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu-check.json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    (args.out / "gpu-check.md").write_text(format_markdown(result), encoding="utf-8")
    print(f"{'passed' if result['passed'] else 'FAILED'} in {result['seconds']:.0f} s; "
          f"wrote {args.out / 'gpu-check.md'} and {args.out / 'gpu-check.json'}", flush=True)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
