"""Interrupted runs lose nothing and say so: SIGKILL mid-epoch then resume gives the uninterrupted
result and logs every step once; SIGINT/SIGTERM stop with a line and exit 128 + the signal; a
second Ctrl-C while the checkpoint is written leaves it whole and prints no traceback."""
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from support import cli_command

from deepclust.engine.checkpoint import load_checkpoint
from deepclust.engine.run_folder import read_log
from deepclust.reporting.report import read_run

TESTS = Path(__file__).resolve().parent.parent

SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
from toy_method import Toy, blobs
out, sleep, resume, checkpoint_minutes, loggers = sys.argv[1:6]
images, _ = blobs(n_per_class=64)
Toy(n_clusters=3, seed=3, out_dir=out, resume=resume == "1", max_epochs=5, verbose=False,
    config={{"training": {{"checkpoint_every_minutes": float(checkpoint_minutes), "eval_every": 2,
                          "loggers": ["jsonl", *filter(None, loggers.split(","))]}},
             "method": {{"step_sleep": float(sleep)}}}}).fit(images)
"""
STEPS = 60  # 12 steps per epoch, 5 epochs


def _launch(script: Path, out: Path, sleep: float, resume: bool = False, checkpoint_minutes: float = 0.0,
            loggers: str = "") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), str(out), str(sleep), "1" if resume else "0",
                             str(checkpoint_minutes), loggers], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


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
    assert 0 < checkpoint["global_step"] < STEPS  # a temporary file may be left: the next run removes it

    resumed = _launch(script, interrupted, 0.03, resume=True)  # same configuration as the interrupted run
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    expected = torch.load(reference / "model.pt", weights_only=False)["model"]
    actual = torch.load(interrupted / "model.pt", weights_only=False)["model"]
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert json.loads((interrupted / "metrics.json").read_text())["steps"] == STEPS
    assert not list((interrupted / "checkpoints").glob(".*.tmp"))


def test_sigkill_then_resume_logs_every_step_once(tmp_path, script):
    """Checkpoints at epoch ends only: the steps between the last one and the kill are logged twice in
    log.jsonl; its readers (read_log, the report), the CSV and TensorBoard keep one record of each."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    process = _launch(script, out, 0.03, checkpoint_minutes=60.0, loggers="csv,tensorboard")
    _wait_for_steps(process, out, 17)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert load_checkpoint(out / "checkpoints" / "last.pt")["global_step"] == 12
    resumed = _launch(script, out, 0.03, resume=True, checkpoint_minutes=60.0, loggers="csv,tensorboard")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()

    assert _steps_logged(out) >= STEPS + 5  # steps 13..17 (at least) logged by both processes
    events, bad_lines = read_log(out / "log.jsonl")
    assert [e["step"] for e in events if e["event"] == "step"] == list(range(1, STEPS + 1))
    assert [e["step"] for e in events if e["event"] == "resume"] == [12]
    assert [e["step"] for e in read_run(out).steps] == list(range(1, STEPS + 1))
    rows = (out / "steps.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[2]) for row in rows] == list(range(1, STEPS + 1))  # time, epoch, step, ...
    accumulator = EventAccumulator(str(out / "tensorboard"))
    accumulator.Reload()
    assert [scalar.step for scalar in accumulator.Scalars("step/loss")] == list(range(1, STEPS + 1))


def test_sigterm_stops_cleanly_with_checkpoint_and_metrics(tmp_path, script):
    out = tmp_path / "run"
    process = _launch(script, out, 0.03)
    _wait_for_steps(process, out, 5)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0  # the Python API returns normally; the CLI's exit code says why
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stop_reason"] == "stopped by SIGTERM" and metrics["steps"] < STEPS
    assert load_checkpoint(out / "checkpoints" / "last.pt")["global_step"] == metrics["steps"]


TOY_FIT = ["fit", "--method", "toy", "--dataset", "digits", "--subset", "400", "--device", "cpu", "--quiet",
           "--set", "training.epochs=50", "--set", "training.batch_size=16", "--set", "method.step_sleep=0.02"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_cli_stop_on_a_signal_exits_128_plus_the_signal_and_says_how_to_continue(tmp_path, signum):
    out = tmp_path / "run"
    process = subprocess.Popen(cli_command(*TOY_FIT, "--out", out), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    _wait_for_steps(process, out, 5)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr
    last = stdout.strip().splitlines()[-1]
    steps = json.loads((out / "metrics.json").read_text())["steps"]
    assert last.startswith(f"stopped by {signal.Signals(signum).name} after 0 of 50 epochs (step {steps});")
    assert last.endswith(f"continue with: deepclust fit {' '.join(TOY_FIT[1:])} --out {out} --resume")
    assert "Traceback" not in stderr


SLOW_CHECKPOINT_CLI = """
import pathlib, sys, time
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
import toy_method
import deepclust.engine.trainer as trainer
write = trainer.save_atomic

def slow_save_atomic(obj, path):  # announces each write in <run>/saving, then takes half a second
    marker = pathlib.Path(path).parent.parent / "saving"
    count = int(marker.read_text()) + 1 if marker.exists() else 1
    pathlib.Path(f"{{marker}}.new").write_text(str(count))
    pathlib.Path(f"{{marker}}.new").replace(marker)  # the test never reads half a number
    time.sleep(0.5)
    write(obj, path)

trainer.save_atomic = slow_save_atomic
from deepclust.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_second_ctrl_c_while_the_checkpoint_is_written_keeps_it_whole(tmp_path):
    out = tmp_path / "run"
    script = tmp_path / "slow_cli.py"
    script.write_text(SLOW_CHECKPOINT_CLI.format(tests=str(TESTS)))
    process = subprocess.Popen([sys.executable, str(script), *TOY_FIT, "--out", str(out),
                                "--set", "training.checkpoint_every_minutes=0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_steps(process, out, 3)
    writes = lambda: int((out / "saving").read_text())  # noqa: E731
    before = writes()
    process.send_signal(signal.SIGINT)
    deadline = time.time() + 60
    while writes() == before:  # the stop's checkpoint has begun
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.01)
    time.sleep(0.1)
    process.send_signal(signal.SIGINT)  # in the middle of writing it
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    last = stdout.strip().splitlines()[-1]
    match = re.match(r"interrupted: stopped at once, without evaluating; the last checkpoint, at epoch 0 "
                     r"\(step (\d+)\), is kept; continue with: deepclust fit .* --resume$", last)
    assert match, last
    assert load_checkpoint(out / "checkpoints" / "last.pt", method="toy")["global_step"] == int(match.group(1))
    assert not (out / "model.pt").exists()  # stopped before the final evaluation
