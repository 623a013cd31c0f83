"""``deepclust ensemble``: member checks, the ensemble's folder, the command line on digits."""
import json

import numpy as np
import pytest

from deepclust.ensemble import ensemble_runs, read_labels, write_labels
from support import TINY, set_options

ARRAYS = {"kind": "arrays", "dataset": None}


def fake_run(folder, labels, source=ARRAYS):
    """A run folder as far as the ensemble reads one: labels.csv and data.json."""
    folder.mkdir(parents=True)
    write_labels(folder / "labels.csv", np.asarray(labels))
    (folder / "data.json").write_text(json.dumps(source))
    return folder


def test_labels_round_trip(tmp_path):
    write_labels(tmp_path / "labels.csv", np.array([2, 0, 1]))
    assert read_labels(tmp_path / "labels.csv").tolist() == [2, 0, 1]


def test_the_ensembles_folder(tmp_path):
    truth = np.repeat(np.arange(3), 10)
    runs = [fake_run(tmp_path / name, np.roll(truth, shift)) for name, shift in (("a", 0), ("b", 1), ("c", 2))]
    result = ensemble_runs(runs, tmp_path / "ens", seed=0, n_init=2)
    out = tmp_path / "ens"
    assert read_labels(out / "labels.csv").tolist() == result.labels.tolist()
    assert json.loads((out / "data.json").read_text()) == ARRAYS
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_members"] == 3 and "acc" not in metrics  # arrays: no labels to score against
    assert metrics["n_clusters_used"] == 3 and metrics["objective"] >= max(m["objective"] for m in result.members)
    listed = json.loads((out / "ensemble.json").read_text())
    assert [member["run"] for member in listed["members"]] == [str(run) for run in runs]
    # an ensemble's folder can itself be a member
    assert ensemble_runs([out, runs[0]], None).labels.shape == (30,)
    with pytest.raises(ValueError, match="already holds a run"):
        ensemble_runs(runs, out)
    assert ensemble_runs(runs, out, overwrite=True).labels.tolist() == result.labels.tolist()


def test_members_must_share_their_data(tmp_path):
    first = fake_run(tmp_path / "a", [0, 1, 0, 1])
    other = fake_run(tmp_path / "b", [0, 1, 0, 1], {"kind": "registry", "dataset": "digits", "subset": 4})
    with pytest.raises(ValueError, match=r"fitted on different data: data.json of .*b differs from that of .*a at "
                                         r"dataset, kind, subset"):
        ensemble_runs([first, other])
    (tmp_path / "c").mkdir()
    with pytest.raises(ValueError, match="has no data.json"):
        ensemble_runs([first, tmp_path / "c"])
    with pytest.raises(ValueError, match="at least two runs"):
        ensemble_runs([first])
    bare = tmp_path / "d"
    bare.mkdir()
    (bare / "data.json").write_text(json.dumps(ARRAYS))
    with pytest.raises(ValueError, match="is not a fitted run folder"):
        ensemble_runs([first, bare])
    three = fake_run(tmp_path / "e", [0, 1, 2, 2])
    with pytest.raises(ValueError, match="different numbers of clusters"):
        ensemble_runs([first, three])


