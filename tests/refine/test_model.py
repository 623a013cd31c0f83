import math

import pytest
import torch
from torch import nn

from deepclust.cluster import assign
from deepclust.engine.config import ConfigError, deep_merge, with_shared_sections
from deepclust.engine.model import Batch, TrainingContext
from deepclust.methods import get_method
from deepclust.refine.model import CosineHead, RefinedModel, parameters_used_by, strong_augmentation
from support import tiny_config
from toy_method import TOY_CONFIG, ToyModel, blobs

NO_VIEWS = {"refine": {"augmentation": {"name": "none"}}}


def context_for(images: torch.Tensor) -> TrainingContext:
    """A one-process context over float ``images`` (what the trainer gives the hooks)."""
    return TrainingContext(device=torch.device("cpu"), n_samples=len(images), steps_per_epoch=1, total_steps=1,
                           max_epochs=1, iterate_dataset=lambda: iter([(images, torch.arange(len(images)))]),
                           map_dataset=lambda fn: fn(images).float())


def toy_refined(*overrides):
    config = with_shared_sections(TOY_CONFIG)
    for override in (NO_VIEWS, *overrides):
        config = deep_merge(config, override)
    return RefinedModel(ToyModel(config, 3, (1, 8, 8)))


def test_parameters_used_by_finds_the_embedding_path_and_restores_flags():
    module = nn.ModuleDict({"used": nn.Linear(3, 2), "unused": nn.Linear(3, 2), "frozen": nn.Linear(2, 2)})
    module["frozen"].requires_grad_(False)
    used = parameters_used_by(module, lambda x: module["frozen"](module["used"](x)), torch.zeros(2, 3))
    assert {id(p) for p in used} == {id(p) for p in [*module["used"].parameters(), *module["frozen"].parameters()]}
    assert not any(p.requires_grad for p in module["frozen"].parameters())
    assert all(p.grad is None for p in module.parameters())


def test_cosine_head_logits_and_initialisation():
    head = CosineHead(2, 3, temperature=0.5)
    head.initialise(torch.tensor([[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]]), torch.tensor([True, True, False]))
    kept = head.weight[2].clone()
    logits = head(torch.tensor([[3.0, 4.0]]))
    assert logits[0, :2].tolist() == pytest.approx([0.6 / 0.5, 0.8 / 0.5])
    assert torch.equal(head.weight[2], kept)  # a cluster without selected images keeps its prototype
    with pytest.raises(ConfigError, match="refine.temperature must be a number > 0"):
        CosineHead(2, 3, temperature=0)


def test_strong_views_take_data_dependent_defaults_and_name_the_section():
    grey = strong_augmentation(with_shared_sections({})["refine"]["augmentation"], 28, 1)
    colour = strong_augmentation(with_shared_sections({})["refine"]["augmentation"], 32, 3)
    assert grey.config["crop_scale"] == (0.4, 1.0) and grey.config["jitter"][:2] == pytest.approx((0.4, 0.4))
    assert colour.config["crop_scale"] == (0.2, 1.0) and colour.config["jitter"] == pytest.approx((0.8, 0.8, 0.8, 0.2))
    with pytest.raises(ConfigError, match="refine.augmentation: augmentation 'propos' does not accept .*strength"):
        strong_augmentation({"name": "propos", "strength": 1.0}, 28, 1)


def test_htcn_trains_its_target_network_and_a_new_head():
    config = tiny_config("htcn", {"augmentation": {"image_size": 16}, **NO_VIEWS})
    model = RefinedModel(get_method("htcn").model_class(config, 4, (1, 16, 16)))
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trained and all(name.startswith(("base.target.backbone.", "base.target.projector.", "head."))
                           for name in trained)
    assert "head.weight" in trained and not any(name.startswith("base.online.") for name in trained)
    assert not any(name.startswith("base.target.cluster_head.") for name in trained)  # embed stops before it


