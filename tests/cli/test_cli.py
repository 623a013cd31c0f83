import csv
import json
import math

import pytest

from deepclust.cli import main
from support import Loaded, stop_after_loading, write_image_folder


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


def test_fit_and_evaluate_on_a_class_subset(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", "--method", "kmeans", "--dataset", "digits", "--classes", "1,7", "--out", str(run),
                 "--device", "cpu", "--param", "n_init=2"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_samples"] == 182 + 179 and metrics["n_clusters_used"] == 2  # K = the classes chosen
    assert json.loads((run / "data.json").read_text())["classes"] == ["1", "7"]
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), "--dataset", "digits", "--classes", "1,7", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["acc"] == pytest.approx(metrics["acc"])
    with pytest.raises(SystemExit, match="2"):
        main(["fit", "--method", "kmeans", "--dataset", "digits", "--classes", "3", "--out", str(tmp_path / "x")])
    assert "give at least two comma-separated classes, got '3'" in capsys.readouterr().err


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
    (["fit", "--method", "kmeans", "--dataset", "digits", "--n-clusters=-1"], "at least 1, got -1"),
    (["fit", "--method", "toy", "--dataset", "digits", "--n-clusters", "1"], "at least 2"),
    (["fit", "--method", "kmeans", "--dataset", "digits", "--param", "features=small_cnn"], "small_cnn"),
    (["fit", "--method", "toy", "--dataset", "digits", "--set", "training.epochz=1"], "training.epochz"),
    (["evaluate", "--run", "/nonexistent"], "no trained model"),
    (["fit", "--method", "hardreg", "--dataset", "digits", "--preset", "nope"],
     "unknown preset 'nope' for method 'hardreg'; valid presets: cpu-fashion-mnist"),
    (["fit", "--method", "toy", "--dataset", "digits", "--set", "training.amp=maybe"],
     "training.amp: input should be a valid boolean, got 'maybe'"),
    (["fit", "--method", "toy", "--dataset", "digits", "--set", "training.epochs=2.7"],
     "training.epochs: input should be a valid integer, got 2.7"),
    (["fit", "--method", "toy", "--dataset", "digits", "--set", "training.epochs=abc"],
     "training.epochs: input should be a valid integer, got 'abc'"),
    (["fit", "--method", "toy", "--dataset", "digits", "--set", "training.batch_size=[1,2]"],
     "training.batch_size: input should be a valid integer, got [1, 2]"),
    (["fit", "--method", "toy", "--dataset", "digits", "--epochs", "0"],
     "training.epochs: input should be greater than or equal to 1, got 0"),
    (["fit", "--method", "toy", "--dataset", "digits", "--max-minutes", "-1"],
     "training.max_minutes: input should be greater than 0, got -1.0"),
    (["fit", "--method", "toy", "--dataset", "digits", "--logger", "csv,wandb"],
     "training.loggers[2]: input should be 'jsonl', 'csv' or 'tensorboard'"),
    (["fit", "--method", "toy", "--dataset", "digits", "--resume", "--overwrite"],
     "--resume and --overwrite exclude each other"),
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


@pytest.mark.skipif(not __import__("support").fashion_mnist_available(), reason="Fashion-MNIST not installed")
def test_fit_split_comes_from_the_configuration_unless_given(tmp_path, capsys):
    """Precedence: --split, else the configuration's data.split (preset, --config, --set), else all."""
    def fit(out, *options):
        assert main(["fit", "--method", "hardreg", "--dataset", "fashion-mnist", "--subset", "256",
                     "--set", "training.epochs=1", "--device", "cpu", "--quiet", "--out", str(tmp_path / out),
                     *options]) == 0
        return json.loads((tmp_path / out / "data.json").read_text())["split"], capsys.readouterr().out

    split, printed = fit("default")
    assert split == "all" and "split all" in printed
    assert fit("configured", "--set", "data.split=test")[0] == "test"
    assert fit("explicit", "--set", "data.split=test", "--split", "train")[0] == "train"


