"""Pretrained weights and frozen parts: the ``backbone`` section's settings ``weights``, ``strict`` and
``freeze``, which apply to every backbone whatever its name.

- ``weights: PATH`` — a local state dict loaded into the backbone when a fit starts afresh: a torch
  file (``.pt``/``.pth``, ``torch.save(module.state_dict())``, possibly nested under
  ``"state_dict"`` or ``"model"``) or a ``.safetensors`` file (the optional extra ``safetensors``).
  Nothing is downloaded. A resumed run and a loaded estimator take their parameters from the
  checkpoint / ``model.pt`` instead, so the file is read only once.
- ``strict: true`` (default) — every key of the backbone must be in the file and every key of the
  file in the backbone; ``false`` loads the keys both have and warns about the rest. Either way the
  report counts the missing and unexpected keys and names the first few, and a tensor of another
  shape is an error.
- ``freeze: false`` (default) | ``true`` | ``N`` — ``true`` freezes the whole backbone (only the
  method's heads train); ``N`` trains only its last N stages (:meth:`Backbone.stage_names`: the
  ResNets' ``layer1``..``layer4``; small_cnn, lenet, mlp, conv1d: one stage per convolution or
  linear layer; a timm model: its ``feature_info`` stages; another module: its top-level children
  holding parameters) and freezes every parameter registered before them. Frozen parameters get
  ``requires_grad = False`` and stay out of the optimizer; the BatchNorm layers whose parameters
  are all frozen stay in eval mode while training (they keep the pretrained running statistics
  and normalise with them).
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .base import FROZEN_STATISTICS, Backbone
from .custom import ModuleBackbone, current_build

#: Keys of the ``backbone`` section that are settings of any backbone, not options of the named one.
BACKBONE_SETTINGS = ("weights", "strict", "freeze")
#: Keys a checkpoint file may nest its state dict under.
NESTING_KEYS = ("state_dict", "model")
SAFETENSORS_HINT = "pip install 'deepclust[safetensors]'"


def split_backbone_section(section: Mapping) -> tuple[str, dict, dict]:
    """``(name, options of that backbone, settings)`` of a ``backbone`` configuration section."""
    options = dict(section)
    name = options.pop("name")
    settings = {key: options.pop(key) for key in BACKBONE_SETTINGS if key in options}
    return name, options, settings


def _key_list(keys: list[str], what: str) -> str:
    shown = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
    return f"{len(keys)} {what} ({shown})"


def read_state_dict(path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file: torch ``.pt``/``.pth`` (read with ``weights_only=True``, possibly
    nested under ``"state_dict"``/``"model"``) or ``.safetensors``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"weights: no file {path}")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as error:
            from deepclust.cluster.umap_gmm import MissingExtraError

            raise MissingExtraError(f"weights {path}: reading .safetensors files needs the safetensors package: "
                                    f"{SAFETENSORS_HINT}") from error
        return load_file(str(path), device="cpu")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or pickled-object files
        raise ValueError(f"weights {path} is not a readable torch state dict ({type(error).__name__}: {error}); "
                         "save it with torch.save(module.state_dict(), path), or give a .safetensors file") from None
    while isinstance(state, Mapping) and not all(isinstance(value, torch.Tensor) for value in state.values()):
        nested = next((state[key] for key in NESTING_KEYS if isinstance(state.get(key), Mapping)), None)
        if nested is None:
            keys = ", ".join(map(str, list(state)[:8]))
            raise ValueError(f"weights {path} holds no state dict: its entries ({keys}) are not all tensors and none "
                             f"of {', '.join(NESTING_KEYS)} holds one")
        state = nested
    if not isinstance(state, Mapping):
        raise ValueError(f"weights {path} holds a {type(state).__name__}, not a state dict of tensors")
    return dict(state)


def load_weights(backbone: Backbone, path, strict: bool = True) -> dict[str, list[str]]:
    """Load the weights file ``path`` into ``backbone`` (into the wrapped network of a
    :class:`ModuleBackbone`); returns ``{"loaded", "missing", "unexpected"}`` key lists.

    Raises ``ValueError`` for a tensor of another shape, for missing or unexpected keys when
    ``strict``, and when no key matches at all; warns about missing / unexpected keys otherwise."""
    target = backbone.network if isinstance(backbone, ModuleBackbone) else backbone
    state = read_state_dict(path)
    expected = target.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    loaded = [key for key in state if key in expected]
    mismatched = [f"{key} (file {tuple(state[key].shape)}, backbone {tuple(expected[key].shape)})"
                  for key in loaded if state[key].shape != expected[key].shape]
    where = f"backbone.weights {path} for backbone '{backbone.name}'"
    if mismatched:
        raise ValueError(f"{where}: {_key_list(mismatched, 'tensor(s) of another shape')}")
    if not loaded:
        raise ValueError(f"{where}: none of the file's {len(state)} keys is a key of the backbone "
                         f"({_key_list(unexpected, 'unexpected keys')}; the backbone expects {_key_list(missing, 'keys')})")
    problems = []
    if missing:
        problems.append(_key_list(missing, "missing keys"))
    if unexpected:
        problems.append(_key_list(unexpected, "unexpected keys"))
    if problems and strict:
        raise ValueError(f"{where}: {' and '.join(problems)}; set backbone.strict: false to load the "
                         f"{len(loaded)} matching keys")
    if problems:
        warnings.warn(f"{where}: loaded {len(loaded)} keys; {' and '.join(problems)} (backbone.strict: false)",
                      UserWarning, stacklevel=2)
    target.load_state_dict({key: state[key] for key in loaded}, strict=False)
    return {"loaded": loaded, "missing": missing, "unexpected": unexpected}


def check_freeze(freeze, backbone: Backbone) -> None:
    if freeze is None or isinstance(freeze, bool):
        return
    stages = backbone.stage_names()
    unknown = sorted(set(stages) - {name for name, _ in backbone.named_modules()})
    if unknown:
        raise ValueError(f"backbone '{backbone.name}' names stages that are not its submodules: {unknown}")
    if not isinstance(freeze, numbers.Integral) or not 1 <= freeze <= len(stages):
        raise ValueError(f"freeze must be false, true (the whole backbone) or a number of last stages to train, "
                         f"1..{len(stages)} for backbone '{backbone.name}' (stages: {', '.join(stages)}); got {freeze!r}")


def freeze_backbone(backbone: Backbone, freeze) -> list[str]:
    """Freeze ``backbone`` (``freeze`` true) or all of it but its last ``freeze`` stages; marks the
    BatchNorm layers whose parameters are all frozen with :data:`FROZEN_STATISTICS`. Returns the
    names of the frozen parameters."""
    check_freeze(freeze, backbone)
    if not freeze:
        return []
    parameters = list(backbone.named_parameters())
    if freeze is True:
        frozen = parameters
    else:  # the parameters of the modules registered before the first trained stage begins
        position = {name: index for index, (name, _) in enumerate(backbone.named_modules())}
        start = position[backbone.stage_names()[-freeze]]
        frozen = [(name, parameter) for name, parameter in parameters if position[name.rpartition(".")[0]] < start]
    for _, parameter in frozen:
        parameter.requires_grad_(False)
    frozen_ids = {id(parameter) for _, parameter in frozen}
    for module in backbone.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            own = list(module.parameters(recurse=False))
            if all(id(parameter) in frozen_ids for parameter in own) and (own or freeze is True):
                setattr(module, FROZEN_STATISTICS, True)
    backbone.train(backbone.training)
    return [name for name, _ in frozen]


def check_settings(weights, strict) -> None:
    if weights is not None and not isinstance(weights, str):  # a string: the configuration is written as YAML
        raise ValueError(f"weights must be the path of a local weights file (.pt, .pth, .safetensors) as a string, "
                         f"got {weights!r}")
    if not isinstance(strict, bool):
        raise ValueError(f"strict must be true or false, got {strict!r}")


def prepare_backbone(backbone: Backbone, weights=None, strict: bool = True, freeze=False) -> Backbone:
    """Apply the ``backbone`` section's settings to a built backbone: load ``weights`` (unless the
    current :func:`~deepclust.backbones.custom.backbone_build` says not to), then freeze."""
    check_settings(weights, strict)
    check_freeze(freeze, backbone)
    if weights is not None and current_build().load_weights:
        load_weights(backbone, weights, strict)
    freeze_backbone(backbone, freeze)
    return backbone
