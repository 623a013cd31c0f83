"""The run folder's pieces: the JSONL log, signal-driven stop requests, the disk-space check."""
import json
import os
import shutil
import signal
from collections import namedtuple

import pytest
import torch

from deepclust.engine.run_folder import RunLog, StopRequest, check_free_space


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
