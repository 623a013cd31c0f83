"""torch.distributed training: 2 CPU processes (gloo) against one process on the same global batch.

For every method one step on a global batch of 2×B images split over two processes must give
the loss and the parameter update of one process on the whole batch. Augmentations draw from
each process's own random stream, so these runs use the ``none`` pipeline; the randomness the
processes share (ConCURL's noise rows, HaDis's diffusion noise) stays on.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn

from deepclust.engine import distributed
from distributed_worker import fit_worker, launch, logged_steps, make_estimator, training_data
from support import tiny_config

HALF_BATCH = 8
#: what the one-step check adds to each method's tiny configuration (``support.TINY``); DCHL's
#: distributed checks keep the preset's head sizes and only shrink the backbone and the groups
ONE_STEP = {
    "htcn": {},
    "dchl": {"method": {"n_groups": 6}},
    # the predictor's 10× learning rate would turn float32 rounding of its gradient into > 1e-5 of update
    "hadis": {"method": {"warmup_epochs": 0, "latent_std": 0.05, "predictor_lr_scale": 1.0}},
    "concurl": {"method": {"view2_jitter": None}},
    "hardreg": {},
    "ae-umap-gmm": {"inference": {"n_neighbors": 5}},  # UMAP + GMM of the labels on 16 images
}


def one_step_config(method: str, batch_size: int = 2 * HALF_BATCH, epochs: int = 1) -> dict:
    """The method's CPU preset, tiny, with SGD (the update shows the gradient) and no augmentation."""
    config = tiny_config(method, {
        "optimizer": {"name": "sgd", "lr": 0.5},
        "schedule": {"name": "constant", "warmup_epochs": 0},
        "training": {"epochs": epochs, "batch_size": batch_size, "log_every": 1, "eval_every": 0,
                     "max_minutes": None},
    }, ONE_STEP[method], heads=method != "dchl")
    config["augmentation"] = {"name": "none", "image_size": None, "normalize": False}
    return config


def write_data(path, n: int, seed: int = 0, **parts) -> str:
    rng = np.random.default_rng(seed)
    np.savez(path, images=rng.integers(0, 256, size=(n, 1, 28, 28), dtype=np.uint8),
             labels=rng.integers(0, 3, size=n), **parts)
    return str(path)


@pytest.mark.parametrize("method", sorted(ONE_STEP))
def test_two_processes_equal_one_process_on_the_global_batch(method, tmp_path):
    config = one_step_config(method)
    data_file = write_data(tmp_path / "data.npz", 2 * HALF_BATCH)
    data = np.load(data_file)
    single = make_estimator(method, config, n_clusters=3, device="cpu", seed=0, out_dir=str(tmp_path / "one"))
    single.fit(data["images"], data["labels"])
    launch(2, fit_worker, method, config, data_file, str(tmp_path / "two"), {"n_clusters": 3})
    # UMAP is not continuous in its input: codes equal to 1e-6 may be laid out, and so labelled, otherwise
    assert_same_run(tmp_path / "one", tmp_path / "two", single, same_labels=method != "ae-umap-gmm")


def assert_same_run(one_process, two_processes, single, n_steps=1, same_labels=True):
    """The logged steps and the final models of a one-process run (``single``, its folder
    ``one_process``) and a two-process run (folder ``two_processes``) are equal, and so are the
    final labels unless not ``same_labels``."""
    one_steps, two_steps = logged_steps(one_process), logged_steps(two_processes)
    assert len(one_steps) == len(two_steps) == n_steps
    for one_step, two_step in zip(one_steps, two_steps):
        assert set(one_step) == set(two_step)
        for term, value in one_step.items():
            if term not in ("event", "time", "images_per_second"):
                assert two_step[term] == pytest.approx(value, rel=1e-5, abs=1e-5), term
    ranks = [torch.load(two_processes / f"rank{r}.pt", weights_only=False) for r in range(2)]
    for name, value in single.model_.state_dict().items():
        for rank in ranks:
            other = rank["state"][name]
            if value.is_floating_point():
                torch.testing.assert_close(other, value, rtol=0, atol=1e-5, msg=lambda m: f"{name}: {m}")
            else:
                assert torch.equal(other, value), name
        # the processes end identical: online, EMA target, memory bank, centroids
        assert torch.equal(ranks[0]["state"][name], ranks[1]["state"][name]), name
    assert np.array_equal(ranks[0]["labels"], ranks[1]["labels"])
    if same_labels:
        assert np.array_equal(ranks[0]["labels"], single.labels_)


