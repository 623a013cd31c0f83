"""``deepclust report`` on tiny runs: the HTML page and non-empty PNGs it references."""
import json
import re

import pytest

from deepclust.cli import main

DEEP_FIGURES = ["training_curves.png", "eval_curves.png", "confusion_matrix.png", "embedding.png",
                "cluster_sizes.png", "cluster_samples.png"]


def check_page(folder, figures):
    page = folder / "report.html"
    assert page.is_file()
    text = page.read_text()
    referenced = set(re.findall(r"<img src='([^']+)'", text))
    assert referenced == set(figures)
    for name in figures:
        assert (folder / name).stat().st_size > 1024, name
    return text


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("toy") / "run"
    assert main(["fit", "--method", "toy", "--dataset", "digits", "--subset", "300", "--seed", "3", "--out", str(run),
                 "--device", "cpu", "--quiet", "--set", "training.epochs=3", "--set", "training.batch_size=32"]) == 0
    return run


def test_report_of_a_deep_run(toy_run, capsys):
    assert main(["report", str(toy_run), "--max-points", "150", "--device", "cpu"]) == 0
    text = check_page(toy_run / "report", DEEP_FIGURES)
    assert "toy on digits" in text and "Configuration" in text
    # the run used 300 of the 1797 digits drawn with its seed: the report finds the same images
    assert "300 of the 1797" in text and "--subset 300 --seed 3" in text
    assert "Warning" not in text
    shown_acc = float(re.search(r"<th>ACC</th><td>([0-9.]+)</td>", text).group(1))
    assert shown_acc == pytest.approx(json.loads((toy_run / "metrics.json").read_text())["acc"], abs=1e-4)


def test_report_of_kmeans_says_there_are_no_curves(tmp_path, capsys):
    run = tmp_path / "km"
    assert main(["fit", "--method", "kmeans", "--dataset", "digits", "--out", str(run), "--device", "cpu",
                 "--param", "n_init=1"]) == 0
    out = tmp_path / "page"
    assert main(["report", str(run), "--out", str(out), "--max-points", "150", "--samples-per-cluster", "4",
                 "--embedding", "tsne", "--device", "cpu"]) == 0
    text = check_page(out, ["confusion_matrix.png", "embedding.png", "cluster_sizes.png", "cluster_samples.png"])
    assert "No training curves" in text and "k-means" in text
    assert not (out / "training_curves.png").exists()


def test_report_on_other_data_predicts_and_warns_nothing(toy_run, tmp_path, capsys):
    out = tmp_path / "other"
    assert main(["report", str(toy_run), "--out", str(out), "--dataset", "digits", "--subset", "100",
                 "--subset-seed", "7", "--max-points", "60", "--device", "cpu"]) == 0
    text = check_page(out, DEEP_FIGURES)
    assert "100 images" in text and "labels predicted by the model" in text


def test_report_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "model.pt" in err and "Traceback" not in err
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
