"""The CSV and TensorBoard copies of a run's step and eval events read back as the JSONL log has them."""
import csv
import sys

import pytest
from toy_method import Toy

from deepclust.engine.config import ConfigError
from deepclust.engine.loggers import CsvLogger, build_loggers
from deepclust.engine.run_folder import read_log


@pytest.fixture
def logged_run(tmp_path, toy_data):
    images, labels = toy_data
    Toy(n_clusters=3, seed=1, out_dir=str(tmp_path), max_epochs=2,
        config={"training": {"loggers": ["jsonl", "csv", "tensorboard"]}}).fit(images, labels)
    events, _ = read_log(tmp_path / "log.jsonl")
    return tmp_path, events


def test_csv_rows_are_the_jsonl_records(logged_run):
    folder, events = logged_run
    for kind in ("step", "eval"):
        records = [event for event in events if event["event"] == kind]
        with open(folder / f"{kind}s.csv", newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
        assert reader.fieldnames == [key for key in records[0] if key != "event"]
        assert len(rows) == len(records) > 0
        for row, record in zip(rows, records):
            assert row == {key: str(value) for key, value in record.items() if key != "event"}


def test_tensorboard_scalars_have_the_jsonl_names_and_steps(logged_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder, events = logged_run
    accumulator = EventAccumulator(str(folder / "tensorboard"))
    accumulator.Reload()
    steps = [event for event in events if event["event"] == "step"]
    evals = [event for event in events if event["event"] == "eval"]
    assert set(accumulator.Tags()["scalars"]) == {
        "step/lr", "step/images_per_second", "step/loss", "step/cluster",
        *(f"eval/{key}" for key in evals[0] if key not in ("event", "time", "epoch", "step"))}
    loss = accumulator.Scalars("step/loss")
    assert [s.step for s in loss] == [e["step"] for e in steps] == list(range(1, 13))  # 6 steps x 2 epochs
    assert [s.value for s in loss] == pytest.approx([e["loss"] for e in steps])
    assert [s.step for s in accumulator.Scalars("eval/acc")] == [e["step"] for e in evals] == [6]


def test_csv_drops_the_rows_a_resumed_run_logs_again(tmp_path):
    logger = CsvLogger(tmp_path)
    logger.open(from_step=0)
    for step in (1, 2, 3):
        logger.write("step", {"event": "step", "time": 0.0, "step": step, "loss": 1.0})
    logger.write("step", {"event": "step", "time": 0.0, "step": 4, "loss": 1.0, "extra": 5})  # a new column
    resumed = CsvLogger(tmp_path)
    resumed.open(from_step=2)
    resumed.write("step", {"event": "step", "time": 0.0, "step": 3, "loss": 2.0})
    rows = list(csv.DictReader(open(tmp_path / "steps.csv", newline="")))
    assert [(row["step"], row["loss"], row["extra"]) for row in rows] == [("1", "1.0", ""), ("2", "1.0", ""),
                                                                          ("3", "2.0", "")]


def test_loggers_are_checked(tmp_path, monkeypatch):
    assert build_loggers(["jsonl"], tmp_path) == []
    with pytest.raises(ConfigError, match=r"unknown logger\(s\) \['wandb'\]; valid: jsonl, csv, tensorboard"):
        build_loggers(["jsonl", "wandb"], tmp_path)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    with pytest.raises(ConfigError, match=r"pip install 'deepclust\[tensorboard\]'"):
        build_loggers(["tensorboard"], tmp_path)
