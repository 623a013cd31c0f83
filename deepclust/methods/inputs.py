"""What every estimator takes as ``X``, and the scikit-learn conventions around it.

``X`` is either **images** — a dataset name, an :class:`~deepclust.data.ImageDataset`, or a 3-D
(N, H, W) / 4-D (N, C, H, W) array of uint8, integers in [0, 255] or floats in [0, 1] or [0, 255]
(:func:`deepclust.data.from_arrays`; floats outside both ranges are refused) — or **feature
vectors**: any other array-like, a 2-D (N, D) array of N samples with D numbers each, in any
range (pandas frames, lists of lists; checked by scikit-learn's ``validate_data``: finite, dense,
at least one sample and one feature).

- ``n_features_in_``: D for feature vectors; C·H·W, the values of one image, for images.
- The shallow baselines (``kmeans``, ``umap-gmm`` with ``features="pixels"``) cluster feature
  vectors as given. A deep estimator holds its training samples as uint8 like images: each
  feature is min-max scaled over the training vectors to 0..255 (256 levels, as the RealDisp
  loader stores its sensor channels) and a vector is stored as a (D, 1, 1) sample; the range is
  the fitted ``feature_range_`` (low, high), with which new vectors are scaled and clipped. Only
  methods without image augmentations and with a backbone that flattens its input (``mlp``)
  train on them: HardReg, ``ae-umap-gmm``.
"""
from __future__ import annotations

import math
import os
from typing import ClassVar

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted, validate_data

from deepclust.data import ImageDataset
from deepclust.data.arrays import scale_to_uint8, with_labels
from deepclust.engine.runtime import resolve_device


def is_feature_vectors(X) -> bool:
    """Whether ``X`` holds feature vectors: an array-like that is neither a dataset name, an
    ImageDataset nor a 3-D / 4-D array of images (a 1-D or 5-D array counts, and fails its check)."""
    if isinstance(X, (str, os.PathLike, ImageDataset)):
        return False
    ndim = getattr(X, "ndim", None)
    if ndim is None:  # lists, objects with __array__
        try:
            ndim = np.asarray(X).ndim
        except (ValueError, TypeError):  # ragged nested lists: validate_data names the problem
            return True
    return ndim not in (3, 4)


def feature_vectors(estimator, X, *, reset: bool) -> np.ndarray:
    """``X`` as a finite dense float (N, D) array (float32 kept, other numbers as float64), checked by
    scikit-learn's ``validate_data``: ``reset`` (fit) sets ``n_features_in_`` (and
    ``feature_names_in_`` for a DataFrame), afterwards they are checked."""
    return validate_data(estimator, X, reset=reset, dtype=[np.float32, np.float64])


def fitted_kind_of(estimator, X, *, vectors: bool, image_shape) -> bool:
    """Whether ``X`` (given after ``fit``) is feature vectors; a ``ValueError`` when it is not of the
    kind ``fit`` had: feature vectors when ``vectors``, else images of ``image_shape``."""
    if is_feature_vectors(X) == vectors:
        return vectors
    if vectors:
        raise ValueError(f"{type(estimator).__name__} was fitted on feature vectors of {estimator.n_features_in_} "
                         "values; give a 2-D (N, D) array, not images")
    raise ValueError(f"{type(estimator).__name__} was fitted on images of shape {tuple(image_shape)}; give images "
                     f"(N, C, H, W), not an array of {np.ndim(X)} dimensions")


def values_per_sample(shape) -> int:
    """``n_features_in_`` of samples of ``shape``: the number of values in one."""
    return int(math.prod(shape))


def vector_samples(vectors: np.ndarray, feature_range: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Feature vectors (N, D) as uint8 (N, D, 1, 1) samples: each feature scaled between its
    ``feature_range`` (low, high) to 0..255 and clipped (:func:`~deepclust.data.arrays.scale_to_uint8`)."""
    return scale_to_uint8(vectors, *feature_range)[:, :, None, None]


def vector_dataset(vectors: np.ndarray, y, feature_range: tuple[np.ndarray, np.ndarray]) -> ImageDataset:
    """The training dataset of a deep estimator fitted on feature vectors (:func:`vector_samples`)."""
    return with_labels(vector_samples(vectors, feature_range), y, "array")


def as_tensor(array: np.ndarray) -> torch.Tensor:
    """``torch.from_numpy`` without PyTorch's warning about non-writable arrays: a read-only array (a
    memmap opened read-only, ``arr.setflags(write=False)``) is copied, any other shares its memory."""
    return torch.from_numpy(array if array.flags.writeable else array.copy())


class EstimatorConventions:
    """What every deepclust estimator adds to scikit-learn's mixins (it comes first among the bases):
    fitted means holding ``fitted_attribute`` (``check_is_fitted`` raises ``NotFittedError`` before),
    and these tags over the mixins' —

    - ``input_tags.three_d_array``: (N, H, W) arrays are grey images (``two_d_array`` stays True:
      (N, D) feature vectors);
    - ``transformer_tags.preserves_dtype = ["float32"]``: ``transform`` returns float32, whatever
      the input's dtype;
    - ``non_deterministic`` when ``device`` resolves to a GPU: with a fixed ``seed`` training and
      clustering repeat exactly on the CPU, not with CUDA's non-deterministic kernels.
    """

    fitted_attribute: ClassVar[str]

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, self.fitted_attribute)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        try:
            tags.non_deterministic = resolve_device(self.device).type != "cpu"
        except ValueError:  # a device this machine lacks: fit reports it
            tags.non_deterministic = False
        return tags

    def _check_fitted(self) -> None:
        check_is_fitted(self)
