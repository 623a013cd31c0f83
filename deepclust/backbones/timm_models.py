"""timm's models as backbones: ``backbone: {name: timm, model: resnet18, weights: PATH}``.

Needs the optional extra ``timm`` (``pip install 'deepclust[timm]'``). Nothing is downloaded: the
model is created with ``pretrained=False``, and ``HF_HUB_OFFLINE=1`` is set before timm is
imported; pretrained weights come from a local file through ``backbone.weights``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .custom import ModuleBackbone

TIMM_HINT = "pip install 'deepclust[timm]'"
#: Arguments of ``timm.create_model`` that the builder sets itself.
SET_BY_BUILDER = ("pretrained", "num_classes", "in_chans")


def import_timm():
    """The ``timm`` module, with the Hugging Face hub offline; :class:`MissingExtraError` naming the
    extra when it is not installed or cannot be imported (timm needs torchvision)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import timm
    except ImportError as error:
        from deepclust.cluster.umap_gmm import MissingExtraError

        raise MissingExtraError(f"backbone 'timm' needs the timm package, which cannot be imported ({error}): "
                                f"{TIMM_HINT}") from error
    return timm


def timm_backbone(in_channels: int = 3, image_size: int | None = None, model: str | None = None,
                  options: Mapping | None = None) -> ModuleBackbone:
    """``timm.create_model(model, pretrained=False, num_classes=0, in_chans=in_channels, **options)``:
    the model without its classifier, giving pooled features ``(B, num_features)``.

    Args:
        in_channels: image channels (timm's ``in_chans``).
        image_size: not passed on; a model with a fixed input size (a ViT) takes ``options: {img_size: S}``.
        model: a timm model name (``timm.list_models()``), e.g. ``resnet18``, ``convnext_tiny``.
        options: further keyword arguments of ``timm.create_model`` (e.g. ``{drop_path_rate: 0.1}``).

    Its stages (``backbone.freeze: N``) are the modules of the model's ``feature_info``.
    """
    if not isinstance(model, str) or not model:
        raise ValueError(f"timm: model must be the name of a timm model, e.g. {{name: timm, model: resnet18}}; got {model!r}")
    if options is not None and not isinstance(options, Mapping):
        raise ValueError(f"timm: options must be a mapping of timm.create_model arguments, got {options!r}")
    reserved = sorted(set(options or {}) & set(SET_BY_BUILDER))
    if reserved:
        raise ValueError(f"timm: options may not set {reserved}: the builder sets pretrained=False, num_classes=0 "
                         "and in_chans (pretrained weights come from backbone.weights)")
    timm = import_timm()
    network = timm.create_model(model, pretrained=False, num_classes=0, in_chans=in_channels, **dict(options or {}))
    stages = [info["module"] for info in getattr(network, "feature_info", None) or []
              if isinstance(info, Mapping) and "module" in info]
    return ModuleBackbone(network, f"timm {model}", in_channels, feature_dim=int(network.num_features),
                          stages=stages or None)
