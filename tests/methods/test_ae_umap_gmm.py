"""ae-umap-gmm (N2D): the autoencoder's architecture and loss, a tiny fit on digits that beats
chance, save/load/predict, the UMAP + GMM options, and a clear error without umap-learn before
any training."""
import sys

import numpy as np
import pytest
import torch
from torch import nn

import deepclust
from deepclust.cluster.umap_gmm import UmapGmm
from deepclust.data import load_dataset
from deepclust.engine.model import Batch
from deepclust.methods import get_method, load_estimator
from deepclust.methods.ae_umap_gmm import AutoencoderModel

TINY = {"method": {"hidden_dims": [64, 64]}, "inference": {"n_components": 5, "n_epochs": 50},
        "training": {"epochs": 15, "batch_size": 64}}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits").sample(400, 0)


def test_default_network_is_n2d_784_500_500_2000_k_with_a_mirrored_decoder():
    config = get_method("ae-umap-gmm").preset_config("cpu-fashion-mnist")
    model = AutoencoderModel(config, 10, (1, 28, 28))
    linear = lambda net: [(m.in_features, m.out_features) for m in net if isinstance(m, nn.Linear)]  # noqa: E731
    assert linear(model.encoder) == [(784, 500), (500, 500), (500, 2000), (2000, 10)]
    assert linear(model.decoder) == [(10, 2000), (2000, 500), (500, 500), (500, 784)]
    for net in (model.encoder, model.decoder):
        assert isinstance(net[-1], nn.Linear)  # linear code, linear reconstruction
        assert sum(isinstance(m, nn.ReLU) for m in net) == 3 and not any(isinstance(m, nn.BatchNorm1d) for m in net)
    assert all(not m.bias.detach().any() for m in model.modules() if isinstance(m, nn.Linear))
    assert config["training"]["batch_size"] == 256 and config["optimizer"]["name"] == "adam"
    assert get_method("ae-umap-gmm").preset_config(None)["training"]["epochs"] == 1000
    assert config["inference"] == {"n_components": 10, "n_neighbors": 20, "min_dist": 0.0, "metric": "euclidean",
                                   "n_epochs": None, "covariance_type": "full", "n_init": 1, "gmm_max_iter": 100}


def test_training_step_is_the_reconstruction_mse_of_the_flattened_image():
    config = get_method("ae-umap-gmm").preset_config(None)
    model = AutoencoderModel(deepclust.engine.deep_merge(config, {"method": {"hidden_dims": [8], "code_dim": 3}}),
                             4, (1, 8, 8))
    images = torch.rand(5, 1, 8, 8)
    outputs = model.training_step(Batch(images, torch.arange(5), 0, 0))
    flat = images.flatten(1)
    expected = ((model.decoder(model.encoder(flat)) - flat) ** 2).mean()
    assert torch.allclose(outputs["loss"], expected) and set(outputs) == {"loss", "reconstruction"}
    assert model.embed(images).shape == (5, 3)


def test_tiny_fit_on_digits_beats_chance_and_saves(digits, tmp_path):
    model = deepclust.make("ae-umap-gmm", n_clusters=10, config=TINY, device="cpu", out_dir=str(tmp_path))
    labels = model.fit_predict(digits)
    assert model.metrics_["acc"] > 0.4 and model.metrics_["epochs"] == 15  # chance: about 0.1
    assert isinstance(model.model_.clustering, UmapGmm) and model.model_.clustering.n_components == 5
    assert model.transform(digits.images[:3]).shape == (3, 10)  # codes: code_dim = K
    predicted = model.predict(digits)
    assert np.mean(predicted == labels) > 0.9
    assert not hasattr(model, "predict_proba")  # no cluster head
    loaded = load_estimator(tmp_path / "model.pt", device="cpu")
    assert np.array_equal(loaded.predict(digits), predicted) and np.array_equal(loaded.labels_, labels)
    assert (tmp_path / "checkpoints" / "last.pt").is_file() and (tmp_path / "config.yaml").is_file()
    # score: the mixture's mean log-likelihood of the images' UMAP coordinates
    clustering = model.model_.clustering
    coordinates = clustering.transform(model.transform(digits.images[:40]))
    assert model.score(digits.images[:40]) == pytest.approx(clustering.gmm_.score(coordinates), rel=1e-4)


def test_bad_inference_options_fail_before_training(digits, tmp_path):
    with pytest.raises(ValueError, match="unknown configuration key 'inference.neighbours'"):
        deepclust.make("ae-umap-gmm", n_clusters=10, config={**TINY, "inference": {"neighbours": 3}},
                       device="cpu").fit(digits)
    with pytest.raises(ValueError, match="covariance_type must be one of full"):
        deepclust.make("ae-umap-gmm", n_clusters=10, config={**TINY, "inference": {"covariance_type": "round"}},
                       device="cpu", out_dir=str(tmp_path)).fit(digits)
    assert not (tmp_path / "checkpoints").exists()


def test_without_umap_learn_fit_fails_before_training(digits, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "umap", None)
    with pytest.raises(ImportError, match=r"pip install 'deepclust\[baselines\]'"):
        deepclust.make("ae-umap-gmm", n_clusters=10, config=TINY, device="cpu", out_dir=str(tmp_path)).fit(digits)
    assert not (tmp_path / "checkpoints").exists()
