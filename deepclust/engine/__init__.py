"""The training engine shared by every method."""
from deepclust.engine.checkpoint import CheckpointError, load_checkpoint, save_atomic
from deepclust.engine.config import ConfigError, deep_merge, list_presets, preset_config, read_config_file
from deepclust.engine.ema import cosine_momentum, ema_update, make_target
from deepclust.engine.model import Batch, ClusteringModel, TrainingContext
from deepclust.engine.runtime import resolve_device, seed_everything
from deepclust.engine.trainer import FitResult, NonFiniteLossError, Trainer

__all__ = [
    "Batch", "CheckpointError", "ClusteringModel", "ConfigError", "FitResult", "NonFiniteLossError",
    "Trainer", "TrainingContext", "cosine_momentum", "deep_merge", "ema_update", "list_presets",
    "load_checkpoint", "make_target", "preset_config", "read_config_file", "resolve_device",
    "save_atomic", "seed_everything",
]
