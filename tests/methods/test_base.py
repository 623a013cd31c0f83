import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import deepclust
from support import Loaded, stop_after_loading, write_image_folder
from toy_method import Toy
from deepclust.methods import load_estimator


def test_sklearn_conventions(tmp_path, toy_data):
    images, labels = toy_data
    estimator = Toy(n_clusters=3, max_epochs=2, seed=0)
    assert clone(estimator).get_params() == estimator.get_params()
    predicted = estimator.fit_predict(images)
    assert predicted.shape == (len(images),) and np.array_equal(predicted, estimator.labels_)
    assert np.array_equal(estimator.predict(images), estimator.labels_)
    assert estimator.transform(images).shape == (len(images), 16)
    proba = estimator.predict_proba(images)
    assert proba.shape == (len(images), 3) and np.allclose(proba.sum(1), 1, atol=1e-5)
    estimator.save(tmp_path / "m.pt")
    loaded = load_estimator(tmp_path / "m.pt", device="cpu")
    assert isinstance(loaded, Toy)
    assert np.array_equal(loaded.predict(images), estimator.labels_)


def test_accepts_hw_arrays_and_float_images(toy_data):
    images, _ = toy_data
    labels_uint8 = Toy(n_clusters=3, max_epochs=1).fit_predict(images[:, 0])
    labels_float = Toy(n_clusters=3, max_epochs=1).fit_predict(images.astype(np.float32) / 255)
    assert np.array_equal(labels_uint8, labels_float)


@pytest.mark.parametrize("k, message", [(1, "at least 2"), (10_000, "larger than the number of samples"),
                                        (2.5, "integer")])
def test_n_clusters_out_of_range(toy_data, k, message):
    with pytest.raises(ValueError, match=message):
        Toy(n_clusters=k).fit(toy_data[0])


def test_unfitted_and_wrong_channels(toy_data):
    images, _ = toy_data
    with pytest.raises(NotFittedError, match="not fitted"):
        Toy().predict(images)
    estimator = Toy(n_clusters=3, max_epochs=1).fit(images)
    with pytest.raises(ValueError, match="1-channel"):
        estimator.predict(np.zeros((4, 3, 8, 8), dtype=np.uint8))


def test_make_and_unknown_names():
    assert isinstance(deepclust.make("toy", n_clusters=4), Toy)
    with pytest.raises(ValueError, match="unknown method 'nope'; valid methods: .*kmeans"):
        deepclust.make("nope")
    with pytest.raises(ValueError, match="unknown configuration key 'training.epochz'"):
        Toy(config={"training": {"epochz": 1}}).fit(np.zeros((20, 8, 8), dtype=np.uint8))


def test_unwritable_out_dir(tmp_path, toy_data):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="not writable"):
        Toy(n_clusters=3, out_dir=str(blocker / "run")).fit(toy_data[0])


def test_configured_split_reads_data_split():
    from deepclust.engine.config import ConfigError
    from deepclust.methods.base import configured_split

    assert configured_split({}) == "all" and configured_split({"data": {"split": "train"}}) == "train"
    with pytest.raises(ConfigError, match="data.split"):
        configured_split({"data": {"split": 3}})


@pytest.mark.skipif(not __import__("support").fashion_mnist_available(), reason="Fashion-MNIST not installed")
def test_fit_by_name_loads_the_configured_split(tmp_path):
    """``fit("fashion-mnist")`` loads the configuration's data.split (here the 10,000 test images)."""
    estimator = deepclust.make("hardreg", n_clusters=10, max_epochs=1, device="cpu", out_dir=str(tmp_path / "run"),
                               config={"data": {"split": "test"}})
    estimator.fit("fashion-mnist")
    assert estimator.metrics_["n_samples"] == 10_000
    assert __import__("json").loads((tmp_path / "run" / "data.json").read_text())["split"] == "test"


@pytest.mark.parametrize("method,preset,side", [("dchl", "paper-imagenet-dogs", 224), ("htcn", "paper-imagenet-dogs", 224),
                                                ("concurl", "paper-imagenet-dogs", 160)])
def test_a_named_image_folder_is_stored_for_the_presets_crops(tmp_path, monkeypatch, method, preset, side):
    write_image_folder(tmp_path / "imagenet-dogs" / "train", [(300, 260), (260, 300)])
    loaded = stop_after_loading(monkeypatch, "deepclust.methods.base")
    with pytest.raises(Loaded):
        deepclust.make(method, n_clusters=2, preset=preset, data_root=str(tmp_path)).fit("imagenet-dogs")
    assert loaded[0].shape == (3, side, side)


