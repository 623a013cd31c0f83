"""HTCN's instance-level loss: the online streams predict the target's projections, view 3 the hub.

Used by the method described in docs/methods/htcn.md.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from deepclust.losses.cosine_regression import CosineRegressionLoss

#: (online view, target view) pairs of HTCN's four-term losses, 0-based: view 3 (index 2) is the hub
#: that both online views 1 and 2 are matched to, and that is matched to both of them.
HUB_PAIRS: tuple[tuple[int, int], ...] = ((0, 2), (2, 0), (1, 2), (2, 1))


def check_three_views(online: Sequence[torch.Tensor], target: Sequence[torch.Tensor], what: str) -> None:
    """Raise a ValueError unless ``online`` and ``target`` are three tensors each, all of one shape."""
    if len(online) != 3 or len(target) != 3:
        raise ValueError(f"{what} expects three online and three target tensors (views 1, 2, 3), "
                         f"got {len(online)} and {len(target)}")
    shapes = {tuple(t.shape) for t in (*online, *target)}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"{what} expects six B×D tensors of one shape, got shapes {sorted(shapes)}")


class HubPredictionLoss(nn.Module):
    """Instance prediction loss L_ins of HTCN (Deng, Huang, Wang, "Heterogeneous Tri-stream Clustering
    Network", Neural Processing Letters 2023, arXiv:2301.04451; the instance-level loss of the online
    networks predicting the target network's instance representations):

        L_ins = (1/B) Σ_b [ ℓ(p1, t3) + ℓ(p3, t1) + ℓ(p2, t3) + ℓ(p3, t2) ],
        ℓ(p, t) = 2 − 2·cos(p, t)   (BYOL, Grill et al. 2020, Eq. 2; :class:`CosineRegressionLoss`),

    with ``predictions`` = (p1, p2, p3), the online predictor outputs of views 1-3, and ``targets`` =
    (t1, t2, t3), the target network's projections of the same views. A sum of four terms, each
    averaged over the batch. ``targets`` are used as given: the caller computes them without gradient.
    See ``docs/methods/htcn.md``.
    """

    def __init__(self):
        super().__init__()
        self.regression = CosineRegressionLoss()

    def forward(self, predictions: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> torch.Tensor:
        check_three_views(predictions, targets, "HubPredictionLoss")
        return sum(self.regression(predictions[o], targets[t]) for o, t in HUB_PAIRS)
