"""Training-step throughput of every registered deep method, against the machine's matmul speed.

    python benchmarks/throughput.py [--methods all|m1,m2] [--preset cpu-fashion-mnist]
        [--backbone small_cnn|preset] [--batch-size 128] [--image-shape 1,28,28] [--warmup 3] [--steps 10]
        [--memory-format contiguous|channels_last|both] [--n-samples 512] [--variant KEY=VALUE ...]
        [--device auto] [--out benchmarks/results]

For each method the network is built from its preset (default ``cpu-fashion-mnist``) with one
backbone and one batch size for all methods (``--backbone preset`` keeps each preset's own), on
random images of ``--image-shape``. Its hooks ``on_fit_start`` and ``on_epoch_start(0)`` run first
(untimed), then ``--warmup`` steps, then ``--steps`` timed steps; a step is ``training_step`` (views
generated on the device included), ``backward``, ``optimizer.step`` and ``on_after_step`` (EMA,
memory banks), with the batch already on the device. One more step runs under
``torch.utils.flop_counter.FlopCounterMode`` to count its FLOPs (matmuls and convolutions, forward
and backward; element-wise work is not counted), which gives the achieved GFLOP/s. The reference
is the float32 GFLOP/s of a large square matmul (2·n³ FLOPs) timed in the same process, with the
same threads. ``--memory-format both`` measures every method twice in the same run, with its
convolution weights contiguous and channels-last (``training.channels_last``), one after the other.
Each ``--variant KEY=VALUE`` (a config override, as ``deepclust fit --set``) measures every method
once more with it, after the preset as it is: a before-and-after of one change in one run.
``--n-samples`` random images are held on the device; they size per-sample state such as
ConCURL's memory bank (70000 for Fashion-MNIST's: the bank's row reads depend on its size).
Methods whose preset is missing are skipped with a note.

Writes ``<out>/throughput.md`` and ``<out>/throughput.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from deepclust.augment import to_float
from deepclust.backbones import Backbone
from deepclust.engine.config import ConfigError, deep_merge, parse_assignment
from deepclust.engine.inference import autocast_context, iterate_images, map_images
from deepclust.engine.model import Batch, TrainingContext
from deepclust.engine.optim import build_optimizer
from deepclust.engine.runtime import matmul_gflops, reference_matmul_size, resolve_device, seed_everything, synchronize
from deepclust.engine.step import amp_enabled, apply_memory_format, compile_backbones
from deepclust.methods import DeepClusterer, get_method, list_methods

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/throughput.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="all", help="'all' registered deep methods, or m1,m2")
    parser.add_argument("--preset", default="cpu-fashion-mnist")
    parser.add_argument("--backbone", default="small_cnn",
                        help="backbone of every method (default small_cnn); 'preset' keeps each preset's")
    parser.add_argument("--batch-size", default="128", help="batch of every method (default 128); 'preset' keeps each preset's")
    parser.add_argument("--image-shape", default="1,28,28", help="C,H,W of the random input images (Fashion-MNIST)")
    parser.add_argument("--n-clusters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--matmul-size", type=int, help="side of the reference matmul (default 2048 CPU, 8192 CUDA)")
    parser.add_argument("--memory-format", default="contiguous", choices=("contiguous", "channels_last", "both"),
                        help="the networks' memory format (training.channels_last); both: each method twice")
    parser.add_argument("--n-samples", type=int, default=512,
                        help="random images held on the device; sizes per-sample state such as memory banks")
    parser.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE",
                        help="also measure every method with this config override (repeatable)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    for text in args.variant:
        try:
            parse_assignment(text)
        except ConfigError as error:
            parser.error(f"--variant: {error}")
    try:
        args.image_shape = tuple(int(v) for v in args.image_shape.split(","))
    except ValueError:
        parser.error(f"--image-shape expects C,H,W, got '{args.image_shape}'")
    if len(args.image_shape) != 3 or min(args.image_shape) < 1:
        parser.error(f"--image-shape expects three positive integers C,H,W, got {args.image_shape}")
    if args.batch_size != "preset":
        if not args.batch_size.isdigit() or int(args.batch_size) < 1:
            parser.error(f"--batch-size must be a positive integer or 'preset', got '{args.batch_size}'")
    if args.warmup < 0 or args.steps < 1:
        parser.error(f"--warmup must be >= 0 and --steps >= 1, got {args.warmup} and {args.steps}")
    if args.n_samples < 1:
        parser.error(f"--n-samples must be >= 1, got {args.n_samples}")
    return args


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"


class StepBench:
    """Method ``name``'s network built from ``config`` on ``n_samples`` (at least four batches) random
    uint8 images of ``shape`` held on ``device``, its hooks ``on_fit_start`` and ``on_epoch_start(0)``
    run, ready for training steps.

    :meth:`step` is one training step: ``training_step`` (views generated on the device included)
    under the engine's autocast rule, ``backward``, ``optimizer.step`` and ``on_after_step``, on a
    batch already on the device (one of eight prepared batches in turn, or the one given).
    """

    def __init__(self, name: str, config: dict, shape: tuple[int, ...], n_clusters: int, device: torch.device,
                 n_samples: int = 512):
        seed_everything(0)
        channels = shape[0]
        self.device = device
        self.batch_size = int(config["training"]["batch_size"])
        self.model = apply_memory_format(get_method(name)(n_clusters=n_clusters)._build_model(
            config, n_clusters, shape, (0.5,) * channels, (0.29,) * channels).to(device), config["training"])
        compile_backbones(self.model, config["training"])
        n_samples = max(4 * self.batch_size, n_samples)
        images = torch.randint(0, 256, (n_samples, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        self.images = images.to(device)
        eval_batch = int(config["training"].get("eval_batch_size", 512))
        epochs = int(config["training"].get("epochs", 1))
        self.amp = amp_enabled(config["training"], device)
        steps_per_epoch = n_samples // self.batch_size
        self.context = TrainingContext(
            device=device, n_samples=n_samples, steps_per_epoch=steps_per_epoch, total_steps=epochs * steps_per_epoch,
            max_epochs=epochs, seed=0, iterate_dataset=lambda: iterate_images(self.images, eval_batch, device),
            map_dataset=lambda fn: map_images(fn, self.images, eval_batch, device, self.amp))
        self.optimizer = build_optimizer(self.model.parameter_groups(), config["optimizer"])
        self.model.train()
        self.model.on_fit_start(self.context)
        self.model.on_epoch_start(0, self.context)
        generator = torch.Generator().manual_seed(1)
        batches = [torch.randperm(n_samples, generator=generator)[:self.batch_size].to(device) for _ in range(8)]
        self.prepared = [(to_float(self.images[indices]), indices) for indices in batches]
        self.steps_done = 0

    @property
    def backbone(self) -> str:
        encoders = [module for module in self.model.modules() if isinstance(module, Backbone)]
        return getattr(encoders[0], "name", type(encoders[0]).__name__) if encoders else "(own network)"

    def step(self, images: torch.Tensor | None = None, indices: torch.Tensor | None = None) -> None:
        if images is None:
            images, indices = self.prepared[self.steps_done % len(self.prepared)]
        with autocast_context(self.device, self.amp):
            outputs = self.model.training_step(Batch(images=images, indices=indices, epoch=0, step=self.steps_done))
        self.optimizer.zero_grad(set_to_none=True)
        outputs["loss"].backward()
        self.optimizer.step()
        self.model.on_after_step(self.steps_done, self.context)
        self.steps_done += 1


def time_steps(step: Callable[[], None], warmup: int, steps: int, device: torch.device,
               deadline: float | None = None) -> tuple[float, float, int]:
    """Seconds of ``warmup`` calls of ``step`` (compilation, allocator warm-up), then seconds of
    ``steps`` calls after them, and the number timed: fewer when ``deadline`` (a
    ``time.perf_counter`` value) passes first, but at least one."""
    started = time.perf_counter()
    for _ in range(warmup):
        step()
    synchronize(device)
    warmup_seconds = time.perf_counter() - started
    started, done = time.perf_counter(), 0
    while done < steps and (done == 0 or deadline is None or time.perf_counter() < deadline):
        step()
        done += 1
        synchronize(device)
    return warmup_seconds, time.perf_counter() - started, done


def count_flops(step: Callable[[], None]) -> float:
    """FLOPs of one call of ``step`` by ``FlopCounterMode`` (matmuls and convolutions, forward and
    backward), run eagerly: compiled kernels would bypass the counter."""
    counter = FlopCounterMode(display=False)
    with torch.compiler.set_stance("force_eager"), counter:
        step()
    return float(counter.get_total_flops())


def measure_method(name: str, args: argparse.Namespace, device: torch.device, channels_last: bool = False,
                   variant: str | None = None) -> dict:
    """One row: method ``name``'s preset (as the arguments adapt it), with ``variant`` (KEY=VALUE) over it."""
    config = get_method(name).preset_config(args.preset)  # raises when the preset is missing
    if args.backbone != "preset":  # the whole section: the preset's options may not apply to this backbone
        config = {**config, "backbone": {"name": args.backbone}}
    if args.batch_size != "preset":
        config = deep_merge(config, {"training": {"batch_size": int(args.batch_size)}}, strict=False)
    config = deep_merge(config, {"training": {"channels_last": channels_last}}, strict=False)
    if variant is not None:
        config = deep_merge(config, parse_assignment(variant))  # strict: a misspelt key is an error
    bench = StepBench(name, config, args.image_shape, args.n_clusters, device, args.n_samples)
    warmup_seconds, seconds, steps = time_steps(bench.step, args.warmup, args.steps, device)
    flops = count_flops(bench.step)
    seconds_per_step = seconds / steps
    return {
        "method": name, "status": "ok", "variant": variant or "preset",
        "memory_format": "channels_last" if channels_last else "contiguous",
        "backbone": bench.backbone, "batch_size": bench.batch_size,
        "image_size": bench.model.image_size, "parameters": sum(p.numel() for p in bench.model.parameters()),
        "images_per_second": bench.batch_size / seconds_per_step, "ms_per_step": 1e3 * seconds_per_step,
        "gflop_per_step": flops / 1e9, "gflops": flops / seconds_per_step / 1e9,
        "timed_steps": steps, "warmup_steps": args.warmup, "warmup_seconds": warmup_seconds,
    }