def test_out_dir_holding_a_run_needs_resume_or_overwrite(tmp_path, toy_data):
    from deepclust.engine.run_folder import RunFolderError, read_log

    images, _ = toy_data
    run = tmp_path / "run"
    Toy(n_clusters=3, max_epochs=1, out_dir=str(run)).fit(images)
    with pytest.raises(RunFolderError, match=rf"run folder {run} already holds a run .*--resume .*--overwrite"):
        Toy(n_clusters=3, max_epochs=1, out_dir=str(run)).fit(images)
    Toy(n_clusters=3, max_epochs=1, out_dir=str(run), overwrite=True).fit(images)
    assert [e["event"] for e in read_log(run / "log.jsonl")[0]].count("start") == 1  # a new log, not appended
    with pytest.raises(RunFolderError, match="nothing to resume"):
        Toy(n_clusters=3, out_dir=str(tmp_path / "empty"), resume=True).fit(images)
    with pytest.raises(ValueError, match="resume=True needs out_dir"):
        Toy(n_clusters=3, resume=True).fit(images)


def test_config_yaml_records_the_run_and_is_accepted_back(tmp_path, toy_data):
    import yaml

    images, _ = toy_data
    fitted = Toy(n_clusters=3, seed=2, max_epochs=2, max_minutes=30, out_dir=str(tmp_path / "run"),
                 config={"method": {"noise": 0.2}}).fit(images)
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert written["run"] == {"method": "toy", "preset": None, "n_clusters": 3, "seed": 2, "dataset": "array"}
    assert written["training"]["max_minutes"] == 30 and written["method"]["noise"] == 0.2
    again = Toy(n_clusters=3, config=str(tmp_path / "run" / "config.yaml"))
    assert again.resolved_config() == fitted.config_
    written["run"]["method"] = "htcn"
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(written))
    with pytest.raises(ValueError, match="a 'htcn' run's config.yaml, not one of 'toy'"):
        Toy(config=str(tmp_path / "other.yaml")).resolved_config()


def test_bad_values_name_their_key(toy_data):
    with pytest.raises(ValueError, match=r"training.amp: input should be a valid boolean, got 'maybe'"):
        Toy(config={"training": {"amp": "maybe"}}).fit(toy_data[0])
    with pytest.raises(ValueError, match=r"training.epochs: input should be greater than or equal to 1, got 0"):
        Toy(max_epochs=0).fit(toy_data[0])
    with pytest.raises(ValueError, match=r"training.max_minutes: input should be greater than 0, got -1"):
        Toy(max_minutes=-1).fit(toy_data[0])


def test_predict_refuses_images_of_another_shape(toy_data):
    images, _ = toy_data
    estimator = Toy(n_clusters=3, max_epochs=1).fit(images)
    with pytest.raises(ValueError, match=r"trained on 1-channel images of shape \(1, 8, 8\), got images of shape "
                                         r"\(1, 28, 28\)"):
        estimator.predict(np.zeros((4, 1, 28, 28), dtype=np.uint8))


def test_a_backbone_too_large_for_the_images_is_replaced_unless_named(toy_data, capsys):
    images, _ = toy_data  # 8x8: HardReg's LeNet needs 12 px
    estimator = deepclust.make("hardreg", n_clusters=3, max_epochs=1, device="cpu").fit(images)
    assert estimator.config_["backbone"] == {"name": "mlp"}
    assert ("backbone: lenet cannot take these 8x8 images (lenet: image_size=8 is too small (needs at least 12 px)); "
            "using mlp instead") in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"^backbone: lenet: image_size=8 is too small"):
        deepclust.make("hardreg", n_clusters=3, max_epochs=1, device="cpu", backbone="lenet").fit(images)


def test_the_cpu_hint_is_for_paper_sized_configurations_only():
    from support import tiny_config

    htcn = deepclust.make("htcn")
    hint = "--preset cpu-fashion-mnist (preset='cpu-fashion-mnist')"
    assert htcn._cpu_hint(None, htcn.preset_config(None)) == hint
    assert htcn._cpu_hint("paper-cifar100", htcn.preset_config("paper-cifar100")) == hint
    assert htcn._cpu_hint("cpu-fashion-mnist", htcn.preset_config("cpu-fashion-mnist")) is None
    assert htcn._cpu_hint(None, tiny_config("htcn")) is None  # a configuration sized down by the user
    hardreg = deepclust.make("hardreg")  # its CPU preset is the paper's configuration
    assert hardreg._cpu_hint(None, hardreg.preset_config(None)) is None


