import pytest

from deepclust.engine.config import ConfigError, deep_merge, parse_assignment, parse_assignments, read_config_file

BASE = {"training": {"epochs": 10, "batch_size": 32}, "backbone": {"name": "small_cnn"}}


def test_merge_overrides_nested_values_and_keeps_others():
    merged = deep_merge(BASE, {"training": {"epochs": 3}})
    assert merged == {"training": {"epochs": 3, "batch_size": 32}, "backbone": {"name": "small_cnn"}}
    assert BASE["training"]["epochs"] == 10


def test_unknown_key_names_the_key_and_the_valid_ones():
    with pytest.raises(ConfigError, match=r"training\.epochz.*batch_size, epochs"):
        deep_merge(BASE, {"training": {"epochz": 3}})


def test_open_sections_accept_new_keys():
    assert deep_merge(BASE, {"backbone": {"width": 2}})["backbone"] == {"name": "small_cnn", "width": 2}


def test_naming_another_pipeline_or_backbone_drops_the_old_ones_options():
    base = {"augmentation": {"name": "simclr", "image_size": 28, "normalize": True, "strength": 0.5},
            "backbone": {"name": "small_cnn", "width": 0.5}}
    merged = deep_merge(base, {"augmentation": {"name": "none"}, "backbone": {"name": "mlp", "hidden": 64}})
    assert merged["augmentation"] == {"name": "none", "image_size": 28, "normalize": True}
    assert merged["backbone"] == {"name": "mlp", "hidden": 64}
    same = deep_merge(base, {"augmentation": {"name": "simclr", "strength": 1.0}})
    assert same["augmentation"]["strength"] == 1.0 and same["augmentation"]["normalize"] is True


def test_cli_can_switch_the_augmentation_pipeline_of_a_preset():
    from deepclust.methods import get_method

    config = deep_merge(get_method("dchl").preset_config("cpu-fashion-mnist"), parse_assignment("augmentation.name=none"))
    model = get_method("dchl").model_class(config, 3, (1, 28, 28))
    assert model.augment.name == "none"


def test_assignment_parsing():
    assert parse_assignment("training.epochs=5") == {"training": {"epochs": 5}}
    assert parse_assignment("augmentation.crop_scale=[0.2, 1.0]") == {"augmentation": {"crop_scale": [0.2, 1.0]}}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_assignment("training.epochs")


def test_several_assignments_merge_into_one_mapping_the_later_winning():
    merged = parse_assignments(["training.epochs=5", "optimizer.lr=0.1", "training.batch_size=64", "training.epochs=7"])
    assert merged == {"training": {"epochs": 7, "batch_size": 64}, "optimizer": {"lr": 0.1}}
    assert parse_assignments([]) == {}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_assignments(["training.epochs=5", "optimizer.lr"])


@pytest.mark.parametrize("text, value", [
    ("1e-3", 0.001), ("5E+4", 50000.0), ("-2.5e-1", -0.25), ("+3e0", 3.0), ("1.0e-3", 0.001), ("1_0e1", 100.0),
    ("[1e-3, 2e-4]", [0.001, 0.0002]), ("1e", "1e"), ("e5", "e5"), ("1e-3x", "1e-3x"), ("12", 12), ("0.5", 0.5)])
def test_exponent_floats_without_a_dot_are_numbers(text, value):
    parsed = parse_assignment(f"optimizer.lr={text}")["optimizer"]["lr"]
    assert parsed == value and type(parsed) is type(value)


def test_a_config_file_reads_exponent_floats_as_numbers(tmp_path):
    (tmp_path / "lr.yaml").write_text("optimizer:\n  lr: 3e-4\n")
    assert read_config_file(tmp_path / "lr.yaml") == {"optimizer": {"lr": 0.0003}}


def test_yaml_and_toml_files(tmp_path):
    (tmp_path / "a.yaml").write_text("training:\n  epochs: 4\n")
    (tmp_path / "b.toml").write_text("[training]\nepochs = 5\n")
    assert read_config_file(tmp_path / "a.yaml") == {"training": {"epochs": 4}}
    assert read_config_file(tmp_path / "b.toml") == {"training": {"epochs": 5}}
    (tmp_path / "bad.yaml").write_text("training: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        read_config_file(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="not found"):
        read_config_file(tmp_path / "missing.yaml")


def test_shared_sections_join_every_configuration_under_its_own_values():
    from deepclust.engine.config import shared_sections, with_shared_sections

    shared = shared_sections()["refine"]
    merged = with_shared_sections({**BASE, "refine": {"epochs": 3, "selection": {"fraction": 0.2}}})
    assert merged["training"] == BASE["training"] and merged["refine"]["epochs"] == 3
    assert merged["refine"]["selection"] == {**shared["selection"], "fraction": 0.2}
    assert with_shared_sections(merged) == merged and with_shared_sections(BASE)["refine"] == shared
    with pytest.raises(ConfigError, match="unknown configuration key 'refine.epochz'"):
        with_shared_sections({"refine": {"epochz": 3}})
