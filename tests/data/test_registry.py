import dataclasses
import os

import numpy as np
import pytest

from deepclust.data import (DatasetNotFoundError, dataset_status, from_arrays, list_datasets, load_dataset,
                            load_source, read_source, write_source)
from deepclust.data import registry


def test_list_and_unknown_name():
    names = list_datasets()
    for n in ("fashion-mnist", "mnist", "digits", "cifar10", "cifar100", "stl10", "imagenet10",
              "imagenet-dogs", "tiny-imagenet", "image-folder", "npz"):
        assert n in names
    with pytest.raises(ValueError) as ei:
        load_dataset("cifar-1000")
    msg = str(ei.value)
    assert "cifar-1000" in msg and all(n in msg for n in names)


def test_unknown_split_and_option(tmp_path):
    with pytest.raises(ValueError, match="'val'.*valid splits: train, test, all"):
        load_dataset("cifar10", root=tmp_path, split="val")
    with pytest.raises(ValueError, match="label_level.*cifar10"):
        load_dataset("cifar10", root=tmp_path, label_level="fine")


def test_digits():
    ds = load_dataset("digits")
    assert ds.images.shape == (1797, 1, 8, 8) and ds.images.dtype == np.uint8
    assert ds.images.max() == 255 and ds.n_classes == 10
    assert len(load_dataset("DIGITS", split="train")) == 1797
    with pytest.raises(ValueError, match="valid splits: all, train"):
        load_dataset("digits", split="test")


def test_missing_folder_message(tmp_path):
    where = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError) as ei:
        load_dataset("cifar10", root=where)
    err = ei.value
    msg = str(err)
    assert isinstance(err, FileNotFoundError)
    assert "data_batch_1" in msg and str(where / "cifar-10-batches-py" / "data_batch_1") in msg
    assert str(where) in msg and "root=" in msg and "DEEPCLUST_DATA_ROOT" in msg
    assert "cifar-10-python.tar.gz" in msg and "https://www.cs.toronto.edu/~kriz/cifar.html" in msg


def test_missing_default_locations(monkeypatch, tmp_path):
    monkeypatch.setitem(registry.REGISTRY, "fashion-mnist", dataclasses.replace(
        registry.REGISTRY["fashion-mnist"], system_dirs=(str(tmp_path / "sys"),)))
    with pytest.raises(DatasetNotFoundError) as ei:
        load_dataset("fashion-mnist")
    msg = str(ei.value)
    home_dir = os.path.join(os.environ["HOME"], ".deepclust", "data", "fashion-mnist")
    assert home_dir in msg and str(tmp_path / "sys") in msg
    assert "train-images-idx3-ubyte.gz" in msg and "apt-get install dataset-fashion-mnist" in msg
    monkeypatch.setenv("DEEPCLUST_DATA_ROOT", str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError) as ei:
        load_dataset("fashion-mnist")
    assert str(tmp_path / "env" / "fashion-mnist" / "train-images-idx3-ubyte.gz") in str(ei.value)


def test_resolution_order(monkeypatch, tmp_path, fmt):
    home_copy = os.path.join(os.environ["HOME"], ".deepclust", "data", "cifar-10-batches-py")
    fmt.write_cifar10(registry.Path(home_copy), n_test=1)
    assert len(load_dataset("cifar10", split="test")) == 1          # ~/.deepclust/data
    fmt.write_cifar10(tmp_path / "env" / "cifar-10-batches-py", n_test=2)
    monkeypatch.setenv("DEEPCLUST_DATA_ROOT", str(tmp_path / "env"))
    assert len(load_dataset("cifar10", split="test")) == 2          # env var wins
    fmt.write_cifar10(tmp_path / "explicit", n_test=3)
    assert len(load_dataset("cifar10", root=tmp_path / "explicit", split="test")) == 3
    assert len(load_dataset("cifar10", root=str(tmp_path / "env"), split="test")) == 2


