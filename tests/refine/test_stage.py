"""The refine stage inside ``fit``: metrics before and after, its run folder, save/load, resume, the CLI."""
import json

import numpy as np
import pytest
import torch
import yaml

from deepclust.engine.config import PRESET_DIR, SHARED_SECTIONS_FILE, preset_config
from deepclust.methods import load_estimator
from deepclust.refine import RefinedModel, refine_config
from support import TINY, set_options
from toy_method import Toy

REFINE = {"enabled": True, "epochs": 2, "batch_size": 16, "augmentation": {"name": "none"}}


def test_fit_records_metrics_before_and_after_and_saves_a_refined_estimator(tmp_path, toy_data):
    images, labels = toy_data
    estimator = Toy(n_clusters=3, max_epochs=2, seed=0, out_dir=str(tmp_path), config={"refine": REFINE})
    estimator.fit(images, labels)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"acc", "nmi", "ari"} <= set(metrics["before_refine"]) and "acc" in metrics
    assert metrics["refine"]["epochs"] == 2 and metrics["refine"]["stop_reason"] == "completed"
    assert metrics["epochs"] == 2  # the method's own training
    assert isinstance(estimator.model_, RefinedModel)
    assert (tmp_path / "refine" / "checkpoints" / "last.pt").is_file()
    events = [json.loads(line)["event"] for line in (tmp_path / "refine" / "log.jsonl").read_text().splitlines()]
    assert events[0] == "start" and events[-1] == "stop"
    loaded = load_estimator(tmp_path / "model.pt", device="cpu")
    assert isinstance(loaded.model_, RefinedModel)
    assert np.array_equal(loaded.predict(images), estimator.labels_)
    assert np.allclose(loaded.predict_proba(images), estimator.predict_proba(images), atol=1e-6)
    assert loaded.transform(images).shape == estimator.transform(images).shape


