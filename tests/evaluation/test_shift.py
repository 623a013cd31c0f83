"""Distribution shifts: corruption families, severities, determinism, and `deepclust evaluate --shift`."""
import json

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from deepclust.cli import main
from deepclust.data import load_dataset
from deepclust.evaluation.shift import (apply_shift, evaluate_shifts, format_shift_table, list_shifts, parse_shift,
                                        shift_dataset)

REQUIRED = {"gaussian_noise", "gaussian_blur", "contrast", "jpeg", "brightness", "pixelate"}


def natural_like(n, channels, size, seed=0):
    """Smooth blobs with edges (like photos: smooth regions, some texture, dark and bright parts)."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, (n, channels, size, size)).astype(np.float64)
    smooth = gaussian_filter(raw, (0, 0, 2, 2)) * 3 - 250
    return np.clip(smooth + rng.normal(0, 8, raw.shape), 0, 255).astype(np.uint8)


BATCHES = {"grey28": natural_like(24, 1, 28), "rgb32": natural_like(24, 3, 32, seed=1),
           "four_channel20": natural_like(8, 4, 20, seed=2)}


def test_required_families_are_there():
    assert REQUIRED <= set(list_shifts())


@pytest.mark.parametrize("batch", sorted(BATCHES))
@pytest.mark.parametrize("name", list_shifts())
def test_shift_changes_images_keeps_shape_and_dtype_and_is_monotone(name, batch):
    clean = BATCHES[batch]
    distances = []
    for severity in range(1, 6):
        shifted = apply_shift(clean, name, severity, seed=0)
        assert shifted.shape == clean.shape and shifted.dtype == np.uint8
        distances.append(np.abs(shifted.astype(np.float64) - clean).mean())
    assert distances[0] > 0  # every severity changes the images
    assert all(a <= b + 1e-9 for a, b in zip(distances, distances[1:])), distances  # further from clean
    assert distances[-1] > distances[0]


@pytest.mark.parametrize("name", list_shifts())
def test_deterministic_for_a_seed(name):
    clean = BATCHES["rgb32"]
    assert np.array_equal(apply_shift(clean, name, 3, seed=7), apply_shift(clean, name, 3, seed=7))
    if name in ("gaussian_noise", "shot_noise", "impulse_noise"):
        assert not np.array_equal(apply_shift(clean, name, 3, seed=7), apply_shift(clean, name, 3, seed=8))


def test_torch_input_and_hand_values():
    grey = np.full((2, 1, 16, 16), 100, dtype=np.uint8)
    grey[1] = 0
    out = apply_shift(torch.from_numpy(grey), "brightness", 5)  # value + 0.3 = 76.5 grey levels
    assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8
    assert out[0].unique().tolist() == [177] and out[1].unique().tolist() == [76]
    colour = np.zeros((1, 3, 8, 8), dtype=np.uint8)
    colour[0, 0] = 200
    colour[0, 1] = 100  # HSV: V = 200/255; brightness keeps hue and saturation: channels scale together
    out = apply_shift(colour, "brightness", 1)[0, :, 0, 0].astype(float)
    assert out[1] / out[0] == pytest.approx(0.5, abs=0.01) and out[2] == 0 and out[0] == round(200 + 0.05 * 255)
    flat = np.full((1, 1, 8, 8), 77, dtype=np.uint8)
    assert np.array_equal(apply_shift(flat, "contrast", 5), flat)  # a constant image has no contrast to lose


def test_errors():
    with pytest.raises(ValueError, match="unknown shift 'fog'; valid shifts: .*gaussian_noise"):
        apply_shift(BATCHES["grey28"], "fog", 1)
    with pytest.raises(ValueError, match="severity must be an integer from 1 to 5, got 6"):
        apply_shift(BATCHES["grey28"], "jpeg", 6)
    with pytest.raises(ValueError, match="uint8 images of shape"):
        apply_shift(BATCHES["grey28"].astype(np.float32), "jpeg", 1)
    assert parse_shift("jpeg:2") == ("jpeg", 2)
    with pytest.raises(ValueError, match="NAME:SEVERITY"):
        parse_shift("jpeg")


class FixedPredictor:
    """A 'trained model' that labels images by mean brightness thresholds (no refit on predict)."""

    n_clusters = 2

    def predict(self, dataset):
        return (dataset.images.reshape(len(dataset), -1).mean(1) > 127).astype(np.int64)


def test_evaluate_shifts_and_table():
    data = load_dataset("digits")
    data = shift_dataset(data, "contrast", 1)  # any dataset works; labels and mean/std are kept
    assert data.name == "digits+contrast:1" and data.labels is not None
    rows = evaluate_shifts(FixedPredictor(), data, [("brightness", 5), ("gaussian_noise", 1)])
    assert [r["shift"] for r in rows] == ["clean", "brightness:5", "gaussian_noise:1"]
    table = format_shift_table(rows)
    assert "ΔACC" in table and len(table.splitlines()) == 4


def test_cli_evaluate_shift_on_a_kmeans_run(tmp_path, capsys):
    run = tmp_path / "km"
    assert main(["fit", "--method", "kmeans", "--dataset", "digits", "--out", str(run), "--quiet",
                 "--param", "n_init=2", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), "--dataset", "digits", "--shift", "gaussian_blur:5",
                 "--shift", "impulse_noise:2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    rows = json.loads(out.strip().splitlines()[-1])
    assert [r["shift"] for r in rows] == ["clean", "gaussian_blur:5", "impulse_noise:2"]
    stored = json.loads((run / "metrics.json").read_text())
    assert rows[0]["acc"] == pytest.approx(stored["acc"])  # clean = the fitted labels (no refit)
    assert "gaussian_blur:5" in out and "ΔACC" in out
    assert main(["evaluate", "--run", str(run), "--shift", "jpeg:1"]) == 2
    assert "--shift needs --dataset" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(run), "--dataset", "digits", "--shift", "fog:1"]) == 2
    assert "unknown shift 'fog'" in capsys.readouterr().err