def test_two_pass_epochs_shard_each_pass_over_the_processes(tmp_path):
    """DCHL's STL-10 epoch under torch.distributed: the unlabelled pass (instance loss alone, the other
    heads unused) and the labelled pass (every term) each give the one-process loss and update."""
    config = one_step_config("dchl")
    config["method"]["unlabeled_pass"] = "instance"
    data_file = write_data(tmp_path / "data.npz", 4 * HALF_BATCH, unlabeled=np.arange(2 * HALF_BATCH, 4 * HALF_BATCH))
    single = make_estimator("dchl", config, n_clusters=3, device="cpu", seed=0, out_dir=str(tmp_path / "one"))
    single.fit(training_data(data_file))
    launch(2, fit_worker, "dchl", config, data_file, str(tmp_path / "two"), {"n_clusters": 3})
    assert_same_run(tmp_path / "one", tmp_path / "two", single, n_steps=2)
    first, second = logged_steps(tmp_path / "one")
    assert "cluster" not in first and "cluster" in second


def test_resumed_distributed_run_continues_from_the_checkpoint(tmp_path):
    """A 2-process run stopped after its first step and resumed ends bit-identical to an
    uninterrupted 2-process run (each process restores its own random stream; augmentations on)."""
    config = tiny_config("dchl", {
        "method": {"n_groups": 6},
        "training": {"epochs": 2, "batch_size": 16, "log_every": 1, "checkpoint_every_minutes": 0.0,
                     "max_minutes": None}}, heads=False)
    data_file = write_data(tmp_path / "data.npz", 32)
    launch(2, fit_worker, "dchl", config, data_file, str(tmp_path / "straight"), {"n_clusters": 3})
    launch(2, fit_worker, "dchl", config, data_file, str(tmp_path / "split"), {"n_clusters": 3, "max_minutes": 1e-9})
    first = torch.load(tmp_path / "split" / "rank0.pt", weights_only=False)
    assert first["steps"] == 1
    launch(2, fit_worker, "dchl", config, data_file, str(tmp_path / "split"), {"n_clusters": 3, "resume": True})
    straight, resumed = (torch.load(tmp_path / run / "rank1.pt", weights_only=False) for run in ("straight", "split"))
    assert resumed["steps"] == straight["steps"] == 4
    for name, value in straight["state"].items():
        assert torch.equal(resumed["state"][name], value), name
    checkpoint = torch.load(tmp_path / "split" / "checkpoints" / "last.pt", weights_only=False)
    assert len(checkpoint["rng_per_rank"]) == 2
    assert not torch.equal(checkpoint["rng_per_rank"][0]["torch"], checkpoint["rng_per_rank"][1]["torch"])


def _primitives_worker(rank, world_size, port, out_file):
    from distributed_worker import join_process_group

    join_process_group(rank, world_size, port)
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    full = torch.randn(7, 3, 5, 5, dtype=torch.float64)
    shares = torch.tensor_split(torch.arange(7), world_size)
    local = full[shares[rank]].clone().requires_grad_(True)
    weights = torch.randn(7 * 3 * 5 * 5, dtype=torch.float64)
    # gather: uneven shares (4 and 3 rows), gradient of a global loss reaches each process's rows
    gathered = distributed.gather(local)
    (gathered.flatten() * weights).pow(2).sum().backward()
    # GlobalBatchNorm over the 7 rows of both processes
    torch.manual_seed(1)
    norm = distributed.convert_batch_norm(nn.Sequential(nn.BatchNorm2d(3).double()))[0]
    x = full[shares[rank]].clone().requires_grad_(True)
    (distributed.gather(norm(x)).flatten() * weights).sum().backward()
    torch.save({"gathered": gathered.detach(), "grad": local.grad, "norm_grad": x.grad,
                "running": (norm.running_mean, norm.running_var), "type": type(norm).__name__},
               f"{out_file}.{rank}")
    dist.destroy_process_group()


