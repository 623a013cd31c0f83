"""Interrupted runs lose nothing: SIGKILL mid-epoch then --resume gives the uninterrupted result."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from deepclust.engine.checkpoint import load_checkpoint

TESTS = Path(__file__).resolve().parent.parent

SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
from toy_method import Toy, blobs
images, _ = blobs(n_per_class=64)
Toy(n_clusters=3, seed=3, out_dir=sys.argv[1], resume=True, max_epochs=5, verbose=False,
    config={{"training": {{"checkpoint_every_minutes": 0.0, "eval_every": 2}},
             "method": {{"step_sleep": float(sys.argv[2])}}}}).fit(images)
"""


def _launch(script: Path, out: Path, sleep: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), str(out), str(sleep)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _steps_logged(out: Path) -> int:
    log = out / "log.jsonl"
    if not log.exists():
        return 0
    return sum(1 for line in log.read_text().splitlines() if '"event": "step"' in line)


def _wait_for_steps(process, out: Path, steps: int, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while _steps_logged(out) < steps:
        assert process.poll() is None, process.stderr.read().decode()
        assert time.time() < deadline, "the training subprocess made no progress"
        time.sleep(0.05)


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(SCRIPT.format(tests=str(TESTS)))
    return path


def test_sigkill_then_resume_is_bit_exact(tmp_path, script):
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    assert _launch(script, reference, 0.0).wait(timeout=300) == 0

    process = _launch(script, interrupted, 0.03)
    _wait_for_steps(process, interrupted, 17)  # 12 steps per epoch: killed inside epoch 2
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    checkpoint = load_checkpoint(interrupted / "checkpoints" / "last.pt", method="toy")  # complete, loadable
    assert 0 < checkpoint["global_step"] < 60  # a temporary file may be left: the next run removes it

    resumed = _launch(script, interrupted, 0.03)  # same configuration as the interrupted run
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    expected = torch.load(reference / "model.pt", weights_only=False)["model"]
    actual = torch.load(interrupted / "model.pt", weights_only=False)["model"]
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert json.loads((interrupted / "metrics.json").read_text())["steps"] == 60
    assert not list((interrupted / "checkpoints").glob(".*.tmp"))


def test_sigterm_stops_cleanly_with_checkpoint_and_metrics(tmp_path, script):
    out = tmp_path / "run"
    process = _launch(script, out, 0.03)
    _wait_for_steps(process, out, 5)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stop_reason"] == "stopped by SIGTERM" and metrics["steps"] < 60
    assert load_checkpoint(out / "checkpoints" / "last.pt")["global_step"] == metrics["steps"]
