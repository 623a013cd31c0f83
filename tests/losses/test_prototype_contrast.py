"""HaDis's prototypical contrast against hand values and a naive loop written here."""
import math

import pytest
import torch

from deepclust.losses import PrototypeContrastLoss
from deepclust.losses.prototype_contrast import batch_prototypes
from support import on_circle, unit


# fidelity test 2 of docs/methods/hadis.md
def test_prototypes_are_normalised_means_of_normalised_embeddings():
    embeddings = torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, -5.0]])
    labels = torch.tensor([0, 0, 1, 2])
    prototypes = batch_prototypes(embeddings, labels, 4)
    mean0 = [(1.0 + 0.0) / 2, (0.0 + 1.0) / 2]
    assert prototypes[0].tolist() == pytest.approx(unit(*mean0), abs=1e-6)
    assert prototypes[1].tolist() == pytest.approx(unit(1.0, 1.0), abs=1e-6)
    assert prototypes[2].tolist() == pytest.approx([0.0, -1.0], abs=1e-6)
    assert prototypes[3].tolist() == [0.0, 0.0]          # absent cluster


def test_proto_hand_formula_one_sample_per_class_orthonormal():
    # one sample per class, μ^q = μ^k orthonormal: pos = 1/τ = 2, every negative 0
    embeddings = torch.eye(3)
    loss = PrototypeContrastLoss(3, temperature=0.5)(embeddings, embeddings.clone(), torch.arange(3))
    assert loss.item() == pytest.approx(-2.0 + math.log(math.exp(2.0) + 2.0), abs=1e-5)


def test_proto_hand_formula_with_several_samples_per_class():
    # class c holds two copies of e_c, μ^q = μ^k; prototypes at 0°, 60°, 180°
    angles = [0, 60, 180]
    online = torch.tensor([on_circle(a) for a in angles for _ in range(2)])
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    loss = PrototypeContrastLoss(3, temperature=0.5)(online, 2.0 * online, labels)
    expected = 0.0
    for c, angle in enumerate(angles):
        negatives = [math.cos(math.radians(angle - other)) / 0.5 for o, other in enumerate(angles) if o != c]
        expected += -2.0 + math.log(math.exp(2.0) + sum(math.exp(n) for n in negatives))
    assert loss.item() == pytest.approx(expected / 3, abs=1e-5)


def naive_proto(online, target, labels, n_clusters, tau=0.5):
    def prototype(rows):
        rows = [unit(*r) for r in rows]
        mean = [sum(col) / len(rows) for col in zip(*rows)]
        return unit(*mean)
    present = sorted(set(labels))
    mu_q = {c: prototype([online[i] for i in range(len(labels)) if labels[i] == c]) for c in present}
    mu_k = {c: prototype([target[i] for i in range(len(labels)) if labels[i] == c]) for c in present}
    total = 0.0
    for c in present:
        pos = sum(a * b for a, b in zip(mu_q[c], mu_k[c])) / tau
        terms = [pos]
        for other in range(n_clusters):
            if other == c:
                continue
            if other in present:
                terms.append(sum(a * b for a, b in zip(mu_q[c], mu_q[other])) / tau)
            else:
                terms.append(-10.0)
        total += -pos + math.log(sum(math.exp(v) for v in terms))
    return total / len(present)


def test_proto_random_batch_matches_naive_loop():
    generator = torch.Generator().manual_seed(2)
    online, target = torch.randn(12, 5, generator=generator), torch.randn(12, 5, generator=generator)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 0, 5, 5])    # cluster 4 absent
    loss = PrototypeContrastLoss(6, temperature=0.5)(online, target, labels)
    expected = naive_proto(online.tolist(), target.tolist(), labels.tolist(), 6)
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_proto_absent_clusters_contribute_nothing():
    generator = torch.Generator().manual_seed(4)
    online, target = torch.randn(9, 4, generator=generator), torch.randn(9, 4, generator=generator)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    three = PrototypeContrastLoss(3)(online, target, labels)
    # the same batch among 6 clusters (3, 4, 5 absent): no row for them, their columns at −10,
    # which adds only exp(−10) per absent cluster to each denominator
    six = PrototypeContrastLoss(6)(online, target, labels)
    assert six.item() == pytest.approx(three.item(), abs=3 * math.exp(-10))
    assert six.item() == pytest.approx(naive_proto(online.tolist(), target.tolist(), labels.tolist(), 6), abs=1e-5)
    # relabelling which clusters are absent changes nothing
    shifted = PrototypeContrastLoss(6)(online, target, labels + 3)
    assert shifted.item() == pytest.approx(six.item(), abs=1e-6)
    # the gradient reaches only the online embeddings, not through the absent prototypes
    online.requires_grad_(True)
    PrototypeContrastLoss(6)(online, target, labels).backward()
    assert torch.isfinite(online.grad).all() and online.grad.abs().sum() > 0
