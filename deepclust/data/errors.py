"""Exceptions raised by the dataset loaders."""
from __future__ import annotations

import os

__all__ = ["DatasetNotFoundError", "DatasetFormatError", "DatasetTooLargeError"]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset (or one of its files) is not where it was expected.

    The message says which file was expected at which path, where else was searched, how the
    location can be chosen (``root=`` / ``DEEPCLUST_DATA_ROOT``) and how to obtain the data.

    Attributes: ``dataset`` (registry name or None), ``filename`` (the missing path),
    ``searched`` (list of the folders that were tried), ``hint`` (how to get the data).
    """

    def __init__(self, message: str, *, dataset: str | None = None,
                 path: str | os.PathLike | None = None, searched=(), hint: str = ""):
        super().__init__(message)
        self.dataset = dataset
        self.filename = None if path is None else str(path)
        self.searched = [str(p) for p in searched]
        self.hint = hint

    def __str__(self) -> str:  # OSError would otherwise format "[Errno ...]" when filename set
        return str(self.args[0]) if self.args else ""

    def __reduce__(self):  # picklable (e.g. across worker processes) with its attributes
        return (DatasetNotFoundError, (str(self),),
                {"dataset": self.dataset, "filename": self.filename, "searched": self.searched,
                 "hint": self.hint})

    def __setstate__(self, state):
        for k, v in state.items():
            setattr(self, k, v)


class DatasetFormatError(ValueError):
    """A dataset file exists but is malformed (bad magic, truncated, wrong keys or sizes...).

    ``str(err)`` is ``"<file>: <problem>"``; the problem says what was expected and what was
    found. Attributes: ``path`` (the offending file), ``problem``.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        return (DatasetFormatError, (self.path, self.problem))


class DatasetTooLargeError(MemoryError):
    """The decoded images would not fit in the memory available.

    Attributes: ``needed`` and ``available`` (bytes); the message gives both in GB and the ways
    out (a smaller ``image_size``, or ``check_memory=False`` to try anyway).
    """

    def __init__(self, message: str, needed: int, available: int):
        super().__init__(message)
        self.needed = needed
        self.available = available

    def __reduce__(self):
        return (DatasetTooLargeError, (str(self), self.needed, self.available))


class _MissingFile(DatasetNotFoundError):
    """Raised by a reader for one missing file; the registry re-raises it with the full
    root-resolution and download hint."""

    def __init__(self, path: str | os.PathLike, what: str = "file"):
        self.what = what
        super().__init__(f"expected {what} {str(path)!r}, which does not exist", path=path)