# --- scikit-learn's own checks and conventions ---------------------------------------------------
#: HardReg on feature vectors, small enough for scikit-learn's checks: a linear encoder to 4 codes,
#: warm-started means, 20 epochs (its blobs come out with ARI > 0.4, as check_clustering asks).
VECTOR_HARDREG = {"backbone": {"name": "mlp", "hidden_dims": [], "feature_dim": 4},
                  "method": {"nz": 4, "sigma": 1.0, "warm_start": True}, "training": {"epochs": 20, "batch_size": 16}}
#: scikit-learn's checks that set n_clusters=1 (through the attribute), which no deep method takes.
NEEDS_ONE_CLUSTER = "the check sets n_clusters=1; a deep method needs n_clusters >= 2 (its losses compare clusters)"
DEEP_EXPECTED_FAILED = {name: NEEDS_ONE_CLUSTER for name in (
    "check_dont_overwrite_parameters", "check_methods_subset_invariance", "check_fit2d_1sample",
    "check_fit2d_1feature", "check_fit2d_predict1d")}


def vector_hardreg(**params):
    return deepclust.make("hardreg", **{"n_clusters": 3, "device": "cpu", "config": VECTOR_HARDREG, **params})


def vectors(n=40, d=5, seed=0):
    rng = np.random.default_rng(seed)
    centres = 4 * rng.normal(size=(3, d))
    labels = np.arange(n) % 3
    return (centres[labels] + rng.normal(size=(n, d))).astype(np.float32), labels


def test_scikit_learn_check_estimator_on_a_deep_method():
    from support import run_sklearn_checks

    assert run_sklearn_checks(vector_hardreg(), DEEP_EXPECTED_FAILED) == 45


def test_what_the_n_clusters_1_checks_test_holds_for_two_clusters():
    """check_dont_overwrite_parameters, check_methods_subset_invariance and check_fit2d_predict1d
    with n_clusters=2."""
    X, _ = vectors()
    estimator = vector_hardreg(n_clusters=2)
    before = dict(vars(estimator))
    estimator.fit(X)
    added = set(vars(estimator)) - set(before)
    assert all(name.endswith("_") or name.startswith("_") for name in added), added
    assert all(vars(estimator)[name] is value for name, value in before.items())
    labels, embeddings = estimator.predict(X), estimator.transform(X)
    assert np.array_equal(np.concatenate([estimator.predict(X[:15]), estimator.predict(X[15:])]), labels)
    assert np.allclose(np.concatenate([estimator.transform(X[:15]), estimator.transform(X[15:])]), embeddings, atol=1e-6)
    with pytest.raises(ValueError, match="Reshape your data"):
        estimator.predict(X[0])


def test_unfitted_fit_transform_and_n_features_in(toy_data):
    images, _ = toy_data
    X, _ = vectors()
    with pytest.raises(NotFittedError):
        vector_hardreg().transform(X)
    estimator = vector_hardreg()
    embeddings = estimator.fit_transform(X)
    assert embeddings.dtype == np.float32 and embeddings.shape == (40, 4) and estimator.n_features_in_ == 5
    assert np.allclose(embeddings, estimator.transform(X), atol=1e-6)
    with pytest.raises(ValueError, match="X has 4 features, but HardReg is expecting 5 features as input"):
        estimator.predict(X[:, :4])
    with pytest.raises(ValueError, match="fitted on feature vectors of 5 values"):
        estimator.predict(images)
    toy = Toy(n_clusters=3, max_epochs=1).fit(images)
    assert toy.n_features_in_ == 64  # an 8x8 grey image: C*H*W values
    with pytest.raises(ValueError, match=r"fitted on images of shape \(1, 8, 8\)"):
        toy.predict(X)


def test_feature_vectors_keep_their_fitted_range(tmp_path):
    X, _ = vectors()
    estimator = vector_hardreg(out_dir=str(tmp_path / "run")).fit(X)
    low, high = estimator.feature_range_
    assert np.array_equal(low, X.min(0)) and np.array_equal(high, X.max(0))
    assert estimator.input_shape_ == (5, 1, 1)
    loaded = load_estimator(tmp_path / "run" / "model.pt", device="cpu")
    assert np.array_equal(loaded.feature_range_[0], low) and loaded.n_features_in_ == 5
    far = X * 100  # clipped to the fitted range, as the training vectors at its bounds
    assert np.array_equal(loaded.predict(far), estimator.predict(far))