def test_fit_stores_a_named_image_folder_for_the_presets_crops(tmp_path, monkeypatch):
    """deepclust fit --preset paper-imagenet-dogs: the 300 px images are stored at DCHL's 224 px crop size,
    or at --data-option image_size when given."""
    write_image_folder(tmp_path / "imagenet-dogs" / "train", [(300, 260), (260, 300)])
    fit = ["fit", "--method", "dchl", "--preset", "paper-imagenet-dogs", "--dataset", "imagenet-dogs",
           "--data-root", str(tmp_path), "--device", "cpu", "--out", str(tmp_path / "run")]
    loaded = stop_after_loading(monkeypatch, "deepclust.cli")
    with pytest.raises(Loaded):
        main(fit)
    with pytest.raises(Loaded):
        main([*fit, "--data-option", "image_size=128"])
    assert [dataset.shape for dataset in loaded] == [(3, 224, 224), (3, 128, 128)]


def test_fit_refuses_an_image_folder_too_large_for_memory_in_one_line(tmp_path, monkeypatch, capsys):
    write_image_folder(tmp_path / "imagenet-dogs" / "train", [(300, 260), (260, 300)])
    monkeypatch.setattr("deepclust.data.folder.available_memory", lambda: 100_000)
    assert main(["fit", "--method", "dchl", "--preset", "paper-imagenet-dogs", "--dataset", "imagenet-dogs",
                 "--data-root", str(tmp_path), "--device", "cpu", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "imagenet-dogs: 2 images of 3x224x224 px take 0.3 MB in memory" in err
    assert "error: imagenet-dogs: 2 images of 3x224x224 px need 0.3 MB of memory, but 0.1 MB are available" in err
    assert "Traceback" not in err


TOY = ["fit", "--method", "toy", "--dataset", "digits", "--subset", "200", "--device", "cpu", "--quiet",
       "--set", "training.batch_size=32"]


def test_fit_refuses_a_folder_that_holds_a_run_and_overwrite_replaces_only_the_run(tmp_path, capsys):
    from support import run_cli

    run = tmp_path / "run"
    assert main([*TOY, "--out", str(run), "--set", "training.epochs=1"]) == 0
    (run / "my-notes.txt").write_text("not the run's")
    again = run_cli(*TOY, "--out", run, "--set", "training.epochs=1")
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert again.stderr == (f"deepclust fit: error: run folder {run} already holds a run (config.yaml, log.jsonl, "
                            "metrics.json, model.pt, checkpoints/last.pt); continue it with --resume (resume=True), "
                            "or start afresh with --overwrite (overwrite=True), which first deletes the files the "
                            "run wrote\n")
    assert main(["fit", "--method", "kmeans", "--dataset", "digits", "--out", str(run), "--device", "cpu"]) == 2
    assert "already holds a run" in capsys.readouterr().err  # another method cannot mix its files in
    assert main([*TOY, "--out", str(run), "--set", "training.epochs=2", "--overwrite"]) == 0
    log = [json.loads(line)["event"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert log.count("start") == 1 and json.loads((run / "metrics.json").read_text())["epochs"] == 2
    assert (run / "my-notes.txt").read_text() == "not the run's"


def test_resume_needs_a_run_and_says_when_there_is_no_checkpoint(tmp_path, capsys):
    assert main([*TOY, "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert (f"deepclust fit: error: nothing to resume in {tmp_path / 'none'}: it holds no run"
            in capsys.readouterr().err)
    early = tmp_path / "early"  # stopped before its first checkpoint: only its config.yaml and log
    assert main([*TOY, "--out", str(early), "--set", "training.epochs=1"]) == 0
    (early / "checkpoints" / "last.pt").unlink()
    assert main([*TOY, "--out", str(early), "--set", "training.epochs=1", "--resume"]) == 0
    assert (f"resume: {early} holds no checkpoints/last.pt (the run stopped before its first checkpoint); "
            "training starts afresh\n") in capsys.readouterr().err


def test_resume_extends_a_finished_run_from_its_own_config_yaml(tmp_path, capsys):
    import yaml

    run = tmp_path / "run"
    assert main([*TOY, "--out", str(run), "--set", "training.epochs=2", "--set", "method.noise=0.2"]) == 0
    assert main(["fit", "--method", "toy", "--dataset", "digits", "--subset", "200", "--device", "cpu", "--quiet",
                 "--out", str(run), "--resume", "--epochs", "4"]) == 0  # no --set: the run's config.yaml has them
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 4 and metrics["steps"] == 4 * (200 // 32)
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["training"]["epochs"] == 4 and config["method"]["noise"] == 0.2
    assert config["run"] == {"method": "toy", "preset": None, "n_clusters": 10, "seed": 0, "dataset": "digits"}
    again = tmp_path / "again"  # the file is accepted back as a configuration
    assert main([*TOY, "--out", str(again), "--config", str(run / "config.yaml"), "--epochs", "1"]) == 0
    copied = yaml.safe_load((again / "config.yaml").read_text())
    assert {**copied, "training": None} == {**config, "training": None}
    assert main([*TOY, "--out", str(run), "--resume", "--set", "optimizer.lr=0.5"]) == 2
    assert "cannot resume: the configuration differs from the run's at optimizer.lr (run 0.01, now 0.5)" \
        in capsys.readouterr().err


@pytest.fixture(scope="module")
def budget_stop(tmp_path_factory):
    """A toy run stopped by its time budget after one step: an untrained head uses few clusters."""
    from support import run_cli

    run = tmp_path_factory.mktemp("budget") / "run"
    return run, run_cli(*TOY, "--out", run, "--set", "training.epochs=2", "--max-minutes", "1e-9")


def test_a_budget_stop_exits_0_with_a_line_saying_how_to_continue(budget_stop):
    run, done = budget_stop
    assert done.returncode == 0, done.stderr
    trained = json.loads((run / "metrics.json").read_text())["train_seconds"] / 60
    next_budget = math.ceil((trained + 1e-9) * 100) / 100
    assert done.stdout.strip().splitlines()[-1] == (
        "time budget of 1e-09 min reached after 0 of 2 epochs (step 1); model.pt holds the model so far; continue "
        f"with: deepclust fit {' '.join(TOY[1:])} --out {run} --set training.epochs=2 --resume --max-minutes "
        f"{next_budget:g} (the budget counts all {trained:.2f} min trained so far)")


def test_the_suggested_budget_continues_a_run_resumed_with_a_smaller_budget_than_it_trained(tmp_path):
    """Resuming with a budget below the time already trained stops after one step; the command it then
    suggests must train on, not stop again at once."""
    import shlex

    from support import run_cli

    run = tmp_path / "run"
    first = run_cli(*TOY, "--out", run, "--set", "training.epochs=3", "--max-minutes", "1e-9")
    assert first.returncode == 0, first.stderr
    again = run_cli(*TOY, "--out", run, "--set", "training.epochs=3", "--resume", "--max-minutes", "1e-9")
    assert again.returncode == 0, again.stderr
    step_before = json.loads((run / "metrics.json").read_text())["steps"]
    suggested = shlex.split(again.stdout.strip().splitlines()[-1].split("continue with: ")[1].split(" (the budget")[0])
    assert suggested[:2] == ["deepclust", "fit"]
    assert float(suggested[suggested.index("--max-minutes") + 1]) > 2 * 1e-9
    third = run_cli(*suggested[1:])
    assert third.returncode == 0, third.stderr
    assert json.loads((run / "metrics.json").read_text())["steps"] > step_before


def test_a_collapsed_run_ends_with_a_warning(budget_stop):
    run, done = budget_stop
    used = json.loads((run / "metrics.json").read_text())["n_clusters_used"]
    assert used < 5
    assert f"warning: collapse: {used} of 10 clusters used" in done.stdout.splitlines()


def test_progress_is_plain_lines_without_a_terminal(tmp_path):
    from support import run_cli

    done = run_cli(*TOY[:-3], "--set", "training.batch_size=32", "--set", "training.epochs=2", "--out", tmp_path / "r")
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split("  ")[:2] for line in lines] == [["epoch 1/2", "step 6/12"], ["epoch 2/2", "step 12/12"]]
    assert all(line.endswith("training") and " img/s " in line and " loss " in line for line in lines)


def test_a_paper_configuration_on_a_cpu_prints_the_time_per_epoch(tmp_path, capsys):
    assert main(["fit", "--method", "concurl", "--dataset", "digits", "--subset", "10", "--batch-size", "2",
                 "--epochs", "1", "--device", "cpu", "--quiet", "--out", str(tmp_path / "r")]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "per epoch (" in notes[0] and " s/step x 5 steps)" in notes[0]
    assert notes[0].endswith("for a CPU use --preset cpu-fashion-mnist (preset='cpu-fashion-mnist')")


def test_hardreg_on_8x8_digits_takes_an_mlp(tmp_path, capsys):
    assert main(["fit", "--method", "hardreg", "--dataset", "digits", "--subset", "300", "--epochs", "1",
                 "--device", "cpu", "--quiet", "--out", str(tmp_path / "r")]) == 0
    assert "backbone: lenet cannot take these 8x8 images" in capsys.readouterr().err


def test_evaluate_and_predict_refuse_images_of_another_shape(tmp_path, capsys):
    import numpy as np

    run = tmp_path / "run"
    assert main([*TOY, "--out", str(run), "--set", "training.epochs=1"]) == 0
    other = tmp_path / "big.npz"
    np.savez(other, x=np.zeros((20, 28, 28), dtype=np.uint8), y=np.arange(20) % 2)
    capsys.readouterr()
    for command in (["evaluate", "--run", str(run)], ["predict", "--run", str(run), "--output", str(tmp_path / "l.csv")]):
        assert main([*command, "--dataset", "npz", "--data-root", str(other), "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert "trained on 1-channel images of shape (1, 8, 8), got images of shape (1, 28, 28)" in err
    assert not (tmp_path / "l.csv").exists()


def test_logger_option_adds_csv_and_tensorboard(tmp_path):
    run = tmp_path / "run"
    assert main([*TOY, "--out", str(run), "--set", "training.epochs=1", "--set", "training.log_every=1",
                 "--logger", "csv,tensorboard"]) == 0
    assert len((run / "steps.csv").read_text().splitlines()) == 1 + 200 // 32
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))


def test_predict_on_an_image_folder_writes_the_file_of_each_image(tmp_path, capsys):
    from deepclust.ensemble import read_labels

    photos = write_image_folder(tmp_path / "photos", [(12, 12)] * 6, n_classes=2)
    run = tmp_path / "run"
    assert main(["fit", "--method", "kmeans", "--dataset", "image-folder", "--data-root", str(photos),
                 "--data-option", "image_size=8", "--param", "n_clusters=2", "--out", str(run), "--device", "cpu"]) == 0
    labels_file = tmp_path / "labels.csv"
    assert main(["predict", "--run", str(run), "--dataset", "image-folder", "--data-root", str(photos),
                 "--data-option", "image_size=8", "--output", str(labels_file), "--device", "cpu"]) == 0
    assert "(index,path,label)" in capsys.readouterr().out
    rows = list(csv.reader(labels_file.open()))
    files = sorted(str(path) for path in photos.glob("*/*.png"))
    assert rows[0] == ["index", "path", "label"] and [row[1] for row in rows[1:]] == files
    assert [row[0] for row in rows[1:]] == [str(i) for i in range(6)] and {row[2] for row in rows[1:]} <= {"0", "1"}
    assert read_labels(labels_file).tolist() == [int(row[2]) for row in rows[1:]]
