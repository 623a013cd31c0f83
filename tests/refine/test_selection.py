import math

import pytest
import torch

from deepclust.engine.config import ConfigError
from deepclust.refine.selection import balanced_selection, class_means


def naive_selection(probabilities, rule, fraction, threshold):
    """Per-cluster python sort: argmax label, count from the cluster sizes, most confident first."""
    rows = probabilities.tolist()
    labels = [row.index(max(row)) for row in rows]
    confidence = [max(row) for row in rows]
    n_clusters = len(rows[0])
    sizes = [labels.count(k) for k in range(n_clusters)]
    base = min(size for size in sizes if size) if rule == "smallest" else len(rows) / n_clusters
    count = max(1, math.floor(fraction * base))
    selected = set()
    for k in range(n_clusters):
        members = [i for i in range(len(rows)) if labels[i] == k and confidence[i] >= threshold]
        members.sort(key=lambda i: (-confidence[i], i))
        selected.update(members[:count])
    return labels, selected, count


def test_hand_example():
    probabilities = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.05, 0.95], [0.45, 0.55]])
    selection = balanced_selection(probabilities, rule="smallest", fraction=1.0)
    assert selection.per_cluster == 2 and selection.labels.tolist() == [0, 0, 0, 0, 1, 1]
    assert selection.selected.tolist() == [True, True, False, False, True, True]
    strict = balanced_selection(probabilities, rule="smallest", fraction=1.0, threshold=0.85)
    assert strict.selected.tolist() == [True, False, False, False, True, False]
    capped = balanced_selection(probabilities, rule="mean", fraction=1.0)  # c = 6 / 2 = 3
    assert capped.per_cluster == 3 and capped.selected.tolist() == [True, True, True, False, True, True]


@pytest.mark.parametrize("rule", ["smallest", "mean"])
@pytest.mark.parametrize("fraction, threshold", [(0.5, 0.0), (0.3, 0.4), (1.0, 0.0), (0.01, 0.0)])
def test_matches_a_naive_per_cluster_sort(rule, fraction, threshold):
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(80, 5, generator=generator) * 2
    logits[:, 4] -= 1.5  # an uneven, smaller cluster
    probabilities = logits.softmax(dim=1)
    probabilities[40:50] = probabilities[0]  # equal confidences: ties go in index order
    selection = balanced_selection(probabilities, rule=rule, fraction=fraction, threshold=threshold)
    labels, selected, count = naive_selection(probabilities, rule, fraction, threshold)
    assert selection.labels.tolist() == labels and selection.per_cluster == count
    assert set(torch.nonzero(selection.selected).flatten().tolist()) == selected
    assert selection.confidence.tolist() == pytest.approx(probabilities.max(1).values.tolist())


def test_an_empty_cluster_does_not_empty_the_selection():
    probabilities = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.2, 0.8, 0.0], [0.3, 0.7, 0.0]])
    selection = balanced_selection(probabilities, rule="smallest", fraction=0.5)
    assert selection.per_cluster == 1 and selection.selected.tolist() == [True, False, True, False]


@pytest.mark.parametrize("options, message", [
    ({"rule": "largest"}, "refine.selection.rule must be one of smallest, mean"),
    ({"fraction": 0.0}, r"refine.selection.fraction must be a number in \(0, 1\]"),
    ({"threshold": 1.5}, r"refine.selection.threshold must be a number in \[0, 1\]"),
])
def test_bad_options_name_the_key(options, message):
    with pytest.raises(ConfigError, match=message):
        balanced_selection(torch.full((4, 2), 0.5), **options)


def test_class_means_are_the_unit_means_of_the_selected_unit_embeddings():
    embeddings = torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0], [5.0, 5.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 1, 2])
    selected = torch.tensor([True, True, True, False, False])
    means, present = class_means(embeddings, labels, selected, 3)
    assert present.tolist() == [True, True, False]
    # cluster 0: mean of (1, 0) and (0, 1), normalised; cluster 1: (1, 1)/√2 alone; cluster 2: nothing
    half = 1 / math.sqrt(2)
    assert means.tolist() == [pytest.approx([half, half]), pytest.approx([half, half]), [0.0, 0.0]]