def test_score_is_the_mean_log_probability_of_the_assigned_cluster():
    X, _ = vectors()
    estimator = vector_hardreg().fit(X)
    probabilities = estimator.predict_proba(X)
    assert estimator.score(X) == pytest.approx(float(np.mean(np.log(probabilities.max(axis=1)))), rel=1e-5)


def test_grid_search_without_scoring_uses_score():
    from sklearn.model_selection import GridSearchCV

    X, _ = vectors(n=48)
    search = GridSearchCV(vector_hardreg(), {"lr": [1e-3, 1e-2]}, cv=2).fit(X)
    assert set(search.cv_results_["mean_test_score"].round(6).tolist()) and search.best_params_["lr"] in (1e-3, 1e-2)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


@pytest.mark.parametrize("method", ["kmeans", "umap-gmm", "hardreg"])
def test_a_fitted_estimator_pickles_and_predicts_the_same(method):
    import pickle

    X, _ = vectors(n=60)
    params = {"hardreg": {"config": VECTOR_HARDREG}, "umap-gmm": {"n_neighbors": 5, "n_epochs": 20},
              "kmeans": {}}[method]
    estimator = deepclust.make(method, n_clusters=3, device="cpu", **params).fit(X)
    loaded = pickle.loads(pickle.dumps(estimator))
    assert np.array_equal(loaded.predict(X), estimator.predict(X))
    assert loaded.score(X) == pytest.approx(estimator.score(X))


def test_read_only_inputs_raise_no_warning(tmp_path, toy_data):
    import warnings

    images, _ = toy_data
    images = images.copy()
    images.setflags(write=False)
    X, _ = vectors()
    np.save(tmp_path / "x.npy", X)
    memmap = np.load(tmp_path / "x.npy", mmap_mode="r")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for estimator, data in ((Toy(n_clusters=3, max_epochs=1), images), (vector_hardreg(), memmap),
                                (deepclust.make("kmeans", n_clusters=3, device="cpu"), memmap)):
            estimator.fit(data)
            estimator.predict(data), estimator.transform(data), estimator.score(data)


def test_feature_vectors_need_a_method_without_image_augmentations():
    X, _ = vectors()
    with pytest.raises(ValueError, match=r"feature vectors of 5 values, stored as \(5, 1, 1\); they cannot be "
                                         r"resized to augmentation.image_size=224"):
        deepclust.make("htcn", n_clusters=3, device="cpu", config={"backbone": {"name": "mlp"}}, max_epochs=1).fit(X)
    with pytest.raises(ValueError, match="augmentation: augmentation 'simclr': image_size must be at least 8, got 1"):
        deepclust.make("htcn", n_clusters=3, device="cpu", max_epochs=1,
                       config={"backbone": {"name": "mlp"}, "augmentation": {"image_size": None}}).fit(X)


