"""ConCURL exemplar consistency: NCE loss and memory bank against naive computations (fidelity test 4
of docs/methods/concurl.md)."""
import math

import pytest
import torch
import torch.nn.functional as F

from deepclust.losses import NCEMemoryBank
from deepclust.losses.nce import nce_loss


def unit_rows(n, d, seed):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64), dim=1)


def naive_nce(probabilities, n_samples, eps=1e-7):
    """−(1/B) Σ_i [log P(i)/(P(i)+kPn+eps) + Σ_noise log kPn/(P(j)+kPn+eps)], with Python loops."""
    rows = probabilities.tolist()
    k = len(rows[0]) - 1
    kpn = k / n_samples
    total = 0.0
    for row in rows:
        total += math.log(row[0] / (row[0] + kpn + eps))
        for p in row[1:]:
            total += math.log(kpn / (p + kpn + eps))
    return -total / len(rows)


def test_nce_loss_matches_naive_loop():
    probabilities = torch.rand(5, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1e-2
    assert nce_loss(probabilities, 300).item() == pytest.approx(naive_nce(probabilities, 300), rel=1e-10)


def test_nce_loss_hand_value():
    # B = 1, k = 1, N = 2: k·P_n = 0.5; P(own) = 0.5, P(noise) = 0.5 → −[log(0.5/1) + log(0.5/1)] = 2 log 2
    assert nce_loss(torch.tensor([[0.5, 0.5]], dtype=torch.float64), 2, eps=0.0).item() == pytest.approx(2 * math.log(2))


def test_probabilities_and_loss_against_naive_with_fixed_noise():
    n, d, k, tau = 20, 6, 4, 0.5
    bank = NCEMemoryBank(d, n_noise=k, temperature=tau, momentum=0.5).double()
    bank.memory = unit_rows(n, d, 1)
    e = unit_rows(3, d, 2)
    indices = torch.tensor([4, 0, 17])
    noise = torch.tensor([[1, 2, 3, 4], [19, 19, 5, 0], [7, 8, 9, 10]])
    memory = bank.memory.tolist()
    exps = []  # exp(e_i · M_j / τ) for own row then noise rows
    for b in range(3):
        row = []
        for j in [int(indices[b])] + noise[b].tolist():
            dot = sum(e[b, c].item() * memory[j][c] for c in range(d))
            row.append(math.exp(dot / tau))
        exps.append(row)
    z = sum(sum(row) for row in exps) / (3 * (k + 1)) * n  # Z = mean · N, from this first batch
    expected = torch.tensor([[v / z for v in row] for row in exps], dtype=torch.float64)

    probabilities = bank.probabilities(e, indices, noise)
    assert torch.allclose(probabilities, expected, rtol=1e-10)
    assert bank.normaliser.item() == pytest.approx(z, rel=1e-10)
    assert bank(e, indices, noise).item() == pytest.approx(naive_nce(expected, n), rel=1e-9)


def test_shared_noise_scores_every_sample_against_the_same_noise_rows():
    n, d, k, tau = 20, 6, 4, 0.5
    bank = NCEMemoryBank(d, n_noise=k, temperature=tau, shared_noise=True).double()
    bank.memory = unit_rows(n, d, 1)
    e = unit_rows(3, d, 2)
    indices = torch.tensor([4, 0, 17])
    noise = [1, 19, 5, 5]
    memory = bank.memory.tolist()
    exps = [[math.exp(sum(e[b, c].item() * memory[j][c] for c in range(d)) / tau) for j in [int(indices[b])] + noise]
            for b in range(3)]
    z = sum(sum(row) for row in exps) / (3 * (k + 1)) * n
    expected = torch.tensor([[v / z for v in row] for row in exps], dtype=torch.float64)

    assert torch.allclose(bank.probabilities(e, indices, torch.tensor(noise)), expected, rtol=1e-10)
    per_sample = NCEMemoryBank(d, n_noise=k, temperature=tau).double()
    per_sample.memory = bank.memory.clone()
    assert torch.allclose(per_sample.probabilities(e, indices, torch.tensor([noise] * 3)), expected, rtol=1e-10)


def test_shared_noise_draws_one_set_of_rows_per_batch_from_the_generator():
    def fresh():
        bank = NCEMemoryBank(8, n_noise=5, temperature=0.3, shared_noise=True).double()
        bank.memory = unit_rows(1000, 8, 3)
        return bank

    e, indices = unit_rows(4, 8, 0), torch.arange(4)
    drawn = fresh().probabilities(e, indices, generator=torch.Generator().manual_seed(11))
    one_set = torch.randint(0, 1000, (5,), generator=torch.Generator().manual_seed(11))
    assert torch.equal(drawn, fresh().probabilities(e, indices, one_set))
    assert "shared_noise=True" in repr(fresh())


def test_normaliser_estimated_once():
    bank = NCEMemoryBank(8, n_noise=16, temperature=0.3)
    bank.reset(50)
    bank(unit_rows(4, 8, 0).float(), torch.arange(4))
    z = bank.normaliser.item()
    assert z > 0
    bank(unit_rows(4, 8, 1).float() * -1, torch.arange(4, 8))
    assert bank.normaliser.item() == z


def test_memory_update_rule_exact_for_one_step():
    n, d, m = 10, 4, 0.5
    bank = NCEMemoryBank(d, n_noise=3, momentum=m).double()
    bank.memory = unit_rows(n, d, 3)
    before = bank.memory.clone()
    e = unit_rows(2, d, 4)
    indices = torch.tensor([7, 2])
    bank.update(e, indices)
    for b, i in enumerate(indices.tolist()):
        moved = [m * before[i, c].item() + (1 - m) * e[b, c].item() for c in range(d)]
        norm = math.sqrt(sum(v * v for v in moved))
        assert torch.allclose(bank.memory[i], torch.tensor([v / norm for v in moved], dtype=torch.float64), atol=1e-12)
    untouched = [i for i in range(n) if i not in (7, 2)]
    assert torch.equal(bank.memory[untouched], before[untouched])


def test_reset_gives_unit_rows_and_state_survives_reload():
    bank = NCEMemoryBank(16, n_noise=8, temperature=0.2)
    bank.reset(30)
    assert bank.memory.shape == (30, 16)
    assert torch.allclose(bank.memory.norm(dim=1), torch.ones(30), atol=1e-6)
    bank(unit_rows(4, 16, 0).float(), torch.arange(4))
    state = bank.state_dict()
    assert set(state) == {"memory", "normaliser"}
    fresh = NCEMemoryBank(16, n_noise=8, temperature=0.2)  # empty bank: sized by the checkpoint
    fresh.load_state_dict(state)
    assert torch.equal(fresh.memory, bank.memory) and fresh.normaliser.item() == bank.normaliser.item()


def test_errors():
    with pytest.raises(RuntimeError, match="empty"):
        NCEMemoryBank(4)(torch.zeros(2, 4), torch.arange(2))
    with pytest.raises(ValueError, match="nce_k"):
        NCEMemoryBank(4, n_noise=0)
    bank = NCEMemoryBank(4)
    bank.reset(10)
    with pytest.raises(ValueError, match=r"embeddings \(B, 4\)"):
        bank(torch.zeros(2, 5), torch.arange(2))
    with pytest.raises(ValueError, match=r"noise indices must be \(B, k\) = \(2, k\) or \(k,\), got \(3, 4\)"):
        bank(torch.zeros(2, 4), torch.arange(2), torch.zeros(3, 4, dtype=torch.long))
