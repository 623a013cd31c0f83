"""Loss terms, one per file: each an ``nn.Module`` whose ``forward`` returns the scalar loss and
whose docstring cites the paper's equation (the rule: docs/DEVELOPING.md, "Losses").

HardReg's comparison baselines are the documented exception: assignment rules that return their
labels with their loss, :class:`Assignment` (``assignment_baselines``).
"""
from deepclust.losses.assigned_cost import AssignedCostLoss
from deepclust.losses.assignment_baselines import (
    Assignment, kl_regulariser, kmeans_objective, neural_gas, no_regulariser, sinkhorn_regulariser,
    variance_regulariser,
)
from deepclust.losses.cluster_contrastive import ClusterContrastiveLoss
from deepclust.losses.consensus import ConsensusLoss
from deepclust.losses.cosine_regression import CosineRegressionLoss
from deepclust.losses.diffused_alignment import DiffusedAlignmentLoss
from deepclust.losses.hardness_distillation import HardnessAwareDistillationLoss
from deepclust.losses.htcn_cluster_consistency import HubClusterConsistencyLoss
from deepclust.losses.htcn_hub_prediction import HubPredictionLoss
from deepclust.losses.instance_group import InstanceGroupLoss
from deepclust.losses.nce import NCEMemoryBank
from deepclust.losses.neighbour_consistency import NeighbourConsistencyLoss
from deepclust.losses.ntxent import NTXentLoss
from deepclust.losses.prototype_contrast import PrototypeContrastLoss
from deepclust.losses.reconstruction import ReconstructionLoss
from deepclust.losses.swapped_prediction import SwappedPredictionLoss

__all__ = [
    "AssignedCostLoss", "Assignment", "ClusterContrastiveLoss", "ConsensusLoss", "CosineRegressionLoss",
    "DiffusedAlignmentLoss", "HardnessAwareDistillationLoss", "HubClusterConsistencyLoss", "HubPredictionLoss",
    "InstanceGroupLoss", "NCEMemoryBank", "NeighbourConsistencyLoss", "NTXentLoss", "PrototypeContrastLoss", "ReconstructionLoss", "SwappedPredictionLoss",
    "kl_regulariser", "kmeans_objective", "neural_gas", "no_regulariser", "sinkhorn_regulariser",
    "variance_regulariser",
]