def test_a_kmeans_method_starts_from_soft_assignments_to_its_centroids():
    config = tiny_config("hadis", {"augmentation": {"image_size": 16}, **NO_VIEWS})
    base = get_method("hadis").model_class(config, 3, (1, 16, 16)).eval()
    images = torch.rand(30, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        embeddings = base.embed(images)
    base.centroids = embeddings[[0, 10, 20]].clone()
    model = RefinedModel(base)
    model.on_fit_start(context_for(images))
    assert torch.equal(model.pseudo_labels, assign(embeddings, base.centroids, metric="cosine"))
    # the head starts from the unit class means of the selected images' unit embeddings
    for k in range(3):
        chosen = [i for i in range(30) if model.selected[i] and model.pseudo_labels[i] == k]
        mean = [sum(embeddings[i, d].item() / embeddings[i].norm().item() for i in chosen) for d in range(16)]
        norm = math.sqrt(sum(v * v for v in mean))
        assert model.head.weight[k].tolist() == pytest.approx([v / norm for v in mean], abs=1e-5)


def test_training_step_is_the_cross_entropy_of_the_selected_images():
    images, _ = blobs(8, 3)
    images = torch.from_numpy(images).float() / 255
    model = toy_refined({"refine": {"selection": {"fraction": 0.5}, "temperature": 1.0}})
    model.on_fit_start(context_for(images))
    model.eval()  # deterministic BatchNorm; views are the images themselves ("none")
    batch = Batch(images=images[:12], indices=torch.arange(12), epoch=0, step=0)
    outputs = model.training_step(batch)
    with torch.no_grad():
        probabilities = model.cluster_probabilities(images[:12]).tolist()
    chosen = [i for i in range(12) if model.selected[i]]
    expected = sum(-math.log(probabilities[i][int(model.pseudo_labels[i])]) for i in chosen) / len(chosen)
    assert outputs["loss"].item() == pytest.approx(expected, rel=1e-5)
    assert outputs["selected"].item() == pytest.approx(len(chosen) / 12)


def test_later_epochs_select_again_from_the_heads_predictions():
    images = torch.from_numpy(blobs(8, 3)[0]).float() / 255
    model = toy_refined()
    context = context_for(images)
    model.on_fit_start(context)
    first = model.pseudo_labels.clone()
    model.on_epoch_start(0, context)
    assert torch.equal(model.pseudo_labels, first)  # epoch 0 keeps the method's own pseudo-labels
    with torch.no_grad():
        model.head.weight.copy_(model.head.weight.roll(1, dims=0))
    model.on_epoch_start(1, context)
    with torch.no_grad():
        assert torch.equal(model.pseudo_labels, model.eval().cluster_probabilities(images).argmax(1))


class OtherClustering(ToyModel):
    """A method whose labels come from another clustering of the embeddings (as UMAP + GMM)."""

    label_source = "custom"

    def predict_labels(self, images):
        return images.flatten(1).argmax(dim=1) // 18 % 3  # blobs: the bright square of class l starts at 18 l


def test_another_clustering_starts_from_soft_assignments_to_its_cluster_means():
    from deepclust.cluster import soft_assign

    config = deep_merge(with_shared_sections(TOY_CONFIG), NO_VIEWS)
    base = OtherClustering(config, 3, (1, 8, 8)).eval()
    images = torch.from_numpy(blobs(8, 3)[0]).float() / 255
    model = RefinedModel(base)
    model.on_fit_start(context_for(images))
    with torch.no_grad():
        embeddings, labels = base.embed(images), base.predict_labels(images)
    units = embeddings / embeddings.norm(dim=1, keepdim=True)
    means = torch.stack([units[labels == k].mean(0) for k in range(3)])
    expected = soft_assign(embeddings, means, metric="cosine", temperature=model.head.temperature).argmax(1)
    assert torch.equal(model.pseudo_labels, expected)


def test_neighbour_step_is_scans_loss_between_each_image_and_a_drawn_neighbour():
    images, _ = blobs(8, 3)
    images = torch.from_numpy(images).float() / 255
    model = toy_refined({"refine": {"objective": "neighbours", "neighbours": {"k": 2, "entropy_weight": 1.0}}})
    model.on_fit_start(context_for(images))
    assert model.neighbours.shape == (len(images), 2)
    assert all(i not in row for i, row in enumerate(model.neighbours.tolist()))
    model.eval()
    generator = torch.Generator().manual_seed(3)
    batch = Batch(images=images[:12], indices=torch.arange(12), epoch=0, step=0,
                  generator=torch.Generator().manual_seed(3), fetch=lambda indices: images[indices])
    outputs = model.training_step(batch)
    columns = torch.randint(2, (12,), generator=generator)
    partners = model.neighbours[torch.arange(12), columns]
    with torch.no_grad():
        anchors = model.cluster_probabilities(images[:12]).tolist()
        neighbours = model.cluster_probabilities(images[partners]).tolist()
    consistency = -sum(math.log(sum(a * b for a, b in zip(anchors[i], neighbours[i]))) for i in range(12)) / 12
    marginal = [sum(row[k] for row in anchors) / 12 for k in range(3)]
    gap = math.log(3) + sum(m * math.log(m) for m in marginal)
    assert outputs["entropy_gap"].item() == pytest.approx(gap, rel=1e-4, abs=1e-6)
    assert outputs["loss"].item() == pytest.approx(consistency + gap, rel=1e-4)


def test_neighbour_step_needs_the_trainers_fetch_and_k_below_the_dataset():
    images, _ = blobs(8, 3)
    images = torch.from_numpy(images).float() / 255
    model = toy_refined({"refine": {"objective": "neighbours", "neighbours": {"k": 2}}})
    model.on_fit_start(context_for(images))
    with pytest.raises(RuntimeError, match="fetch"):
        model.training_step(Batch(images=images[:4], indices=torch.arange(4), epoch=0, step=0))
    too_many = toy_refined({"refine": {"objective": "neighbours", "neighbours": {"k": len(images)}}})
    with pytest.raises(ConfigError, match=f"refine.neighbours.k must be below the number of images \\({len(images)}\\)"):
        too_many.on_fit_start(context_for(images))


def test_bad_objective_or_neighbour_options_are_named():
    with pytest.raises(ConfigError, match="refine.objective must be one of self_label, neighbours"):
        toy_refined({"refine": {"objective": "scan"}})
    with pytest.raises(ConfigError, match="refine.neighbours.space"):
        toy_refined({"refine": {"neighbours": {"space": "pixels"}}})
