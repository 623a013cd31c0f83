"""The neighbours of the refine stage's ``objective: neighbours``: options and mining."""
from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

from deepclust.cluster.neighbours import nearest_neighbours
from deepclust.engine.config import ConfigError

#: ``refine.neighbours.space``: the representation the neighbours are mined in.
NEIGHBOUR_SPACES = ("embedding", "embedding_and_input")


def check_neighbours(options: dict) -> dict:
    """The ``refine.neighbours`` section checked: k an integer >= 1, space one of
    :data:`NEIGHBOUR_SPACES`, entropy_weight a number >= 0."""
    k, space, weight = options["k"], options["space"], options["entropy_weight"]
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"refine.neighbours.k must be an integer >= 1, got {k!r}")
    if space not in NEIGHBOUR_SPACES:
        raise ConfigError(f"refine.neighbours.space must be one of {', '.join(NEIGHBOUR_SPACES)}, got {space!r}")
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or weight < 0:
        raise ConfigError(f"refine.neighbours.entropy_weight must be a number >= 0, got {weight!r}")
    return {"k": k, "space": space, "entropy_weight": float(weight)}


def mine_neighbours(embeddings: torch.Tensor, images: torch.Tensor | None, k: int, space: str) -> torch.Tensor:
    """(N, k) indices of each image's k nearest other images, the nearest first.

    ``space="embedding"``: by cosine similarity of the (N, D) ``embeddings`` (SCAN's mining).
    ``space="embedding_and_input"``: by the mean of two cosine similarities, of the embeddings and
    of the (N, ...) clean ``images`` flattened and centred on the mean image; the nearest
    neighbours of the concatenated unit vectors [e/‖e‖, x/‖x‖].
    """
    if space == "embedding":
        return nearest_neighbours(embeddings, k)
    if images is None or images.shape[0] != embeddings.shape[0]:
        raise ValueError(f"space {space!r} needs the images of the {embeddings.shape[0]} embeddings")
    pixels = images.flatten(1).float()
    pixels = pixels - pixels.mean(dim=0)
    joint = torch.cat([F.normalize(embeddings.float(), dim=1), F.normalize(pixels, dim=1)], dim=1)
    return nearest_neighbours(joint, k)
