"""Configuration values are checked against the type of the key's default (or the engine's declared
type and bounds), and every error names the key."""
import copy

import pytest

from deepclust.engine.config import ConfigError, list_presets, preset_config
from deepclust.engine.schema import ENGINE_KEYS, section_errors, validate_config, with_engine_defaults

METHODS = ("concurl", "dchl", "hadis", "hardreg", "htcn")


@pytest.mark.parametrize("method", METHODS)
def test_every_shipped_preset_is_valid(method):
    reference = with_engine_defaults(preset_config(method))
    for preset in [None, *list_presets(method)]:
        validate_config(with_engine_defaults(preset_config(method, preset)), reference)


def _with(reference, dotted, value):
    config = copy.deepcopy(reference)
    *sections, key = dotted.split(".")
    node = config
    for section in sections:
        node = node[section]
    node[key] = value
    return config


@pytest.mark.parametrize("dotted, value, message", [
    ("training.amp", "maybe", "training.amp: input should be a valid boolean, got 'maybe'"),
    ("training.epochs", 2.7, "training.epochs: input should be a valid integer, got 2.7"),
    ("training.epochs", "abc", "training.epochs: input should be a valid integer, got 'abc'"),
    ("training.batch_size", [1, 2], "training.batch_size: input should be a valid integer, got [1, 2]"),
    ("training.epochs", 0, "training.epochs: input should be greater than or equal to 1, got 0"),
    ("training.max_minutes", -1, "training.max_minutes: input should be greater than 0, got -1"),
    ("training.loggers", ["csv", "wandb"], "training.loggers[1]: input should be 'jsonl', 'csv' or 'tensorboard'"),
    ("optimizer.lr", "fast", "optimizer.lr: input should be a valid number, got 'fast'"),
    ("method.nz", 1.5, "method.nz: input should be a valid integer, got 1.5"),          # int default
    ("method.warm_start", 1, "method.warm_start: input should be a valid boolean, got 1"),  # bool default
    ("method.regulariser", 3, "method.regulariser: input should be a valid string, got 3"),
    ("backbone.name", 18, "backbone.name: input should be a valid string, got 18"),
    ("augmentation.image_size", 0, "augmentation.image_size: input should be greater than or equal to 1"),
    ("method", 3, "method: must be a section (a mapping of keys), got 3"),
    ("training.epochz", 3, "training.epochz: unknown key; valid keys here: amp, batch_size"),
])
def test_a_bad_value_names_its_key(dotted, value, message):
    reference = with_engine_defaults(preset_config("hardreg"))
    with pytest.raises(ConfigError) as error:
        validate_config(_with(reference, dotted, value), reference)
    assert str(error.value).startswith("invalid configuration: ") and message in str(error.value)


@pytest.mark.parametrize("dotted, value", [
    ("method.sigma", 3),                 # a float key takes an int
    ("method.prior", "imbalance2"),      # a key whose default is null takes anything
    ("method.prior", [0.5, 0.5]),
    ("method.nz", None),                 # null: the presets' "off / automatic"
    ("training.max_minutes", None),
    ("training.checkpoint_every_minutes", 2.5),
    ("schedule.warmup_epochs", 0.5),
    ("backbone.width", "anything"),      # the backbone builder checks its own options
])
def test_good_values_pass(dotted, value):
    reference = with_engine_defaults(preset_config("hardreg"))
    validate_config(_with(reference, dotted, value), reference)


def test_a_list_takes_the_type_of_its_items():
    reference = with_engine_defaults(preset_config("concurl"))
    validate_config(_with(reference, "schedule.milestones", (10, 20)), reference)  # a tuple for a list
    with pytest.raises(ConfigError, match=r"schedule.milestones\[1\]: input should be a valid integer"):
        validate_config(_with(reference, "schedule.milestones", [10, "x"]), reference)


def test_every_error_is_reported_at_once():
    reference = with_engine_defaults(preset_config("htcn"))
    config = _with(_with(reference, "training.amp", "yes"), "method.momentum", "high")
    with pytest.raises(ConfigError, match=r"training.amp: .*; method.momentum: "):
        validate_config(config, reference)


def test_engine_defaults_add_only_what_is_missing():
    config = with_engine_defaults({"training": {"epochs": 3, "loggers": ["jsonl", "csv"]}})
    assert config["training"] == {"loggers": ["jsonl", "csv"], "progress_every_seconds": 60.0, "epochs": 3}
    assert set(ENGINE_KEYS) >= {"training.epochs", "training.batch_size", "training.max_minutes"}


def test_builder_errors_name_the_section():
    with pytest.raises(ConfigError, match=r"^backbone: small_cnn: width must be a positive number, got -1$"):
        with section_errors("backbone"):
            raise ValueError("small_cnn: width must be a positive number, got -1")
