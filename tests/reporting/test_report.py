"""``deepclust report`` on tiny runs: the HTML page and non-empty PNGs it references."""
import json
import re
import shutil

import numpy as np
import pytest
from toy_method import blobs

from deepclust.cli import main
from deepclust.data import load_dataset
from deepclust.methods import get_method
from deepclust.reporting.report import ReportOptions, read_run, resolve_dataset

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


def naive_subset(pool, n, seed):
    return pool.subset(sorted(np.random.default_rng(seed).permutation(len(pool))[:n].tolist()))


def test_fit_records_its_data_and_the_report_uses_the_same_images(tmp_path, capsys):
    run = tmp_path / "km"
    assert main(["fit", "--method", "kmeans", "--dataset", "digits", "--imbalance", "2", "--subset", "200",
                 "--seed", "1", "--out", str(run), "--device", "cpu", "--param", "n_init=1"]) == 0
    recorded = json.loads((run / "data.json").read_text())
    assert recorded == {"kind": "registry", "dataset": "digits", "split": "all", "data_root": None, "options": {},
                        "classes": None,
                        "imbalance": 2, "imbalance_seed": 1, "subset": 200, "subset_seed": 1,
                        "subset_of": len(load_dataset("digits", imbalance=2, seed=1))}
    dataset, notes, own = resolve_dataset(read_run(run), ReportOptions(), run_seed=1)
    expected = naive_subset(load_dataset("digits", imbalance=2, seed=1), 200, 1)
    np.testing.assert_array_equal(dataset.images, expected.images)
    np.testing.assert_array_equal(dataset.labels, expected.labels)
    assert own and "200 of the" in notes[0] and "data.json" in notes[0]
    assert main(["report", str(run), "--max-points", "60", "--samples-per-cluster", "3", "--embedding", "tsne",
                 "--device", "cpu"]) == 0
    text = (run / "report" / "report.html").read_text()
    assert "200 images" in text and "labels stored in the run" in text and "Warning" not in text


def test_the_toy_run_records_its_subset(toy_run):
    assert json.loads((toy_run / "data.json").read_text())["subset"] == 300
    dataset, _, _ = resolve_dataset(read_run(toy_run), ReportOptions(), run_seed=3)
    np.testing.assert_array_equal(dataset.images, naive_subset(load_dataset("digits"), 300, 3).images)


def test_report_of_a_run_folder_without_data_json_guesses_the_subset(toy_run, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(toy_run, old, ignore=shutil.ignore_patterns("report", "data.json"))
    assert main(["report", str(old), "--max-points", "60", "--device", "cpu"]) == 0
    text = check_page(old / "report", DEEP_FIGURES)
    assert "300 of the 1797" in text and "--subset 300 --seed 3" in text and "Warning" not in text


def test_a_run_on_arrays_records_that_they_cannot_be_reloaded(tmp_path, capsys):
    images, labels = blobs()
    run = tmp_path / "arrays"
    get_method("kmeans")(n_clusters=3, n_init=1, device="cpu", out_dir=str(run)).fit(images, labels)
    assert json.loads((run / "data.json").read_text()) == {"kind": "arrays", "dataset": None}
    assert main(["report", str(run), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "data.json" in err and "kind 'arrays'" in err and "--dataset" in err


def test_report_without_umap_learn_names_the_extra(toy_run, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "umap", None)  # as if umap-learn were not installed
    assert main(["report", str(toy_run), "--out", str(tmp_path / "page"), "--embedding", "umap",
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err == ("deepclust report: error: --embedding umap needs the umap-learn package: pip install "
                   "'deepclust[baselines]' (or pip install umap-learn), or use --embedding tsne\n")
    assert not (tmp_path / "page").exists()  # refused before any work


def test_report_keeps_the_last_record_of_a_step_logged_twice(toy_run, tmp_path):
    run = tmp_path / "resumed"
    shutil.copytree(toy_run, run, ignore=shutil.ignore_patterns("report"))
    lines = (run / "log.jsonl").read_text().splitlines()
    steps = [json.loads(line) for line in lines if '"event": "step"' in line]
    repeated = [json.dumps({**event, "loss": -1.0}) for event in steps[-3:]]  # logged again after a resume
    resume = json.dumps({"event": "resume", "epoch": steps[-4]["epoch"], "step": steps[-4]["step"]})
    (run / "log.jsonl").write_text("\n".join(lines + [resume, *repeated]) + "\n")
    read = read_run(run)
    assert [e["step"] for e in read.steps] == [e["step"] for e in steps]
    assert [e["loss"] for e in read.steps[-3:]] == [-1.0, -1.0, -1.0]