def test_ensemble_of_two_runs_from_the_command_line(tmp_path, capsys):
    from deepclust.cli import main

    common = ["--dataset", "digits", "--subset", "200", "--device", "cpu", "--quiet"]
    assert main(["fit", "--method", "hardreg", *common, "--preset", "cpu-fashion-mnist", "--epochs", "1",
                 *set_options(TINY["hardreg"]), "--set", "training.batch_size=32", "--out", str(tmp_path / "a")]) == 0
    assert main(["fit", "--method", "kmeans", *common, "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    assert main(["ensemble", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "ens")]) == 0
    printed = capsys.readouterr().out
    assert printed.count("member ") == 2 and "ensemble of 2 (J " in printed and "ACC" in printed
    metrics = json.loads((tmp_path / "ens" / "metrics.json").read_text())
    assert {"acc", "nmi", "ari", "objective"} <= set(metrics) and metrics["dataset"] == "digits"
    assert len(read_labels(tmp_path / "ens" / "labels.csv")) == 200
    assert main(["ensemble", str(tmp_path / "a"), str(tmp_path / "b"), "--n-clusters", "1"]) == 2
    assert "n_clusters must be an integer in [2, 200]" in capsys.readouterr().err
    # a labels file in a run folder is a member too: here hardreg's training images read another way
    readout = tmp_path / "a" / "umap-gmm-labels.csv"
    write_labels(readout, read_labels(tmp_path / "ens" / "labels.csv"))
    assert main(["ensemble", str(readout), str(tmp_path / "b"), "--out", str(tmp_path / "ens2")]) == 0
    members = json.loads((tmp_path / "ens2" / "ensemble.json").read_text())["members"]
    assert [member["method"] for member in members] == ["hardreg (umap-gmm-labels.csv)", "kmeans"]
    assert members[0]["run"] == str(readout) and "acc" in members[0]
    assert json.loads((tmp_path / "ens2" / "data.json").read_text()) == json.loads((tmp_path / "a" / "data.json").read_text())


def test_an_ensemble_of_labels_of_other_images(tmp_path):
    """labels_file: the members' labels of other images (the bench's held-out ones) are combined and
    scored against the given truth; the training labels play no part."""
    truth = np.repeat(np.arange(3), 6)
    runs = []
    for name, permutation in (("a", [0, 1, 2]), ("b", [2, 0, 1]), ("c", [1, 2, 0])):
        run = fake_run(tmp_path / name, np.zeros(40, dtype=int) + int(name == "b"))
        write_labels(run / "held.csv", np.asarray(permutation)[truth])
        runs.append(run)
    result = ensemble_runs(runs, tmp_path / "ens", n_clusters=3, seed=0, n_init=2, labels_file="held.csv",
                           truth=truth)
    assert result.metrics["n_samples"] == 18 and result.metrics["acc"] == 1.0
    assert [member["acc"] for member in result.members] == [1.0, 1.0, 1.0]
    assert read_labels(tmp_path / "ens" / "held.csv").tolist() == result.labels.tolist()
    assert not (tmp_path / "ens" / "labels.csv").exists()
    with pytest.raises(ValueError, match="5 true labels for the 18 images of held.csv"):
        ensemble_runs(runs, None, n_clusters=3, labels_file="held.csv", truth=truth[:5])
    with pytest.raises(ValueError, match="truth scores the labels of labels_file, and no labels_file was given"):
        ensemble_runs(runs, None, n_clusters=3, truth=truth)


def test_labels_files_in_run_folders_are_members(tmp_path):
    truth = np.repeat(np.arange(3), 10)
    first = fake_run(tmp_path / "a", np.roll(truth, 1))
    write_labels(first / "readout.csv", truth)
    second = fake_run(tmp_path / "b", truth)
    result = ensemble_runs([first / "readout.csv", second, first], tmp_path / "ens", seed=0, n_init=2)
    assert [member["method"] for member in result.members] == ["ensemble (readout.csv)", "ensemble", "ensemble"]
    assert result.metrics["members"] == [str(first / "readout.csv"), str(second), str(first)]
    assert json.loads((tmp_path / "ens" / "data.json").read_text()) == ARRAYS
    write_labels(first / "short.csv", truth[:5])
    with pytest.raises(ValueError, match=r"readout.csv labels 30 images, .*short.csv labels 5"):
        ensemble_runs([first / "short.csv", first / "readout.csv"])
    with pytest.raises(ValueError, match=r"member .*readout.csv is a labels file, and labels_file='held.csv' names another"):
        ensemble_runs([first / "readout.csv", second], labels_file="held.csv")
    with pytest.raises(ValueError, match=r"no such run folder or labels file: .*missing"):
        ensemble_runs([first, tmp_path / "missing"])
