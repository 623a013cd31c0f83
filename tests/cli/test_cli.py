import csv
import json

import pytest

from deepclust.cli import main


def test_fit_evaluate_predict_kmeans_on_digits(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", "--method", "kmeans", "--dataset", "digits", "--out", str(run), "--device", "cpu",
                 "--param", "n_init=2"]) == 0
    out = capsys.readouterr().out
    assert "ACC" in out and "NMI" in out and "ARI" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_clusters_used"] == 10 and metrics["acc"] > 0.5 and metrics["seconds"] > 0
    assert main(["evaluate", "--run", str(run), "--dataset", "digits", "--device", "cpu"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["acc"] == pytest.approx(metrics["acc"])
    labels_file = tmp_path / "labels.csv"
    assert main(["predict", "--run", str(run), "--dataset", "digits", "--output", str(labels_file),
                 "--device", "cpu"]) == 0
    rows = list(csv.reader(labels_file.open()))
    assert rows[0] == ["index", "label"] and len(rows) == 1798


def test_deep_method_fit_with_overrides_and_resume(tmp_path, capsys):
    run = tmp_path / "toy"
    args = ["fit", "--method", "toy", "--dataset", "digits", "--subset", "200", "--out", str(run),
            "--device", "cpu", "--quiet", "--set", "training.epochs=2", "--set", "training.batch_size=32"]
    assert main(args) == 0
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2
    assert main(args + ["--resume"]) == 0  # already finished: resumes and ends at once
    assert json.loads((run / "metrics.json").read_text())["steps"] == 2 * (200 // 32)


def test_listing_commands(capsys):
    assert main(["methods"]) == 0
    assert "kmeans" in capsys.readouterr().out
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "cifar10" in out


@pytest.mark.parametrize("argv, message", [
    (["fit", "--method", "nope", "--dataset", "digits"], "unknown method 'nope'"),
    (["fit", "--method", "kmeans", "--dataset", "nope"], "unknown dataset"),
    (["fit", "--method", "kmeans", "--dataset", "cifar10", "--data-root", "/nonexistent"], "cifar"),
    (["fit", "--method", "kmeans", "--dataset", "digits", "--epochs", "3"], "does not take --max-epochs"),
    (["fit", "--method", "kmeans", "--dataset", "digits", "--n-clusters", "1"], "at least 2"),
    (["fit", "--method", "kmeans", "--dataset", "digits", "--param", "features=small_cnn"], "small_cnn"),
    (["fit", "--method", "toy", "--dataset", "digits", "--set", "training.epochz=1"], "training.epochz"),
    (["evaluate", "--run", "/nonexistent"], "no trained model"),
    (["fit", "--method", "hardreg", "--dataset", "digits", "--preset", "nope"],
     "unknown preset 'nope' for method 'hardreg'; valid presets: cpu-fashion-mnist"),
])
def test_errors_are_one_clear_line(argv, message, capsys, tmp_path):
    if argv[0] == "fit":
        argv = argv + ["--out", str(tmp_path / "r"), "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("deepclust ") and message.lower() in err.lower()
    assert "Traceback" not in err


def test_data_options_reach_the_loader(tmp_path, capsys):
    assert main(["fit", "--method", "kmeans", "--dataset", "digits", "--data-option", "bogus=1",
                 "--out", str(tmp_path / "r"), "--device", "cpu"]) == 2
    assert "unexpected option(s) ['bogus'] for dataset 'digits'" in capsys.readouterr().err
