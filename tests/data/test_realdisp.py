"""RealDisp log files -> sensor windows (deepclust.data.realdisp), on small files written here."""
from collections import Counter

import numpy as np
import pytest

from deepclust.data import DatasetFormatError, DatasetNotFoundError, load_dataset
from deepclust.data.realdisp import N_CHANNELS


def sensor_rows(n_rows, start, rng):
    return rng.normal(size=(n_rows, N_CHANNELS)) * 10 + start


def write_log(path, values, labels, nan_rows=()):
    values = values.copy()
    for row in nan_rows:
        values[row, 4] = np.nan
    with open(path, "w") as handle:
        for t, (row, label) in enumerate(zip(values, labels)):
            numbers = [str(t // 50), str(20000 * (t % 50))] + [f"{v:.6f}" for v in row] + [str(label)]
            handle.write("\t".join(numbers) + "\n")


@pytest.fixture
def logs(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "realdisp"
    folder.mkdir()
    labels_1 = [0] * 20 + [3] * 100 + [7] * 80
    values_1 = sensor_rows(200, 0, rng)
    values_1[:, 9] = 4.0                                  # a constant channel
    write_log(folder / "subject1_ideal.log", values_1, labels_1, nan_rows=[50])
    labels_2 = [33] * 90
    values_2 = sensor_rows(90, 5, rng)
    values_2[:, 9] = 4.0
    write_log(folder / "subject2_ideal.log", values_2, labels_2)
    write_log(folder / "subject1_self.log", sensor_rows(40, 0, rng), [1] * 40)
    keep_1 = [t for t in range(200) if labels_1[t] != 0 and t != 50]
    streams = [(values_1[keep_1], [labels_1[t] for t in keep_1]), (values_2, labels_2)]
    return folder, streams


def test_windows_labels_and_scaling(logs):
    folder, streams = logs
    window, stride = 32, 5
    dataset = load_dataset("realdisp", root=folder.parent, window=window, stride=stride)
    expected_counts = [(len(v) - window) // stride + 1 for v, _ in streams]
    assert expected_counts == [30, 12]
    assert dataset.images.shape == (42, N_CHANNELS, 1, window) and dataset.images.dtype == np.uint8
    assert dataset.n_classes == 33 and len(dataset.class_names) == 33

    expected_labels = []
    for _, labels in streams:
        for start in range(0, len(labels) - window + 1, stride):
            counts = Counter(labels[start:start + window])
            top = max(counts.values())
            expected_labels.append(min(a for a, n in counts.items() if n == top) - 1)
    assert dataset.labels.tolist() == expected_labels

    rows = np.concatenate([v for v, _ in streams])
    low, high = rows.min(0), rows.max(0)
    values_1 = streams[0][0]
    for channel in (0, 4, 116):
        span = high[channel] - low[channel]
        expected = np.rint((values_1[5:5 + window, channel] - low[channel]) / span * 255)
        assert np.array_equal(dataset.images[1, channel, 0], expected.astype(np.uint8))
    assert (dataset.images[:, 9] == 0).all()               # constant channel
    assert dataset.images.min() == 0 and dataset.images.max() == 255


def test_windows_never_span_two_files(logs):
    folder, _ = logs
    dataset = load_dataset("realdisp", root=folder, window=32, stride=5)
    assert set(dataset.labels[30:].tolist()) == {32}        # subject 2: activity 33 only


def test_scenario_selection(logs):
    folder, _ = logs
    own = load_dataset("realdisp", root=folder, window=16, stride=8, scenario="self")
    assert len(own) == (40 - 16) // 8 + 1 and set(own.labels.tolist()) == {0}
    with pytest.raises(ValueError, match="scenario must be one of"):
        load_dataset("realdisp", root=folder, scenario="worst")


def test_format_errors_name_the_file(tmp_path):
    folder = tmp_path / "realdisp"
    folder.mkdir()
    bad = folder / "subject1_ideal.log"
    bad.write_text("1 2 3\n4 5 6\n")
    with pytest.raises(DatasetFormatError, match="subject1_ideal.log.*120 columns"):
        load_dataset("realdisp", root=folder)
    write_log(bad, np.zeros((3, N_CHANNELS)), [1, 40, 1])
    with pytest.raises(DatasetFormatError, match="labels must be integers 0..33; row 2 has 40"):
        load_dataset("realdisp", root=folder)
    write_log(bad, np.zeros((10, N_CHANNELS)), [1] * 10)
    with pytest.raises(DatasetFormatError, match="512 labelled rows"):
        load_dataset("realdisp", root=folder)


def test_missing_data_says_where_and_how(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="archive.ics.uci.edu"):
        load_dataset("realdisp", root=tmp_path)
