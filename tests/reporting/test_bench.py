"""``deepclust bench`` on digits with tiny settings: the three result files and the run folders."""
import csv
import json

import pytest
from toy_method import ToyModel

from deepclust.cli import main
from deepclust.methods import DeepClusterer
from deepclust.methods import registry


class NoPreset(DeepClusterer):
    """A method without a preset file (as a method under construction)."""

    method_name = "nopreset"
    model_class = ToyModel


@pytest.fixture
def nopreset(monkeypatch):
    monkeypatch.setitem(registry._METHODS, "nopreset", NoPreset)


def test_bench_writes_table_and_keeps_runs(tmp_path, nopreset, capsys):
    out, runs = tmp_path / "results", tmp_path / "runs"
    argv = ["bench", "--dataset", "digits", "--methods", "kmeans,toy,nopreset", "--budget-minutes", "0.05",
            "--seeds", "0,1", "--subset", "240", "--baseline-image-size", "16", "--kmeans-n-init", "1",
            "--out", str(out), "--runs-dir", str(runs), "--device", "cpu"]
    assert main(argv) == 0
    md, table, data = (out / "digits.md").read_text(), out / "digits.csv", json.loads((out / "digits.json").read_text())
    assert md.startswith("# Benchmark on digits")
    assert "Made by: `deepclust bench --dataset digits --methods kmeans,toy,nopreset --budget-minutes 0.05 " \
           "--seeds 0,1 --preset" not in md  # no --preset given: none in the command
    assert "`deepclust bench --dataset digits --methods kmeans,toy,nopreset --budget-minutes 0.05 --seeds 0,1 " \
           "--subset 240" in md
    rows = {row["name"]: row for row in csv.DictReader(table.open())}
    assert set(rows) == {"toy", "nopreset", "k-means (pixels)", "k-means (random small_cnn)"}
    for name in ("toy", "k-means (pixels)", "k-means (random small_cnn)"):
        assert rows[name]["status"] == "ok" and rows[name]["n_seeds"] == "2", rows[name]
        assert 0 < float(rows[name]["acc_mean"]) <= 1 and rows[name]["acc_std"] != ""
        assert float(rows[name]["images_per_second_mean"]) > 0 and rows[name]["peak_memory_mb_mean"] != ""
    assert rows["toy"]["kind"] == "method" and rows["k-means (pixels)"]["kind"] == "baseline"
    assert rows["nopreset"]["status"] == "skipped" and "cpu-fashion-mnist" in rows["nopreset"]["note"]
    line = next(line for line in md.splitlines() if line.startswith("| toy "))
    assert "±" in line and "| cpu |" in line
    assert "| k-means (random small_cnn) *(baseline)* |" in md and "nopreset: skipped" in md
    assert data["n_samples"] == 240 and data["seeds"] == [0, 1] and len(data["runs"]) == 2 * 4
    for folder in ("toy-seed0", "toy-seed1", "kmeans-pixels-seed1", "kmeans-small_cnn-seed0"):
        assert (runs / folder / "model.pt").is_file() and (runs / folder / "metrics.json").is_file()
        assert json.loads((runs / folder / "data.json").read_text())["subset"] == 240
    assert (runs / "toy-seed1" / "log.jsonl").is_file()
    # the report of a benchmark run finds the benchmark's subset through data.json
    assert main(["report", str(runs / "toy-seed1"), "--max-points", "60", "--device", "cpu"]) == 0
    page = (runs / "toy-seed1" / "report" / "report.html").read_text()
    assert "240 images" in page and "Warning" not in page


def test_bench_rejects_bad_arguments(tmp_path, capsys):
    base = ["bench", "--dataset", "digits", "--budget-minutes", "1", "--out", str(tmp_path)]
    assert main(base + ["--methods", "nope"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert main(base + ["--seeds", "a,b"]) == 2
    assert "--seeds expects comma-separated integers" in capsys.readouterr().err
    assert main(["bench", "--dataset", "digits", "--budget-minutes", "0", "--out", str(tmp_path)]) == 2
    assert "--budget-minutes must be a positive" in capsys.readouterr().err


def test_bench_with_class_imbalance_keeps_the_same_data_for_the_report(tmp_path, capsys):
    out, runs = tmp_path / "results", tmp_path / "runs"
    assert main(["bench", "--dataset", "digits", "--methods", "kmeans", "--baselines", "pixels", "--imbalance", "3",
                 "--budget-minutes", "1", "--kmeans-n-init", "1", "--out", str(out), "--runs-dir", str(runs),
                 "--device", "cpu"]) == 0
    data = json.loads((out / "digits.json").read_text())
    assert data["imbalance"] == 3 and 500 < data["n_samples"] < 1797
    assert "--imbalance 3" in data["command"] and "imbalance protocol 3" in (out / "digits.md").read_text()
    run = runs / "kmeans-pixels-seed0"
    assert main(["report", str(run), "--max-points", "60", "--samples-per-cluster", "3", "--device", "cpu"]) == 0
    page = (run / "report" / "report.html").read_text()
    assert f"{data['n_samples']} images" in page and "Warning" not in page
