"""RealDisp activity recognition (Baños et al. 2012, UCI id 305) as sliding sensor windows.

File layout read (the UCI archive's ``.log`` files, extracted into one folder):
``subject<N>_<scenario>.log`` with scenario ``ideal``, ``self`` or ``mutual<k>``. Every line is
one time step of whitespace-separated numbers, 120 columns:

- columns 1-2: timestamp (seconds, microseconds) -- ignored;
- columns 3-119: the 117 sensor channels (9 sensors x 13 values: 3-D acceleration, gyroscope,
  magnetometer and a 4-D orientation quaternion);
- column 120: the activity label, 0..33, where 0 = no activity (transient).

Preprocessing, as in HardReg's (Mahon & Lukasiewicz, AAAI 2024) reference code: rows with a NaN
and rows labelled 0 are dropped; the remaining rows of each file are cut into windows of
``window`` = 512 steps every ``stride`` = 5 steps (windows never span two files -- the
reference concatenates subjects first); a window's label is the most frequent activity in it
(ties: the smallest activity id), stored as activity − 1, so the labels are 0..32 (33 classes).

Storage: the engine holds uint8 arrays, so each channel is min-max scaled to 0..255 over all
loaded rows (256 levels per channel) and a window is stored as an image of shape
``(117, 1, window)`` (channels, height 1, time). Memory is N x 117 x window bytes, about 60 kB a
window: the 17 subjects' ``ideal`` logs at stride 5 give over 100,000 windows (several GB);
pass a larger ``stride`` on smaller machines.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .arrays import scale_to_uint8
from .base import ImageDataset
from .errors import DatasetFormatError, _MissingFile

__all__ = ["load_realdisp", "read_realdisp_log", "has_realdisp_logs", "N_CHANNELS", "N_ACTIVITIES"]

N_CHANNELS = 117
N_ACTIVITIES = 33
N_COLUMNS = 2 + N_CHANNELS + 1
SCENARIOS = {"ideal": "subject*_ideal.log", "self": "subject*_self.log",
             "mutual": "subject*_mutual*.log", "all": "subject*.log"}


def has_realdisp_logs(folder: Path) -> bool:
    return any(Path(folder).glob("subject*.log"))


def read_realdisp_log(path) -> tuple[np.ndarray, np.ndarray]:
    """(sensor values float32 (T, 117), activity labels int64 (T,)) of one log file, all rows."""
    path = Path(path)
    if not path.is_file():
        raise _MissingFile(path, "RealDisp log file")
    try:
        table = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as error:
        raise DatasetFormatError(path, f"expected rows of {N_COLUMNS} whitespace-separated numbers "
                                       f"(2 timestamp, {N_CHANNELS} sensor, 1 label): {error}") from None
    if table.size == 0:
        raise DatasetFormatError(path, "the file holds no rows")
    if table.shape[1] != N_COLUMNS:
        raise DatasetFormatError(path, f"expected {N_COLUMNS} columns per row (2 timestamp, {N_CHANNELS} "
                                       f"sensor, 1 label), found {table.shape[1]}")
    labels = table[:, -1]
    bad = ~np.isin(labels, np.arange(N_ACTIVITIES + 1))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DatasetFormatError(path, f"activity labels must be integers 0..{N_ACTIVITIES}; row {row + 1} "
                                       f"has {labels[row]:g}")
    return table[:, 2:-1].astype(np.float32), labels.astype(np.int64)


def _subject_order(path: Path):
    numbers = re.findall(r"\d+", path.name)
    return (int(numbers[0]) if numbers else -1, path.name)


def _window_labels(labels: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """Most frequent label in each window (first = smallest on ties), via one-hot prefix sums."""
    cumulative = np.zeros((len(labels) + 1, N_ACTIVITIES + 1), dtype=np.int32)
    np.cumsum(np.eye(N_ACTIVITIES + 1, dtype=np.int32)[labels], axis=0, out=cumulative[1:])
    return (cumulative[starts + window] - cumulative[starts]).argmax(axis=1)


def load_realdisp(path, split: str = "all", window: int = 512, stride: int = 5,
                  scenario: str = "ideal") -> ImageDataset:
    """Windows of the RealDisp logs in folder ``path`` (see the module docstring).

    ``scenario``: ``ideal`` (default), ``self``, ``mutual`` (all mutual<k> files) or ``all``.
    The dataset has one split (``all``/``train``).
    """
    path = Path(path)
    for name, value in (("window", window), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"realdisp: {name} must be a positive integer, got {value!r}")
    if scenario not in SCENARIOS:
        raise ValueError(f"realdisp: scenario must be one of {', '.join(SCENARIOS)}, got {scenario!r}")
    files = sorted(path.glob(SCENARIOS[scenario]), key=_subject_order)
    if not files:
        raise _MissingFile(path / SCENARIOS[scenario], "RealDisp log files matching")
    streams = []
    for file in files:
        values, labels = read_realdisp_log(file)
        keep = ~np.isnan(values).any(axis=1) & (labels != 0)
        streams.append((values[keep], labels[keep]))
    if not any(len(v) >= window for v, _ in streams):
        longest = max(len(v) for v, _ in streams)
        raise DatasetFormatError(path, f"no file has {window} labelled rows for one window (longest: "
                                       f"{longest} rows after dropping label 0 and NaN rows)")
    rows = np.concatenate([v for v, _ in streams])
    low, high = rows.min(axis=0), rows.max(axis=0)
    images, window_labels = [], []
    for values, labels in streams:
        if len(values) < window:
            continue
        scaled = scale_to_uint8(values, low, high)
        starts = np.arange(0, len(values) - window + 1, stride)
        windows = np.lib.stride_tricks.sliding_window_view(scaled, window, axis=0)[starts]  # (n, 117, w)
        images.append(windows[:, :, None, :])
        window_labels.append(_window_labels(labels, starts, window) - 1)
    class_names = [f"activity {a}" for a in range(1, N_ACTIVITIES + 1)]
    return ImageDataset(np.concatenate(images), np.concatenate(window_labels), "realdisp", class_names,
                        N_ACTIVITIES)
