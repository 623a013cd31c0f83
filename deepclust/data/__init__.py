"""Datasets for deep image clustering: a registry of loaders returning uint8 images in memory.

>>> from deepclust.data import load_dataset, list_datasets
>>> ds = load_dataset("fashion-mnist")           # split="all": train + test, as in the papers
>>> ds.images.shape, ds.labels.shape, ds.n_classes
((70000, 1, 28, 28), (70000,), 10)

Datasets: fashion-mnist, mnist (IDX), digits (scikit-learn), cifar10, cifar100 (pickles),
stl10 (binary), imagenet10, imagenet-dogs, tiny-imagenet, image-folder (PIL), npz.
Where data is looked for: ``root=``, else ``$DEEPCLUST_DATA_ROOT/<folder>``, else
``~/.deepclust/data/<folder>`` (plus ``/usr/share/datasets/fashion-mnist``); see
:mod:`deepclust.data.registry`. Nothing is ever downloaded: a missing dataset raises
:class:`DatasetNotFoundError` saying where it was expected and how to get it.

Per-channel ``mean``/``std`` are always computed from the loaded images (exact up to 2**25
pixel values, else over an evenly spaced subset of images), never taken from published
constants, so they match the split and options actually loaded.

Every dataset records where it came from in ``ImageDataset.source``; :func:`write_source` saves
it as a run folder's ``data.json`` and :func:`load_source` loads the same images again.
"""
from .arrays import from_arrays
from .base import ImageDataset, channel_stats
from .errors import DatasetFormatError, DatasetNotFoundError, DatasetTooLargeError
from .registry import (SOURCE_FILE, dataset_status, list_datasets, load_dataset, load_source, read_source,
                       write_source)

__all__ = ["ImageDataset", "load_dataset", "list_datasets", "dataset_status", "from_arrays",
           "DatasetNotFoundError", "DatasetFormatError", "DatasetTooLargeError", "channel_stats", "SOURCE_FILE",
           "load_source", "read_source", "write_source"]