# --- their own backbone and weights -----------------------------------------------------------------
class TinyConvNet(torch.nn.Module):
    """A user's backbone: (B, 1, H, W) -> (B, 6), with BatchNorm."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 6, 3)
        self.norm = torch.nn.BatchNorm2d(6)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.pool(torch.relu(self.norm(self.conv(x)))).flatten(1)


def small_hardreg(**params):
    return deepclust.make("hardreg", n_clusters=3, device="cpu", max_epochs=1,
                          config={"method": {"nz": 4}, "training": {"batch_size": 32}}, **params)


def test_a_module_as_backbone_is_trained_as_a_copy_and_saved_with_the_estimator(tmp_path, toy_data):
    images, _ = toy_data
    given = TinyConvNet()
    untouched = {key: value.clone() for key, value in given.state_dict().items()}
    estimator = small_hardreg(backbone=given, out_dir=str(tmp_path / "run")).fit(images)
    assert estimator.config_["backbone"] == {"name": "module"}
    trained = estimator.model_.encoder[0].network  # TinyConvNet's 6 features -> Linear(6, nz=4)
    assert isinstance(trained, TinyConvNet) and trained is not given
    assert all(torch.equal(value, untouched[key]) for key, value in given.state_dict().items())
    assert not torch.equal(trained.conv.weight, given.conv.weight)
    loaded = load_estimator(tmp_path / "run" / "model.pt", device="cpu")
    assert np.array_equal(loaded.predict(images), estimator.predict(images))
    assert "module" in (tmp_path / "run" / "config.yaml").read_text()


def test_a_module_that_does_not_give_features_is_a_clear_error(toy_data):
    with pytest.raises(ValueError, match=r"backbone: backbone 'module Conv2d' cannot take input .*features \(B, D\)"):
        small_hardreg(backbone=torch.nn.Conv2d(1, 4, 3)).fit(toy_data[0])


def sixteen_pixel_blobs():
    from toy_method import blobs

    return blobs(size=16)


def test_pretrained_weights_with_a_frozen_backbone_stay_as_loaded(tmp_path):
    from deepclust.backbones import build_backbone
    from deepclust.engine.runtime import seed_everything

    images, _ = sixteen_pixel_blobs()
    torch.manual_seed(5)
    pretrained = build_backbone("small_cnn", 1, 16, width=0.25)
    pretrained.features[1].running_var.fill_(2.0)
    torch.save({"state_dict": pretrained.state_dict()}, tmp_path / "pretrained.pt")
    config = {"backbone": {"name": "small_cnn", "width": 0.25, "weights": str(tmp_path / "pretrained.pt"),
                           "freeze": True}, "method": {"nz": 4}, "training": {"batch_size": 32}}
    estimator = deepclust.make("hardreg", n_clusters=3, device="cpu", max_epochs=1, config=config,
                               out_dir=str(tmp_path / "run"))
    seed_everything(estimator.seed)  # as fit does before building the network
    initial = estimator._build_model(estimator.resolved_config(), 3, (1, 16, 16), None, None)
    estimator.fit(images)
    backbone, head = estimator.model_.encoder  # small_cnn's 64 features -> Linear(64, nz=4), trained
    for key, value in pretrained.state_dict().items():  # parameters and BatchNorm statistics as loaded
        assert torch.equal(backbone.state_dict()[key], value), key
    assert not torch.equal(head.weight, initial.encoder[1].weight)
    assert not torch.equal(estimator.model_.means, initial.means)
    (tmp_path / "pretrained.pt").unlink()  # model.pt and the checkpoint hold the weights
    loaded = load_estimator(tmp_path / "run" / "model.pt", device="cpu")
    assert np.array_equal(loaded.predict(images), estimator.predict(images))
    resumed = deepclust.make("hardreg", n_clusters=3, device="cpu", max_epochs=2, out_dir=str(tmp_path / "run"),
                             resume=True).fit(images)
    assert resumed.metrics_["epochs"] == 2
    with pytest.raises(ValueError, match="backbone: weights: no file"):
        deepclust.make("hardreg", n_clusters=3, device="cpu", max_epochs=1, config=config).fit(images)


def test_freeze_n_trains_the_last_stages_only(tmp_path):
    from deepclust.engine.runtime import seed_everything

    images, _ = sixteen_pixel_blobs()
    config = {"backbone": {"name": "small_cnn", "width": 0.25, "freeze": 1}, "method": {"nz": 4},
              "training": {"batch_size": 32}}
    estimator = deepclust.make("hardreg", n_clusters=3, device="cpu", max_epochs=1, config=config)
    seed_everything(estimator.seed)
    initial = estimator._build_model(estimator.resolved_config(), 3, (1, 16, 16), None, None)
    estimator.fit(images)
    before, after = initial.encoder[0], estimator.model_.encoder[0]
    assert torch.equal(after.features[0].weight, before.features[0].weight)  # stage 1 of 4: frozen
    assert not torch.equal(after.features[9].weight, before.features[9].weight)  # the last stage trains
    with pytest.raises(ValueError, match=r"backbone: freeze must be .* 1\.\.4 for backbone 'small_cnn'"):
        deepclust.make("hardreg", n_clusters=3, device="cpu", max_epochs=1,
                       config={**config, "backbone": {**config["backbone"], "freeze": 9}}).fit(images)


def test_a_registered_backbone_is_used_by_name(monkeypatch, toy_data):
    import deepclust.backbones as backbones

    monkeypatch.setattr(backbones, "_REGISTRY", dict(backbones._REGISTRY))
    backbones.register_backbone("tiny_conv", lambda in_channels, image_size: TinyConvNet())
    estimator = small_hardreg(backbone="tiny_conv").fit(toy_data[0])
    assert isinstance(estimator.model_.encoder[0].network, TinyConvNet)
