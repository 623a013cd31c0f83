"""The training engine shared by every method."""
from deepclust.engine.checkpoint import CheckpointError, load_checkpoint, save_atomic
from deepclust.engine.config import ConfigError, deep_merge, list_presets, preset_config, read_config_file
from deepclust.engine.ema import (
    check_momentum_schedule, cosine_momentum, ema_update, make_target, scheduled_momentum,
)
from deepclust.engine.model import Batch, ClusteringModel, EpochPass, TrainingContext
from deepclust.module_state import evaluation_mode
from deepclust.engine.runtime import resolve_device, seed_everything
from deepclust.engine.step import NonFiniteLossError, train_batch
from deepclust.engine.trainer import FitResult, Trainer

__all__ = [
    "Batch", "CheckpointError", "ClusteringModel", "ConfigError", "EpochPass", "FitResult", "NonFiniteLossError",
    "Trainer", "TrainingContext", "check_momentum_schedule", "cosine_momentum", "deep_merge", "ema_update",
    "evaluation_mode", "list_presets", "load_checkpoint", "make_target", "preset_config", "read_config_file",
    "resolve_device", "save_atomic", "scheduled_momentum", "seed_everything", "train_batch",
]
