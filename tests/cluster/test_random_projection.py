"""ConCURL's fixed Gaussian random projections (fidelity test 2 of docs/methods/concurl.md)."""
import pytest
import torch

from deepclust.cluster.random_projection import RandomProjections, gaussian_random_matrix


def test_projections_reproducible_and_seeded_per_matrix():
    a, b = RandomProjections(4, 8, 16, seed=3), RandomProjections(4, 8, 16, seed=3)
    assert torch.equal(a.matrices, b.matrices)
    for t in range(4):  # matrix t is the matrix of seed 3 + t
        assert torch.equal(a.matrices[t], gaussian_random_matrix(8, 16, 3 + t))
    assert not torch.equal(a.matrices[0], a.matrices[1])
    assert not torch.equal(RandomProjections(4, 8, 16, seed=4).matrices[0], a.matrices[0])


def test_entries_have_variance_one_over_p():
    p = 32
    r = gaussian_random_matrix(p, 20_000, seed=0)
    assert r.mean().item() == pytest.approx(0.0, abs=3e-3)
    assert r.var().item() == pytest.approx(1.0 / p, rel=0.02)


def test_redraw_and_state_dict():
    projections = RandomProjections(3, 4, 5, seed=0)
    first = projections.matrices.clone()
    projections.redraw(3)
    assert torch.equal(projections.matrices[0], gaussian_random_matrix(4, 5, 3))
    assert not torch.equal(projections.matrices, first)
    restored = RandomProjections(3, 4, 5, seed=0)
    restored.load_state_dict(projections.state_dict())
    assert torch.equal(restored.matrices, projections.matrices)
    with pytest.raises(ValueError, match="n_transforms"):
        RandomProjections(0, 4, 5)
