"""The run folder's pieces: which files make a run, claiming a folder, the JSONL log and its reader,
signal-driven stop requests, the disk-space check."""
import json
import os
import shutil
import signal
from collections import namedtuple

import pytest
import torch

from deepclust.engine.run_folder import (
    RunFolderError, RunLog, StopRequest, check_free_space, claim_run_folder, clear_run, read_log, run_markers,
)


def test_run_log_appends_json_lines(tmp_path):
    log = RunLog(tmp_path / "log.jsonl")
    log.write("start", epochs=2)
    log.write("stop", reason="completed")
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [(r["event"], r.get("epochs"), r.get("reason")) for r in records] == [("start", 2, None),
                                                                                  ("stop", None, "completed")]
    RunLog(None).write("start")  # no run folder: nothing written, no error


def test_stop_request_records_the_signal_and_restores_the_handler():
    before = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        assert stop.reason is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.reason == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_free_space_check(tmp_path, monkeypatch):
    model = torch.nn.Linear(1000, 1000)  # 4 MB of weights: about 26 MB needed
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 0, 10**9))
    check_free_space(tmp_path, model)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 0, 10 * 2**20))
    with pytest.raises(OSError, match=r"10.0 MiB free, checkpoints need about 2[0-9].[0-9] MiB"):
        check_free_space(tmp_path, model)


def _fake_run(folder):
    for name in ("config.yaml", "data.json", "log.jsonl", "metrics.json", "model.pt", "checkpoints/last.pt",
                 "checkpoints/.last.pt.abc.tmp", "steps.csv", "tensorboard/events.out.tfevents.1.host"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("x")


def test_a_folder_holding_a_run_is_refused_unless_resumed_or_overwritten(tmp_path, capsys):
    claim_run_folder(tmp_path / "new", resume=False, overwrite=False)  # nothing there: fine
    (tmp_path / "data.json").write_text("{}")  # written by a benchmark before its run: not a run
    claim_run_folder(tmp_path, resume=False, overwrite=False)
    _fake_run(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "checkpoints" / "keep.txt").write_text("mine too")
    with pytest.raises(RunFolderError, match=rf"run folder {tmp_path} already holds a run \(config.yaml, "
                                             r"log.jsonl, metrics.json, model.pt, checkpoints/last.pt\); continue "
                                             r"it with --resume \(resume=True\), or start afresh with --overwrite"):
        claim_run_folder(tmp_path, resume=False, overwrite=False)
    with pytest.raises(RunFolderError, match=r"start afresh with --overwrite") as refused:
        claim_run_folder(tmp_path, resume=None, overwrite=False)  # an estimator that cannot resume
    assert "--resume" not in str(refused.value)
    with pytest.raises(RunFolderError, match="--resume and --overwrite exclude each other"):
        claim_run_folder(tmp_path, resume=True, overwrite=True)
    claim_run_folder(tmp_path, resume=True, overwrite=False)  # continues: nothing deleted
    assert len(run_markers(tmp_path)) == 5
    claim_run_folder(tmp_path, resume=False, overwrite=True)
    left = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file())
    assert left == ["checkpoints/keep.txt", "notes.txt"]  # only what a run writes was deleted
    assert not (tmp_path / "tensorboard").exists() and run_markers(tmp_path) == []


def test_resume_needs_a_run_and_says_when_it_starts_afresh(tmp_path, capsys):
    with pytest.raises(RunFolderError, match=rf"nothing to resume in {tmp_path}: it holds no run"):
        claim_run_folder(tmp_path, resume=True, overwrite=False)
    (tmp_path / "config.yaml").write_text("x")  # killed before its first checkpoint
    claim_run_folder(tmp_path, resume=True, overwrite=False)
    assert capsys.readouterr().err == (f"resume: {tmp_path} holds no checkpoints/last.pt (the run stopped before "
                                       "its first checkpoint); training starts afresh\n")


def test_clear_run_returns_what_it_deleted(tmp_path):
    _fake_run(tmp_path)
    assert len(clear_run(tmp_path)) == 9 and list(tmp_path.iterdir()) == []


def test_read_log_keeps_the_last_record_of_each_step(tmp_path):
    log = RunLog(tmp_path / "log.jsonl")
    log.write("start")
    for step in (1, 2, 3, 4):
        log.write("step", step=step, loss=1.0)
    log.write("eval", epoch=1, step=4, acc=0.5)
    for step in (5, 6):  # killed after step 6; the checkpoint was at step 4
        log.write("step", step=step, loss=1.0)
    log.write("resume", epoch=1, step=4)
    log.write("start")
    for step in (5, 6, 7):
        log.write("step", step=step, loss=2.0)
    with open(tmp_path / "log.jsonl", "a") as handle:
        handle.write("{not json\n")
    events, bad_lines = read_log(tmp_path / "log.jsonl")
    steps = [(e["step"], e["loss"]) for e in events if e["event"] == "step"]
    assert steps == [(1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0), (5, 2.0), (6, 2.0), (7, 2.0)]
    assert [e["step"] for e in events if e["event"] == "eval"] == [4] and bad_lines == 1
    log.write("start")  # a fresh start in the same folder (resume without a checkpoint) drops every step
    log.write("step", step=1, loss=3.0)
    events, _ = read_log(tmp_path / "log.jsonl")
    assert [(e["step"], e["loss"]) for e in events if e["event"] in ("step", "eval")] == [(1, 3.0)]


class _Recorder:
    def __init__(self):
        self.calls = []

    def open(self, from_step):
        self.calls.append(("open", from_step))

    def write(self, event, record):
        self.calls.append((event, record["step"]))

    def close(self):
        self.calls.append(("close",))


def test_run_log_hands_every_record_to_its_loggers(tmp_path):
    recorder = _Recorder()
    log = RunLog(tmp_path / "log.jsonl", [recorder])
    log.open(from_step=3)
    log.write("step", step=4, loss=1.0)
    log.close()
    assert recorder.calls == [("open", 3), ("step", 4), ("close",)]


def test_a_second_ctrl_c_waits_for_the_deferred_block():
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.reason == "SIGINT" and stop.signum == signal.SIGINT
        finished = []
        with pytest.raises(KeyboardInterrupt):
            with stop.deferring_interrupts():
                os.kill(os.getpid(), signal.SIGINT)  # recorded, not raised here
                finished.append(True)
        assert finished == [True]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # outside it: at once