def format_markdown(result: dict) -> str:
    lines = [
        "# Training-step throughput", "",
        f"Made by: `{result['command']}`", "",
        f"Machine: {result['machine']}; device {result['device']}; {result['threads']} torch threads; "
        f"torch {result['torch']}; date {result['date']}.", "",
        f"Reference: float32 matmul {result['matmul_size']}×{result['matmul_size']}: "
        f"**{result['matmul_gflops']:.1f} GFLOP/s**.", "",
        f"Preset {result['preset']}; random images of shape {tuple(result['image_shape'])}; "
        f"{result['warmup']} warm-up step(s), {result['steps']} timed step(s); "
        f"{result.get('n_samples', 512)} images held (per-sample state sized for them).", "",
    ]
    variants = any(row.get("variant", "preset") != "preset" for row in result["methods"])
    header = ["Method", *(["Config"] if variants else []), "Memory format", "Backbone", "Batch", "Image size",
              "Params (M)", "Images/s", "ms/step", "GFLOP/step", "GFLOP/s", "% of matmul", "Warm-up s"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in result["methods"]:
        if row["status"] != "ok":
            continue
        share = 100.0 * row["gflops"] / result["matmul_gflops"]
        warmup = f"{row['warmup_seconds']:.1f}" if "warmup_seconds" in row else "–"  # older results lack it
        config = f" | {row.get('variant', 'preset')}" if variants else ""
        lines.append(f"| {row['method']}{config} | {row.get('memory_format', 'contiguous')} | {row['backbone']} "
                     f"| {row['batch_size']} | {row['image_size']} "
                     f"| {row['parameters'] / 1e6:.2f} | {row['images_per_second']:.0f} | {row['ms_per_step']:.1f} "
                     f"| {row['gflop_per_step']:.3f} | {row['gflops']:.1f} | {share:.0f}% "
                     f"| {warmup} |")
    lines += ["", "- A step: `training_step` (augmented views made on the device), backward, optimizer step and "
              "`on_after_step`, the batch already on the device.",
              "- GFLOP/step: `torch.utils.flop_counter.FlopCounterMode` over one step (matmuls and convolutions, "
              "forward and backward); element-wise work, augmentation and optimizer updates are not counted, so "
              "GFLOP/s is a lower bound of the work done.",
              "- Warm-up s: the untimed warm-up steps together; with `training.compile` they hold the compilation."]
    skipped = [row for row in result["methods"] if row["status"] != "ok"]
    if skipped:
        lines += ["", "## Skipped or failed", ""] + [
            f"- {row['method']}" + (f" ({row['variant']})" if row.get("variant", "preset") != "preset" else "")
            + f": {row['status']} — {row['note']}" for row in skipped]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    device = resolve_device(args.device)
    if args.methods.strip() == "all":
        names = [n for n in list_methods() if issubclass(get_method(n), DeepClusterer)]
    else:
        names = [n.strip() for n in args.methods.split(",") if n.strip()]
        for name in names:
            get_method(name)
    size = args.matmul_size or reference_matmul_size(device)
    formats = {"contiguous": [False], "channels_last": [True], "both": [False, True]}[args.memory_format]
    result = {
        "command": " ".join(["python benchmarks/throughput.py", shlex.join(argv)]).strip(), "machine": machine(device),
        "device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"), "preset": args.preset, "image_shape": list(args.image_shape),
        "warmup": args.warmup, "steps": args.steps, "n_samples": args.n_samples, "matmul_size": size,
        "matmul_gflops": matmul_gflops(device, size), "methods": [],
    }
    print(f"matmul {size}x{size} float32: {result['matmul_gflops']:.1f} GFLOP/s on {result['machine']}", flush=True)
    for name in names:
        if not issubclass(get_method(name), DeepClusterer):
            result["methods"].append({"method": name, "status": "skipped", "note": "not a deep method (no training step)"})
            continue
        try:
            get_method(name).preset_config(args.preset)
        except Exception as error:
            note = f"preset '{args.preset}' not available: {error}"
            result["methods"].append({"method": name, "status": "skipped", "note": note})
            print(f"{name}: skipped — {note}", flush=True)
            continue
        for variant in [None, *args.variant]:
            for channels_last in formats:
                try:
                    row = measure_method(name, args, device, channels_last, variant)
                except Exception as error:  # one broken method must not stop the others
                    note = f"{type(error).__name__}: {error}".replace("\n", " ")
                    row = {"method": name, "status": "failed", "variant": variant or "preset", "note": note}
                    traceback.print_exc()
                result["methods"].append(row)
                if row["status"] != "ok":
                    continue
                print(f"{name} ({row['variant']}, {row['memory_format']}): {row['images_per_second']:.0f} images/s, "
                      f"{row['ms_per_step']:.1f} ms/step, {row['gflops']:.1f} GFLOP/s "
                      f"({100 * row['gflops'] / result['matmul_gflops']:.0f}% of matmul)", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "throughput.md").write_text(format_markdown(result), encoding="utf-8")
    print(f"wrote {out / 'throughput.md'} and {out / 'throughput.json'}")
    return result


if __name__ == "__main__":
    main()