def test_gather_and_global_batch_norm_match_one_process(tmp_path):
    launch(2, _primitives_worker, str(tmp_path / "out"))
    results = [torch.load(f"{tmp_path / 'out'}.{r}", weights_only=False) for r in range(2)]
    torch.manual_seed(0)
    full = torch.randn(7, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(7 * 3 * 5 * 5, dtype=torch.float64)
    (full.flatten() * weights).pow(2).sum().backward()
    torch.manual_seed(1)
    norm = nn.BatchNorm2d(3).double()
    x = full.detach().clone().requires_grad_(True)
    (norm(x).flatten() * weights).sum().backward()
    rows = [slice(0, 4), slice(4, 7)]
    for rank, result in enumerate(results):
        assert result["type"] == "GlobalBatchNorm"
        torch.testing.assert_close(result["gathered"], full.detach())
        # each process computes the same global loss, so its rows receive 2× the gradient (DDP averages)
        torch.testing.assert_close(result["grad"], 2 * full.grad[rows[rank]])
        torch.testing.assert_close(result["norm_grad"], 2 * x.grad[rows[rank]])
        torch.testing.assert_close(result["running"][0], norm.running_mean)
        torch.testing.assert_close(result["running"][1], norm.running_var)


def test_helpers_are_identities_in_one_process():
    tensor = torch.arange(6.0)
    assert distributed.gather(tensor) is tensor
    assert distributed.all_reduce_sum(tensor) is tensor
    assert torch.equal(distributed.shard(torch.arange(5)), torch.arange(5))
    assert distributed.shard_range(5) == (0, 5) and distributed.world_size() == 1
    assert distributed.is_main_process() and distributed.gather_objects({"a": 1}) == [{"a": 1}]
    norm = distributed.convert_batch_norm(nn.Sequential(nn.BatchNorm1d(4)))[0]
    reference = nn.BatchNorm1d(4)
    x = torch.randn(10, 4)
    torch.testing.assert_close(norm(x), reference(x))
    torch.testing.assert_close(norm.running_var, reference.running_var)


def test_torchrun_fit_from_the_command_line(tmp_path):
    """``torchrun -m deepclust fit`` on 2 CPU processes: one run folder written by rank 0, one report."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "deepclust", "fit", "--method", "dchl", "--dataset", "digits", "--subset", "96",
               "--device", "cpu", "--preset", "cpu-fashion-mnist", "--epochs", "1", "--batch-size", "32",
               "--set", "backbone.width=0.25", "--set", "method.n_groups=8", "--set", "training.log_every=1", "--quiet", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("fitting dchl") == 1 and "2 processes" in result.stdout
    assert result.stdout.count("dchl on digits: ACC") == 1
    steps = logged_steps(out)
    assert [event["step"] for event in steps] == [1, 2, 3]
    assert {"model.pt", "metrics.json", "config.yaml", "log.jsonl"} <= {path.name for path in out.iterdir()}


def test_torchrun_with_one_process_trains_through_the_process_group(tmp_path):
    """``torchrun --nproc_per_node 1`` forms a group of one (gloo here, NCCL on CUDA) and trains through
    the distributed path; its labels equal those of the same run without torchrun."""
    fit = ["-m", "deepclust", "fit", "--method", "hardreg", "--dataset", "digits", "--subset", "200", "--device", "cpu",
           "--set", "backbone.name=mlp", "--epochs", "2", "--batch-size", "50", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launched = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
                               *fit, "--out", str(tmp_path / "torchrun")], capture_output=True, text=True, timeout=300, env=env)
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert "1 processes" in launched.stdout
    alone = subprocess.run([sys.executable, *fit, "--out", str(tmp_path / "alone")], capture_output=True, text=True,
                           timeout=300, env=env)
    assert alone.returncode == 0, alone.stderr[-3000:]
    labels = [torch.load(tmp_path / run / "model.pt", map_location="cpu", weights_only=False)["labels"]
              for run in ("torchrun", "alone")]
    np.testing.assert_array_equal(*labels)


@pytest.mark.parametrize("argv, message", [
    (["bench", "--dataset", "digits", "--budget-minutes", "1"], "'deepclust bench' runs in one process"),
    (["fit", "--method", "kmeans", "--dataset", "digits"], "method 'kmeans' is not trained by gradient descent"),
])
def test_single_process_commands_refuse_torchrun(argv, message, monkeypatch, capsys):
    from deepclust.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(argv) == 2
    assert message in capsys.readouterr().err
