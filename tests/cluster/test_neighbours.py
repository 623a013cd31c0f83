import math

import pytest
import torch

from deepclust.cluster.neighbours import nearest_neighbours


def naive_neighbours(points, k):
    def cosine(a, b):
        return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
    rows = []
    for i, p in enumerate(points):
        others = sorted((j for j in range(len(points)) if j != i), key=lambda j: -cosine(p, points[j]))
        rows.append(others[:k])
    return rows


@pytest.mark.parametrize("chunk_size", [None, 1, 3, 100])
def test_matches_a_naive_loop_in_any_chunking(chunk_size):
    points = torch.randn(11, 5, generator=torch.Generator().manual_seed(1))
    found = nearest_neighbours(points, 4, chunk_size=chunk_size)
    assert found.tolist() == naive_neighbours(points.tolist(), 4)


def test_a_point_is_never_its_own_neighbour_even_among_duplicates():
    points = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    found = nearest_neighbours(points, 2)
    assert all(i not in row for i, row in enumerate(found.tolist()))
    assert found[0, 0] == 1 and found[1, 0] == 0


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="shape"):
        nearest_neighbours(torch.zeros(4), 1)
    with pytest.raises(ValueError, match="k=4"):
        nearest_neighbours(torch.zeros(4, 2), 4)
    with pytest.raises(ValueError, match="k=0"):
        nearest_neighbours(torch.zeros(4, 2), 0)