def test_resume_continues_each_stage(tmp_path, toy_data):
    images, labels = toy_data
    Toy(n_clusters=3, max_epochs=2, seed=0, out_dir=str(tmp_path)).fit(images, labels)
    # turning refinement on does not block resuming the (finished) training of the method
    first = Toy(n_clusters=3, max_epochs=2, seed=0, out_dir=str(tmp_path), resume=True,
                config={"refine": REFINE}).fit(images, labels)
    again = Toy(n_clusters=3, max_epochs=2, seed=0, out_dir=str(tmp_path), resume=True,
                config={"refine": REFINE}).fit(images, labels)
    assert first.metrics_["refine"]["steps"] == again.metrics_["refine"]["steps"] == 2 * (96 // 16)
    assert np.array_equal(first.labels_, again.labels_)
    with pytest.raises(ValueError, match="cannot resume.*refine.selection.fraction"):
        Toy(n_clusters=3, max_epochs=2, seed=0, out_dir=str(tmp_path), resume=True,
            config={"refine": {**REFINE, "selection": {"fraction": 0.2}}}).fit(images, labels)


def test_a_signal_during_the_methods_training_skips_refinement(toy_data):
    images, labels = toy_data
    estimator = Toy(n_clusters=3, max_epochs=3, seed=0,
                    config={"refine": REFINE, "method": {"stop_at_step": 2}}).fit(images, labels)
    assert estimator.metrics_["stop_reason"].startswith("stopped by") and "before_refine" not in estimator.metrics_


def test_refine_config_maps_the_section_onto_the_trainer():
    config = preset_config("dchl", "cpu-fashion-mnist")
    stage = refine_config(config)
    refine = config["refine"]
    assert stage["optimizer"] == refine["optimizer"] and stage["schedule"]["name"] == "constant"
    assert (stage["training"]["epochs"], stage["training"]["batch_size"]) == (refine["epochs"], refine["batch_size"])
    assert stage["training"]["amp"] == config["training"]["amp"] and "epochs" not in stage["refine"]


def test_refinement_is_defined_once_and_off_in_every_preset_of_every_method():
    method_files = [path for path in sorted(PRESET_DIR.glob("*.yaml")) if path != SHARED_SECTIONS_FILE]
    assert {path.stem for path in method_files} >= {"concurl", "dchl", "hadis", "hardreg", "htcn"}
    for path in method_files:
        content = yaml.safe_load(path.read_text())
        presets = content.get("presets") or {}
        assert "refine" not in content["defaults"] and not any("refine" in preset for preset in presets.values())
        for preset in [None, *presets]:
            assert preset_config(path.stem, preset)["refine"]["enabled"] is False, (path.stem, preset)


def test_fit_refine_from_the_command_line(tmp_path, capsys):
    from deepclust.cli import main

    out = tmp_path / "run"
    assert main(["fit", "--method", "hadis", "--dataset", "digits", "--subset", "200", "--preset",
                 "cpu-fashion-mnist", "--epochs", "1", *set_options(TINY["hadis"]), "--set", "training.batch_size=32",
                 "--refine", "--set", "refine.epochs=2", "--set", "refine.batch_size=32", "--device", "cpu",
                 "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "hadis on digits: ACC" in printed and "hadis before refinement: ACC" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["refine"]["epochs"] == 2 and 0 <= metrics["before_refine"]["acc"] <= 1 and 0 <= metrics["acc"] <= 1
    assert (out / "refine" / "checkpoints" / "last.pt").is_file() and (out / "checkpoints" / "last.pt").is_file()
    assert main(["evaluate", "--run", str(out), "--dataset", "digits", "--subset", "200", "--device", "cpu"]) == 0
    assert f"ACC {metrics['acc']:.4f}" in capsys.readouterr().out  # the refined model predicts the same labels


def test_overwriting_a_refined_run_starts_its_refine_stage_afresh(tmp_path, toy_data):
    images, labels = toy_data
    for _ in range(2):
        Toy(n_clusters=3, max_epochs=1, seed=0, out_dir=str(tmp_path), overwrite=True,
            config={"refine": {**REFINE, "epochs": 1}}).fit(images, labels)
    events = [json.loads(line)["event"] for line in (tmp_path / "refine" / "log.jsonl").read_text().splitlines()]
    assert events.count("start") == 1


def test_neighbours_objective_fits_resumes_and_reloads(tmp_path, toy_data):
    images, labels = toy_data
    config = {"refine": {**REFINE, "objective": "neighbours", "neighbours": {"k": 5, "space": "embedding_and_input"}}}
    first = Toy(n_clusters=3, max_epochs=2, seed=0, out_dir=str(tmp_path), config=config).fit(images, labels)
    assert first.metrics_["refine"]["stop_reason"] == "completed"
    assert first.model_.neighbours.shape == (len(images), 5)
    again = Toy(n_clusters=3, max_epochs=2, seed=0, out_dir=str(tmp_path), resume=True, config=config).fit(images, labels)
    assert torch.equal(again.model_.neighbours, first.model_.neighbours)
    assert np.array_equal(again.labels_, first.labels_)
    loaded = load_estimator(tmp_path / "model.pt", device="cpu")
    assert np.array_equal(loaded.predict(images), first.labels_)


def test_a_run_saved_before_the_refine_section_gained_keys_resumes_with_their_defaults(tmp_path, toy_data):
    images, labels = toy_data
    Toy(n_clusters=3, max_epochs=2, seed=0, out_dir=str(tmp_path)).fit(images, labels)
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    del saved["refine"]["objective"], saved["refine"]["neighbours"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    resumed = Toy(n_clusters=3, max_epochs=2, seed=0, out_dir=str(tmp_path), resume=True,
                  config={"refine": REFINE}).fit(images, labels)
    assert resumed.model_.objective == "self_label"
    assert resumed.metrics_["refine"]["stop_reason"] == "completed"
