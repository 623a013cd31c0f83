"""``deepclust bench`` on digits with tiny settings: the three result files and the run folders."""
import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from support import write_idx
from toy_method import ToyModel

from deepclust import load_dataset, load_estimator
from deepclust.cli import build_parser, main
from deepclust.cluster.umap_gmm import UmapGmm
from deepclust.ensemble import ensemble_runs, read_labels
from deepclust.evaluation import cluster_accuracy
from deepclust.reporting.bench import BenchSettings, parse_baseline, resolve_baselines, resolve_methods, results_name
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
    argv = ["bench", "--dataset", "digits", "--methods", "kmeans,toy,nopreset", "--baselines", "pixels,small_cnn",
            "--budget-minutes", "0.05", "--seeds", "0,1", "--subset", "240", "--baseline-image-size", "16",
            "--kmeans-n-init", "1",
            "--out", str(out), "--runs-dir", str(runs), "--device", "cpu"]
    assert main(argv) == 0
    md, table, data = (out / "digits.md").read_text(), out / "digits.csv", json.loads((out / "digits.json").read_text())
    assert md.startswith("# Benchmark on digits")
    assert "Made by: `deepclust bench --dataset digits --methods kmeans,toy,nopreset --baselines pixels,small_cnn " \
           "--budget-minutes 0.05 --seeds 0,1 --preset" not in md  # no --preset given: none in the command
    assert "`deepclust bench --dataset digits --methods kmeans,toy,nopreset --baselines pixels,small_cnn " \
           "--budget-minutes 0.05 --seeds 0,1 --subset 240" in md
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
    assert data["matmul_size"] == 2048 and data["matmul_gflops"] > 0  # the machine's speed, measured once
    assert f"float32 matmul 2048×2048 at {data['matmul_gflops']:.1f} GFLOP/s" in md
    for folder in ("toy-seed0", "toy-seed1", "kmeans-pixels-seed1", "kmeans-small_cnn-seed0"):
        assert (runs / folder / "model.pt").is_file() and (runs / folder / "metrics.json").is_file()
        assert json.loads((runs / folder / "data.json").read_text())["subset"] == 240
    assert (runs / "toy-seed1" / "log.jsonl").is_file()
    # the report of a benchmark run finds the benchmark's subset through data.json
    assert main(["report", str(runs / "toy-seed1"), "--max-points", "60", "--device", "cpu"]) == 0
    page = (runs / "toy-seed1" / "report" / "report.html").read_text()
    assert "240 images" in page and "Warning" not in page


