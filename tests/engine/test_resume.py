"""The resume rules: which configuration changes an interrupted run may take."""
import pytest

from deepclust.engine.resume import RESUMABLE_CHANGES, check_resumable, config_differences


def test_config_differences_name_every_changed_leaf():
    old = {"training": {"epochs": 3, "log_every": 1}, "optimizer": {"lr": 0.1}}
    new = {"training": {"epochs": 3, "log_every": 5}, "optimizer": {"lr": 0.2, "name": "adam"}}
    assert config_differences(old, new) == [("optimizer.lr", 0.1, 0.2), ("optimizer.name", None, "adam"),
                                            ("training.log_every", 1, 5)]
    assert config_differences(old, old) == []


def test_check_resumable():
    config = {"training": {"epochs": 3, "batch_size": 16, "log_every": 1}}
    state = {"config": config, "n_clusters": 3, "input_shape": [1, 8, 8]}
    meta = {"n_clusters": 3, "input_shape": [1, 8, 8]}
    check_resumable(state, {"training": {"epochs": 5, "batch_size": 16, "log_every": 7}}, meta)
    assert {"training.log_every", "training.epochs", "training.max_minutes"} <= RESUMABLE_CHANGES
    with pytest.raises(ValueError, match=r"training.batch_size \(checkpoint 16, now 32\)"):
        check_resumable(state, {"training": {"epochs": 3, "batch_size": 32, "log_every": 1}}, meta)
    with pytest.raises(ValueError, match=r"checkpoint has n_clusters=3, this run has n_clusters=5"):
        check_resumable(state, config, {**meta, "n_clusters": 5})
