"""HaDis's hardness-aware self-distillation (HSD) against a naive double loop written here."""
import math

import pytest
import torch

from deepclust.losses import HardnessAwareDistillationLoss
from deepclust.losses.hardness_distillation import mine_hardest_pairs
from support import on_circle, unit


# fidelity test 1 of docs/methods/hadis.md
def naive_hsd(teacher, student, tau=0.5):
    """Double loops over anchors and candidates, with Python floats."""
    t = [unit(*row) for row in teacher]
    s = [unit(*row) for row in student]
    n = len(t)
    d_t = [[math.dist(t[i], t[j]) for j in range(n)] for i in range(n)]
    d = [[math.dist(t[i], s[j]) for j in range(n)] for i in range(n)]
    rows, loss = [], 0.0
    for i in range(n):
        negatives = [j for j in range(n) if d_t[i][j] > d[i][i]]
        positives = [j for j in range(n) if j not in negatives]
        pos = max(positives, key=lambda j: d[i][j])
        w_pos = max(0.0, d[i][pos] - d_t[i][pos])
        if negatives:
            neg = min(negatives, key=lambda j: d[i][j])
            w_neg = max(0.0, d_t[i][neg] - d[i][neg])
            logit_neg = w_neg * d[i][neg] / tau
        else:
            neg, w_neg, logit_neg = None, 0.0, 0.0
        logit_pos = w_pos * d[i][pos] / tau
        loss += -logit_neg + math.log(math.exp(logit_neg) + math.exp(logit_pos))
        rows.append((neg, pos, w_neg, w_pos))
    return rows, loss / n


def check_against_naive(teacher, student):
    rows, expected_loss = naive_hsd(teacher, student)
    pairs = mine_hardest_pairs(torch.tensor(teacher), torch.tensor(student))
    for i, (neg, pos, w_neg, w_pos) in enumerate(rows):
        if neg is not None:
            assert pairs.negative[i].item() == neg
        assert pairs.positive[i].item() == pos
        assert pairs.negative_weight[i].item() == pytest.approx(w_neg, abs=1e-5)
        assert pairs.positive_weight[i].item() == pytest.approx(w_pos, abs=1e-5)
    loss = HardnessAwareDistillationLoss(0.5)(torch.tensor(teacher), torch.tensor(student))
    assert loss.item() == pytest.approx(expected_loss, abs=1e-5)
    return rows


def test_hsd_hand_made_three_samples():
    # teachers at 0°, 90°, 180°; students slightly off their teachers, the second pulled toward t_0
    teacher = [on_circle(0), on_circle(90), on_circle(180)]
    student = [on_circle(20), on_circle(60), on_circle(170)]
    rows = check_against_naive(teacher, student)
    # anchor 0: D[0,0] = 2 sin 10° = 0.347 < D_t = √2, 2: both others are negatives, the nearer
    # student s_1 (60° from t_0) is the hardest; the only positive is the anchor itself
    neg, pos, w_neg, w_pos = rows[0]
    assert (neg, pos) == (1, 0)
    assert w_neg == pytest.approx(math.sqrt(2) - 2 * math.sin(math.radians(30)), abs=1e-6)
    assert w_pos == pytest.approx(2 * math.sin(math.radians(10)), abs=1e-5)


def test_hsd_random_batches_match_naive():
    generator = torch.Generator().manual_seed(3)
    for _ in range(5):
        teacher = torch.randn(7, 4, generator=generator)
        student = teacher + 0.8 * torch.randn(7, 4, generator=generator)
        check_against_naive(teacher.tolist(), student.tolist())


def test_hsd_empty_negative_set():
    # teachers close together, students opposite: D[i,i] ≈ 2 exceeds every teacher distance
    teacher = [on_circle(0), on_circle(5), on_circle(10)]
    student = [on_circle(180), on_circle(185), on_circle(190)]
    rows = check_against_naive(teacher, student)
    assert all(neg is None for neg, *_ in rows)
    pairs = mine_hardest_pairs(torch.tensor(teacher), torch.tensor(student))
    assert torch.all(pairs.negative_weight == 0)


def test_hsd_weights_zero_when_student_equals_teacher():
    teacher = torch.randn(8, 6, generator=torch.Generator().manual_seed(0))
    pairs = mine_hardest_pairs(teacher, teacher.clone())
    assert torch.allclose(pairs.negative_weight, torch.zeros(8), atol=1e-5)
    assert torch.allclose(pairs.positive_weight, torch.zeros(8), atol=1e-5)
    loss = HardnessAwareDistillationLoss(0.5)(teacher, teacher.clone())
    assert loss.item() == pytest.approx(math.log(2.0), abs=1e-4)


def test_hsd_harder_pairs_get_larger_weights():
    teacher = [on_circle(0), on_circle(90), on_circle(180)]
    negative_weights, positive_weights = [], []
    for shift in (5, 15, 30):
        # the hardest positive of anchor 0 is its own student, moved `shift` degrees away from t_0;
        # the hardest negative is s_1, moved `shift` degrees toward t_0
        student = [on_circle(shift), on_circle(90 - shift), on_circle(180)]
        pairs = mine_hardest_pairs(torch.tensor(teacher), torch.tensor(student))
        assert pairs.negative[0].item() == 1 and pairs.positive[0].item() == 0
        negative_weights.append(pairs.negative_weight[0].item())
        positive_weights.append(pairs.positive_weight[0].item())
    assert negative_weights[0] < negative_weights[1] < negative_weights[2]
    assert positive_weights[0] < positive_weights[1] < positive_weights[2]


def test_hsd_weights_are_detached_and_teacher_gets_no_gradient():
    generator = torch.Generator().manual_seed(5)
    teacher = torch.randn(6, 4, generator=generator)
    student = (teacher + 0.7 * torch.randn(6, 4, generator=generator)).requires_grad_(True)
    HardnessAwareDistillationLoss(0.5)(teacher, student).backward()
    rows, _ = naive_hsd(teacher.tolist(), student.detach().tolist())
    # the same loss with the weights as constants: its gradient must be the implementation's
    reference_student = student.detach().clone().requires_grad_(True)
    t = torch.nn.functional.normalize(teacher, dim=1)
    s = torch.nn.functional.normalize(reference_student, dim=1)
    total = 0.0
    for i, (neg, pos, w_neg, w_pos) in enumerate(rows):
        logit_pos = w_pos * torch.linalg.vector_norm(t[i] - s[pos]) / 0.5
        logit_neg = w_neg * torch.linalg.vector_norm(t[i] - s[neg]) / 0.5 if neg is not None else torch.tensor(0.0)
        total = total - logit_neg + torch.logsumexp(torch.stack([logit_neg, logit_pos]), 0)
    (total / len(rows)).backward()
    assert torch.allclose(student.grad, reference_student.grad, atol=1e-5)
    assert student.grad.abs().sum() > 0


def test_hsd_rejects_bad_shapes_and_temperature():
    with pytest.raises(ValueError, match="one shape"):
        HardnessAwareDistillationLoss()(torch.zeros(3, 4), torch.zeros(4, 4))
    with pytest.raises(ValueError, match="temperature"):
        HardnessAwareDistillationLoss(0.0)