def test_dataset_status(monkeypatch, tmp_path, fmt):
    fmt.write_cifar10(tmp_path / "cifar-10-batches-py")
    rows = {r["name"]: r for r in dataset_status(root=tmp_path)}
    assert set(rows) == set(list_datasets())
    for r in rows.values():
        assert {"name", "found", "path", "hint"} <= set(r) and isinstance(r["found"], bool)
    assert rows["cifar10"]["found"] and rows["cifar10"]["path"] == str(
        tmp_path / "cifar-10-batches-py")
    assert not rows["cifar100"]["found"]
    assert rows["cifar100"]["path"] == str(tmp_path / "cifar-100-python")
    assert "cifar-100-python.tar.gz" in rows["cifar100"]["hint"]
    assert rows["digits"]["found"]
    monkeypatch.setenv("DEEPCLUST_DATA_ROOT", str(tmp_path))
    rows = {r["name"]: r for r in dataset_status()}
    assert rows["cifar10"]["found"] and not rows["stl10"]["found"]
    assert rows["stl10"]["path"] == str(tmp_path / "stl10_binary")


def test_load_dataset_records_its_arguments(tmp_path, fmt):
    fmt.write_cifar10(tmp_path / "cifar-10-batches-py")
    ds = load_dataset("CIFAR-10", root=tmp_path, split="test")
    assert ds.source == {"kind": "registry", "dataset": "cifar10", "split": "test", "data_root": str(tmp_path),
                         "options": {}, "classes": None, "imbalance": 0, "imbalance_seed": None, "subset": None,
                         "subset_seed": None, "subset_of": None}
    digits = load_dataset("digits", imbalance=2, seed=5).sample(100, 7)
    assert digits.source["options"] == {} and digits.source["data_root"] is None
    assert (digits.source["imbalance"], digits.source["imbalance_seed"]) == (2, 5)
    assert (digits.source["subset"], digits.source["subset_seed"]) == (100, 7)
    assert digits.source["subset_of"] == len(load_dataset("digits", imbalance=2, seed=5))


def test_load_source_loads_the_same_images_again(tmp_path):
    drawn = load_dataset("digits", imbalance=3, seed=1).sample(150, 4)
    write_source(tmp_path / "run", drawn)
    again = load_source(read_source(tmp_path / "run"))
    np.testing.assert_array_equal(again.images, drawn.images)
    np.testing.assert_array_equal(again.labels, drawn.labels)
    assert again.source == drawn.source and read_source(tmp_path) is None
    # a record of `deepclust bench` from before "imbalance_seed": both draws used subset_seed
    old = {"dataset": "digits", "split": "all", "subset": 150, "subset_seed": 1, "imbalance": 3, "data_root": None}
    np.testing.assert_array_equal(load_source(old).images,
                                  load_dataset("digits", imbalance=3, seed=1).sample(150, 1).images)


def test_a_class_subset_is_recorded_by_name_and_loaded_again(tmp_path):
    digits = load_dataset("digits")
    chosen = load_dataset("digits", classes=[7, "1", 4], imbalance=1, seed=2).sample(200, 3)
    assert chosen.source["classes"] == ["7", "1", "4"] and chosen.n_classes == 3
    assert set(np.unique(chosen.labels)) == {0, 1, 2}
    write_source(tmp_path / "run", chosen)
    again = load_source(read_source(tmp_path / "run"))
    np.testing.assert_array_equal(again.images, chosen.images)
    np.testing.assert_array_equal(again.labels, chosen.labels)
    only_sevens = load_dataset("digits", classes=[7, 1]).images[load_dataset("digits", classes=[7, 1]).labels == 0]
    np.testing.assert_array_equal(only_sevens, digits.images[digits.labels == 7])


def test_load_source_refuses_what_it_cannot_reload(tmp_path):
    with pytest.raises(ValueError, match="kind 'arrays' cannot be loaded again"):
        load_source(from_arrays(np.zeros((3, 2, 2), np.uint8)).source)
    changed = {**load_dataset("digits").sample(10, 0).source, "subset_of": 2000}
    with pytest.raises(ValueError, match="drawn from 2000 images of 'digits', but 1797 are loaded now"):
        load_source(changed)
    (tmp_path / "data.json").write_text("{not json")
    with pytest.raises(ValueError, match="data.json is not valid JSON"):
        read_source(tmp_path)