def test_bench_aggregates_seeds_against_every_baseline(tmp_path, capsys):
    """Two seeds of the toy method and of every baseline (`all`: k-means, UMAP + GMM, N2D): per-seed
    runs in the JSON, mean ± sd in the table, the labelled embedding scores, the closing verdicts."""
    out, runs = tmp_path / "results", tmp_path / "runs"
    assert main(["bench", "--dataset", "digits", "--methods", "toy", "--budget-minutes", "0.02", "--seeds", "0,1",
                 "--subset", "300", "--kmeans-n-init", "1", "--out", str(out), "--runs-dir", str(runs),
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    data = json.loads((out / "digits.json").read_text())
    assert data["baselines"] == ["kmeans", "umap-gmm", "ae-umap-gmm"] and "--baselines all" in data["command"]
    assert "--resume" not in data["command"]
    names = ["toy", "k-means (pixels)", "UMAP + GMM (pixels)", "AE + UMAP + GMM (N2D)"]
    assert [row["name"] for row in data["rows"]] == names
    for row in data["rows"]:
        done = [r for r in data["runs"] if r["name"] == row["name"]]
        assert [r["seed"] for r in done] == [0, 1] and all(r["status"] == "ok" for r in done), done
        accs = [r["acc"] for r in done]
        assert row["acc_mean"] == pytest.approx(np.mean(accs)) and row["acc_std"] == pytest.approx(np.std(accs, ddof=1))
        for key in ("supervised_knn_acc", "supervised_probe_acc"):
            assert all(0 < r[key] <= 1 for r in done)
            assert row[f"{key}_mean"] == pytest.approx(np.mean([r[key] for r in done]))
    seeds_in_run_order = [r["seed"] for r in data["runs"]]
    assert seeds_in_run_order == sorted(seeds_in_run_order)  # seed by seed: an interrupted bench keeps whole seeds
    umap_runs = [r for r in data["runs"] if r["method"] == "umap-gmm"]
    assert all(r["acc"] > 0.5 for r in umap_runs)
    n2d = [r for r in data["runs"] if r["method"] == "ae-umap-gmm"]
    assert all(r["kind"] == "baseline" and r["preset"] == "cpu-fashion-mnist" and r["epochs"] is not None for r in n2d)
    assert "embedding_quality" in data and "GROUND-TRUTH LABELS" in data["embedding_quality"]
    (comparison,) = data["comparisons"]
    best = max((row for row in data["rows"] if row["kind"] == "baseline"), key=lambda row: row["acc_mean"])
    toy = data["rows"][0]
    spread = max(toy["acc_std"], best["acc_std"])
    assert comparison["baseline"] == best["name"] and comparison["spread"] == pytest.approx(spread)
    assert comparison["verdict"] == ("above" if toy["acc_mean"] - best["acc_mean"] > spread else "not above")
    md = (out / "digits.md").read_text()
    assert "## Against the best baseline" in md and data["comparison_rule"] in md
    assert f"- toy: mean ACC {toy['acc_mean']:.4f} − {best['acc_mean']:.4f} of {best['name']}" in md
    assert "against the best baseline (A method is above the best baseline" in printed
    assert "embeddings, scored WITH THE LABELS: kNN-20" in printed
    for folder in ("toy-seed1", "kmeans-pixels-seed0", "umap-gmm-pixels-seed1", "ae-umap-gmm-seed0"):
        assert (runs / folder / "model.pt").is_file()


def test_baseline_spellings():
    assert [b.spelling for b in resolve_baselines("all")] == ["kmeans", "umap-gmm", "ae-umap-gmm"]
    assert resolve_baselines("none") == []
    old = resolve_baselines("pixels,small_cnn,kmeans")  # the old spellings, and a repeat
    assert [(b.spelling, b.label, b.folder) for b in old] == [
        ("kmeans", "k-means (pixels)", "kmeans-pixels"),
        ("kmeans-small_cnn", "k-means (random small_cnn)", "kmeans-small_cnn")]
    umap = parse_baseline("umap-gmm-resnet18")
    assert (umap.method, umap.features, umap.label) == ("umap-gmm", "resnet18", "UMAP + GMM (random resnet18)")
    assert parse_baseline("ae-umap-gmm").features is None
    with pytest.raises(ValueError, match="unknown baseline 'kmeans2'; valid: all, none, kmeans, umap-gmm"):
        parse_baseline("kmeans2")
    with pytest.raises(ValueError, match="'nonet' is neither pixels nor a backbone"):
        parse_baseline("umap-gmm-nonet")
    assert resolve_methods("toy,umap-gmm,kmeans") == (["toy"], ["umap-gmm", "kmeans"])
    assert "ae-umap-gmm" not in resolve_methods("all")[0] and "kmeans" not in resolve_methods("all")[0]
    args = build_parser().parse_args(["bench", "--dataset", "digits", "--budget-minutes", "1"])
    assert (args.seeds, args.baselines) == ("0,1,2", "all")


def test_bench_rejects_bad_arguments(tmp_path, capsys):
    base = ["bench", "--dataset", "digits", "--budget-minutes", "1", "--out", str(tmp_path)]
    assert main(base + ["--methods", "nope"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert main(base + ["--seeds", "a,b"]) == 2
    assert "--seeds expects comma-separated integers" in capsys.readouterr().err
    assert main(base + ["--baselines", "kmeans,nope"]) == 2
    assert "unknown baseline 'nope'" in capsys.readouterr().err
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


def test_bench_refine_rows_and_ensemble_row(tmp_path, capsys):
    out, runs = tmp_path / "results", tmp_path / "runs"
    assert main(["bench", "--dataset", "digits", "--subset", "400", "--methods", "toy,hardreg", "--baselines", "none",
                 "--budget-minutes", "0.05", "--seeds", "0", "--refine", "epochs=2", "batch_size=64", "--ensemble",
                 "--out", str(out), "--runs-dir", str(runs), "--device", "cpu"]) == 0
    rows = {row["name"]: row for row in csv.DictReader((out / "digits.csv").open())}
    assert set(rows) == {"toy", "toy + refine", "hardreg", "hardreg + refine", "ensemble (toy + hardreg)"}
    assert all(row["status"] == "ok" for row in rows.values())
    refined = json.loads((runs / "hardreg-seed0" / "metrics.json").read_text())
    assert float(rows["hardreg"]["acc_mean"]) == pytest.approx(refined["before_refine"]["acc"])
    assert float(rows["hardreg + refine"]["acc_mean"]) == pytest.approx(refined["acc"])
    assert rows["hardreg"]["supervised_knn_acc_mean"] == "" and rows["hardreg + refine"]["supervised_knn_acc_mean"] != ""
    ensemble = json.loads((runs / "ensemble-seed0" / "metrics.json").read_text())
    assert float(rows["ensemble (toy + hardreg)"]["acc_mean"]) == pytest.approx(ensemble["acc"])
    assert "--refine epochs=2 batch_size=64 --ensemble" in (out / "digits.md").read_text()
    assert main(["bench", "--dataset", "digits", "--budget-minutes", "1", "--refine", "epochz=2",
                 "--out", str(tmp_path)]) == 2
    assert "unknown configuration key 'refine.epochz'" in capsys.readouterr().err


def test_bench_readout_rows_cluster_each_runs_embeddings_by_umap_gmm(tmp_path, capsys):
    """--readout: one training per method gives its own row and ``M + UMAP-GMM``, whose labels are UMAP
    + GMM fitted on that run's embeddings of the benchmarked images (recomputed here from its model.pt)."""
    out, runs = tmp_path / "results", tmp_path / "runs"
    assert main(["bench", "--dataset", "digits", "--subset", "400", "--methods", "toy,hardreg", "--baselines", "none",
                 "--budget-minutes", "0.05", "--seeds", "0", "--readout", "n_components=4", "n_neighbors=10",
                 "--out", str(out), "--runs-dir", str(runs), "--device", "cpu"]) == 0
    data = json.loads((out / "digits.json").read_text())
    rows = {run["name"]: run for run in data["runs"]}
    assert set(rows) == {"toy", "toy + UMAP-GMM", "hardreg", "hardreg + UMAP-GMM"}
    images = load_dataset("digits").sample(400, 0)
    for method in ("toy", "hardreg"):
        own, readout = rows[method], rows[f"{method} + UMAP-GMM"]
        assert readout["status"] == "ok" and readout["run_dir"] == own["run_dir"] and readout["epochs"] == own["epochs"]
        assert own["acc"] == pytest.approx(json.loads((runs / f"{method}-seed0" / "metrics.json").read_text())["acc"])
        embeddings = load_estimator(runs / f"{method}-seed0" / "model.pt").transform(images)
        labels = UmapGmm(10, seed=0, n_components=4, n_neighbors=10).fit_predict(embeddings)
        assert readout["acc"] == pytest.approx(cluster_accuracy(images.labels, labels))
        assert np.array_equal(read_labels(runs / f"{method}-seed0" / "umap-gmm-labels.csv"), labels)  # kept
        assert readout["train_seconds"] > own["train_seconds"]
        assert readout["supervised_knn_acc"] == own["supervised_knn_acc"]  # the same embeddings
    readouts = ensemble_runs([runs / "toy-seed0", runs / "hardreg-seed0"], labels_file="umap-gmm-labels.csv",
                             truth=images.labels)  # the documented ensemble of the readouts
    assert [member["acc"] for member in readouts.members] == pytest.approx(
        [rows["toy + UMAP-GMM"]["acc"], rows["hardreg + UMAP-GMM"]["acc"]])
    page = (out / "digits.md").read_text()
    assert "--readout n_components=4 n_neighbors=10" in data["command"] and "clustered by UMAP + GMM" in page
    assert main(["bench", "--dataset", "digits", "--budget-minutes", "1", "--readout", "n_components=0",
                 "--out", str(tmp_path)]) == 2
    assert "--readout: UMAP+GMM option n_components must be an integer >= 1, got 0" in capsys.readouterr().err
    assert main(["bench", "--dataset", "digits", "--budget-minutes", "1", "--readout", "neighbours=5",
                 "--out", str(tmp_path)]) == 2
    assert "unknown UMAP+GMM option(s) neighbours" in capsys.readouterr().err


def test_bench_readout_follows_refinement_and_scores_held_out_images(tmp_path):
    """With --refine the readout row labels the refined network's embeddings; with --held-out it places
    the held-out images' embeddings with UMAP's transform and keeps the training scores as fit_*."""
    out = tmp_path / "results"
    assert main(["bench", "--dataset", "digits", "--subset", "300", "--methods", "toy", "--baselines", "none",
                 "--budget-minutes", "0.02", "--seeds", "0", "--refine", "epochs=1", "--readout", "n_neighbors=10",
                 "--out", str(out), "--runs-dir", str(tmp_path / "refined"), "--device", "cpu"]) == 0
    names = [run["name"] for run in json.loads((out / "digits.json").read_text())["runs"]]
    assert names == ["toy", "toy + refine", "toy + refine + UMAP-GMM"]
    _write_fashion_mnist(tmp_path / "fashion-mnist", n_train=300, n_test=200)
    assert main(["bench", "--dataset", "fashion-mnist", "--data-root", str(tmp_path), "--split", "train",
                 "--held-out", "test", "--methods", "toy", "--baselines", "none", "--budget-minutes", "0.02",
                 "--seeds", "0", "--readout", "n_neighbors=10", "--out", str(out),
                 "--runs-dir", str(tmp_path / "held-out"), "--device", "cpu"]) == 0
    runs = {run["name"]: run for run in json.loads((out / "fashion-mnist-held-out-test.json").read_text())["runs"]}
    readout = runs["toy + UMAP-GMM"]
    assert readout["status"] == "ok" and readout["n_samples"] == 200 and readout["fit_acc"] is not None
    assert readout["acc"] > 0.9 and readout["fit_acc"] > 0.9  # the bands of the fake images separate
    run = tmp_path / "held-out" / "toy-seed0"
    assert len(read_labels(run / "held-out-umap-gmm-labels.csv")) == 200
    assert len(read_labels(run / "umap-gmm-labels.csv")) == 300


def test_bench_resume_makes_the_readout_rows_of_kept_runs_without_training_again(tmp_path, capsys):
    """--resume with --readout: a kept run gets its readout row from its model.pt (no new training); a
    readout row made with the same options is kept as it is, one with other options made again, and
    without --readout the kept readout rows are dropped."""
    out, runs = tmp_path / "results", tmp_path / "runs"
    argv = ["bench", "--dataset", "digits", "--methods", "toy", "--baselines", "kmeans", "--budget-minutes", "0.02",
            "--seeds", "0", "--subset", "300", "--kmeans-n-init", "1", "--no-embedding-quality",
            "--out", str(out), "--runs-dir", str(runs), "--device", "cpu"]

    def names_and_runs():
        data = json.loads((out / "digits.json").read_text())
        return [run["name"] for run in data["runs"]], {run["name"]: run for run in data["runs"]}, data["command"]

    assert main(argv) == 0
    first = names_and_runs()[1]["toy"]
    capsys.readouterr()
    assert main(argv + ["--resume", "--readout", "n_neighbors=10"]) == 0
    printed = capsys.readouterr().out
    names, runs_by_name, command = names_and_runs()
    assert names == ["toy", "toy + UMAP-GMM", "k-means (pixels)"] and command.endswith("--resume")
    assert "toy-seed0: finished earlier, kept (--resume)" in printed and "toy + UMAP-GMM seed 0: ACC" in printed
    assert (runs / "toy-seed0" / "log.jsonl").read_text().count('"event": "start"') == 1  # not trained again
    readout = runs_by_name["toy + UMAP-GMM"]
    assert runs_by_name["toy"] == first and readout["readout_options"] == {"n_neighbors": 10}
    images = load_dataset("digits").sample(300, 0)
    embeddings = load_estimator(runs / "toy-seed0" / "model.pt").transform(images)
    labels = UmapGmm(10, seed=0, n_neighbors=10).fit_predict(embeddings)
    assert readout["acc"] == pytest.approx(cluster_accuracy(images.labels, labels))

    assert main(argv + ["--resume", "--readout", "n_neighbors=10"]) == 0
    assert "UMAP-GMM seed 0" not in capsys.readouterr().out and names_and_runs()[1]["toy + UMAP-GMM"] == readout
    assert main(argv + ["--resume", "--readout", "n_neighbors=12"]) == 0
    assert names_and_runs()[1]["toy + UMAP-GMM"]["readout_options"] == {"n_neighbors": 12}
    assert main(argv + ["--resume"]) == 0
    assert names_and_runs()[0] == ["toy", "k-means (pixels)"]


def test_one_set_of_embeddings_serves_the_embedding_scores_and_the_readout():
    """Each image set is embedded once per run; the training images' kept ``embedding_`` is used as is."""
    from deepclust.reporting.bench import _embeddings_once

    class Counting:
        def __init__(self):
            self.calls = []

        def transform(self, dataset):
            self.calls.append(dataset)
            return np.full((len(dataset), 2), float(len(self.calls)))

    training, held_out = load_dataset("digits").sample(50, 0), load_dataset("digits").sample(30, 1)
    estimator = Counting()
    embeddings = _embeddings_once(estimator, training)
    assert embeddings(training) is embeddings(training) and embeddings(held_out) is embeddings(held_out)
    assert estimator.calls == [training, held_out]
    estimator.embedding_ = np.zeros((50, 3))
    kept = _embeddings_once(estimator, training)
    assert kept(training) is estimator.embedding_ and len(estimator.calls) == 2
    assert kept(held_out).shape == (30, 2) and len(estimator.calls) == 3


def test_bench_refuses_run_folders_that_hold_runs_unless_resumed_or_overwritten(tmp_path, capsys):
    out, runs = tmp_path / "results", tmp_path / "runs"
    argv = ["bench", "--dataset", "digits", "--methods", "toy", "--baselines", "kmeans", "--budget-minutes", "0.01",
            "--seeds", "0", "--subset", "200", "--kmeans-n-init", "1", "--no-embedding-quality",
            "--out", str(out), "--runs-dir", str(runs), "--device", "cpu"]
    assert main(argv) == 0
    first = json.loads((out / "digits.json").read_text())["runs"]
    capsys.readouterr()
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"deepclust bench: error: --runs-dir {runs} already holds runs of this benchmark (toy-seed0, "
        "kmeans-pixels-seed0); give --resume to keep the finished ones and run the others, or --overwrite to run "
        "them all again (deletes their run files)\n")
    (runs / "kmeans-pixels-seed0" / "model.pt").unlink()  # as if interrupted before it finished
    assert main(argv + ["--resume"]) == 0
    printed = capsys.readouterr().out
    assert "toy-seed0: finished earlier, kept (--resume)" in printed and "kmeans-pixels-seed0: finished" not in printed
    again = json.loads((out / "digits.json").read_text())
    assert again["runs"][0] == first[0] and (runs / "kmeans-pixels-seed0" / "model.pt").is_file()
    # the recorded command says which run folder the kept rows come from
    assert again["command"].endswith(f"--out {out} --runs-dir {runs} --no-embedding-quality --resume")
    toy_log = runs / "toy-seed0" / "log.jsonl"
    starts = toy_log.read_text().count('"event": "start"')
    # --resume with another --out: its results file does not list the finished runs; refused, nothing deleted
    held = sorted(path for path in runs.rglob("*") if path.is_file())
    elsewhere = tmp_path / "elsewhere"
    capsys.readouterr()
    assert main([*argv[:argv.index("--out") + 1], str(elsewhere), *argv[argv.index("--out") + 2:], "--resume"]) == 2
    assert capsys.readouterr().err == (
        f"deepclust bench: error: --resume: {runs / 'toy-seed0'}, {runs / 'kmeans-pixels-seed0'} hold finished runs "
        f"that {elsewhere / 'digits.json'} does not list (no such file); give the --out of the benchmark that made "
        "them, or --overwrite to run them again (deletes their run files); nothing was deleted\n")
    assert sorted(path for path in runs.rglob("*") if path.is_file()) == held and not elsewhere.exists()
    assert main(argv + ["--overwrite"]) == 0
    assert toy_log.read_text().count('"event": "start"') == starts == 1  # run again in a cleared folder


def test_bench_set_overrides_every_deep_methods_preset_in_its_own_results(tmp_path, capsys):
    out, runs = tmp_path / "results", tmp_path / "runs"
    assert main(["bench", "--dataset", "digits", "--subset", "200", "--methods", "toy,hardreg", "--baselines", "kmeans",
                 "--budget-minutes", "1", "--seeds", "0", "--kmeans-n-init", "1", "--no-embedding-quality",
                 "--set", "training.epochs=2", "--set", "training.batch_size=50",
                 "--out", str(out), "--runs-dir", str(runs), "--device", "cpu"]) == 0
    stem = "digits-set-training-epochs-2-training-batch-size-50"
    assert not (out / "digits.json").exists()  # a variant never overwrites the presets' table
    data = json.loads((out / f"{stem}.json").read_text())
    assert data["overrides"] == ["training.epochs=2", "training.batch_size=50"]
    assert "--set training.epochs=2 --set training.batch_size=50" in data["command"]
    for run in (r for r in data["runs"] if r["kind"] == "method"):
        assert run["status"] == "ok" and run["epochs"] == 2, run  # the presets' epochs are more
        assert run["overrides"] == data["overrides"]
        config = (runs / f"{run['method']}-seed0" / "config.yaml").read_text()
        assert "batch_size: 50" in config
    kmeans = next(r for r in data["runs"] if r["kind"] == "baseline")
    assert kmeans["status"] == "ok" and "overrides" not in kmeans
    page = (out / f"{stem}.md").read_text()
    assert "| toy | cpu-fashion-mnist --set training.epochs=2 --set training.batch_size=50 |" in page
    assert "its preset with `training.epochs=2`, `training.batch_size=50` (`--set`)" in page


def test_results_name_turns_every_run_of_other_characters_into_one_hyphen():
    dataset = SimpleNamespace(name="fashion-mnist", class_names=["T-shirt/top", "Ankle boot"])
    settings = BenchSettings(dataset="fashion-mnist", budget_minutes=1, classes=[0, 9], held_out="test",
                             overrides=["augmentation.crop_scale=[1.0, 1.0]", "method.n_groups=128"])
    assert results_name(settings, dataset) == ("fashion-mnist-classes-t-shirt-top-ankle-boot-held-out-test-set-"
                                               "augmentation-crop-scale-1-0-1-0-method-n-groups-128")


def test_bench_set_is_checked_against_every_method_before_any_training(tmp_path, capsys):
    base = ["bench", "--dataset", "digits", "--methods", "toy,hardreg", "--baselines", "none", "--budget-minutes", "1",
            "--out", str(tmp_path / "results"), "--runs-dir", str(tmp_path / "runs")]
    assert main(base + ["--set", "training.epochz=2"]) == 2
    assert "--set: method 'toy': unknown configuration key 'training.epochz'" in capsys.readouterr().err
    assert main(base + ["--set", "training.epochs=0"]) == 2
    error = capsys.readouterr().err
    assert "--set: method 'toy'" in error and "training.epochs" in error
    assert main(base + ["--set", "training.epochs"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "results").exists()


def test_bench_records_no_default_out_in_its_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--dataset", "digits", "--methods", "toy", "--baselines", "none", "--budget-minutes", "0.01",
                 "--seeds", "0", "--subset", "100", "--no-embedding-quality", "--device", "cpu"]) == 0
    command = json.loads((tmp_path / "benchmarks" / "results" / "digits.json").read_text())["command"]
    assert command == ("deepclust bench --dataset digits --methods toy --baselines none --budget-minutes 0.01 "
                       "--seeds 0 --subset 100 --device cpu --no-embedding-quality")


def _write_fashion_mnist(folder, n_train: int, n_test: int) -> dict:
    """Fashion-MNIST files whose class k is a bright band at rows 2k..2k+4 over noise: clusterable."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    labels = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = np.arange(n) % 10
        x = rng.integers(0, 60, size=(n, 28, 28))
        for image, k in zip(x, y):
            image[2 * k:2 * k + 5] += 180
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", y)
        labels[prefix] = y
    return labels


def test_bench_scores_both_refine_rows_on_held_out_images(tmp_path):
    """--held-out with --refine: the row before refinement is the held-out score of the method's own
    training (what the benchmark without --refine gives), the refine stage then resumes that run without
    a further step of it; the refined row is the held-out score of the refined network."""
    labels = _write_fashion_mnist(tmp_path / "fashion-mnist", n_train=300, n_test=200)
    out = tmp_path / "results"
    base = ["bench", "--dataset", "fashion-mnist", "--data-root", str(tmp_path), "--split", "train",
            "--held-out", "test", "--methods", "toy", "--baselines", "none", "--budget-minutes", "5",
            "--seeds", "0", "--device", "cpu"]
    assert main(base + ["--out", str(out / "plain"), "--runs-dir", str(tmp_path / "plain")]) == 0
    assert main(base + ["--refine", "epochs=1", "--out", str(out / "refined"),
                        "--runs-dir", str(tmp_path / "refined")]) == 0
    [plain] = json.loads((out / "plain" / "fashion-mnist-held-out-test.json").read_text())["runs"]
    rows = {run["name"]: run for run in
            json.loads((out / "refined" / "fashion-mnist-held-out-test.json").read_text())["runs"]}
    before, after = rows["toy"], rows["toy + refine"]
    assert before["n_samples"] == after["n_samples"] == 200
    for key in ("acc", "nmi", "ari", "fit_acc", "fit_nmi"):
        assert before[key] == pytest.approx(plain[key]), key
    run = tmp_path / "refined" / "toy-seed0"
    trained = json.loads((run / "metrics.json").read_text())
    assert after["fit_acc"] == pytest.approx(trained["acc"])
    assert before["fit_acc"] == pytest.approx(trained["before_refine"]["acc"])
    assert after["acc"] == pytest.approx(cluster_accuracy(labels["t10k"], read_labels(run / "held-out-labels.csv")))
    events = [json.loads(line)["event"] for line in (run / "log.jsonl").read_text().splitlines()]
    resumed = events.index("resume")
    assert "step" in events[:resumed] and "step" not in events[resumed:]


def test_bench_scores_a_class_subset_on_held_out_images(tmp_path, capsys):
    """--classes and --held-out: trained on the train split of three classes, every row (the ensemble's
    too) scored on the test split's images of those classes, the training scores kept as fit_*."""
    labels = _write_fashion_mnist(tmp_path / "fashion-mnist", n_train=300, n_test=200)
    out, runs = tmp_path / "results", tmp_path / "runs"
    base = ["bench", "--dataset", "fashion-mnist", "--data-root", str(tmp_path), "--classes", "0,dress,5",
            "--budget-minutes", "0.02", "--seeds", "0", "--kmeans-n-init", "1", "--out", str(out), "--device", "cpu"]
    assert main(base + ["--split", "train", "--held-out", "test", "--methods", "toy,hardreg",
                        "--baselines", "kmeans,ae-umap-gmm", "--ensemble", "--runs-dir", str(runs)]) == 0
    stem = "fashion-mnist-classes-t-shirt-top-dress-sandal-held-out-test"
    data = json.loads((out / f"{stem}.json").read_text())
    assert data["classes"] == ["T-shirt/top", "Dress", "Sandal"] and data["n_clusters"] == 3
    assert data["n_samples"] == 90 and data["held_out"] == "test"  # 30 train images of each class
    page = (out / f"{stem}.md").read_text()
    assert page.startswith("# Benchmark on fashion-mnist (T-shirt/top, Dress, Sandal), scored on its held-out test")
    assert "on the 60 held-out images of the test split, never trained on" in page
    assert "--classes 0,dress,5 --held-out test" in data["command"]
    held_out_truth = np.searchsorted([0, 3, 5], labels["t10k"][np.isin(labels["t10k"], [0, 3, 5])])
    runs_by_name = {run["name"]: run for run in data["runs"]}
    assert set(runs_by_name) == {"toy", "hardreg", "k-means (pixels)", "AE + UMAP + GMM (N2D)",
                                 "ensemble (toy + hardreg)"}
    for run in runs_by_name.values():
        assert run["status"] == "ok" and run["n_samples"] == 60, run
        predicted = read_labels(Path(run["run_dir"]) / "held-out-labels.csv")
        assert run["acc"] == pytest.approx(cluster_accuracy(held_out_truth, predicted))
        if run["method"] != "ensemble":
            trained = json.loads((Path(run["run_dir"]) / "metrics.json").read_text())
            assert run["fit_acc"] == pytest.approx(trained["acc"]) and trained["n_samples"] == 90
    consensus = json.loads((Path(runs_by_name["ensemble (toy + hardreg)"]["run_dir"]) / "metrics.json").read_text())
    assert consensus["n_samples"] == 60 and consensus["acc"] == runs_by_name["ensemble (toy + hardreg)"]["acc"]
    assert runs_by_name["k-means (pixels)"]["acc"] > 0.9  # the bands separate the held-out images too
    assert runs_by_name["toy"]["supervised_knn_acc"] is not None
    assert main(base + ["--held-out", "test", "--methods", "toy", "--baselines", "none"]) == 2
    assert "--held-out test needs a training split that holds none of its images" in capsys.readouterr().err
    assert main(base + ["--classes", "0,zebra", "--methods", "toy"]) == 2
    assert "'zebra' is not a class of 'fashion-mnist'" in capsys.readouterr().err
