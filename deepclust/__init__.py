"""deepclust: deep image clustering methods behind one scikit-learn style interface."""
from deepclust._version import __version__
from deepclust.data import list_datasets, load_dataset
from deepclust.methods import get_method, list_methods, load_estimator


def make(name: str, **params):
    """Build the estimator registered as ``name`` (``deepclust.list_methods()``) with ``params``."""
    return get_method(name)(**params)


__all__ = ["__version__", "list_datasets", "list_methods", "load_dataset", "load_estimator", "make"]
