"""benchmarks/throughput.py for the toy method with one timed step."""
import json

import pytest
from support import load_benchmark
from toy_method import ToyModel

from deepclust.methods import DeepClusterer, registry


class NoPreset(DeepClusterer):
    method_name = "nopreset"
    model_class = ToyModel


def test_throughput_of_the_toy(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(registry._METHODS, "nopreset", NoPreset)
    result = load_benchmark("throughput").main(["--methods", "toy,nopreset,kmeans", "--warmup", "1", "--steps", "1",
                                 "--batch-size", "16", "--image-shape", "1,8,8", "--matmul-size", "256",
                                 "--out", str(tmp_path)])
    assert result["matmul_gflops"] > 0
    rows = {row["method"]: row for row in result["methods"]}
    toy = rows["toy"]
    assert toy["status"] == "ok" and toy["batch_size"] == 16 and toy["timed_steps"] == 1
    assert toy["images_per_second"] > 0 and toy["gflop_per_step"] > 0 and toy["gflops"] > 0
    # FLOPs by hand: 2·m·n·k per matmul, backward = 2 × forward except the input gradient of the first layer.
    # The toy: two noisy views of B=16 flattened 8x8 images → Linear 64→32 → 32→16 → head 16→10 (K),
    # then the loss's (2K × B) @ (B × 2K) similarity of the cluster columns.
    batch, views, k = 16, 2, 10
    linear = views * 2 * batch * (64 * 32 + 32 * 16 + 16 * k)
    first_layer_input_grad = views * 2 * batch * 64 * 32
    similarity = 2 * (2 * k) * batch * (2 * k)
    expected = 3 * linear - first_layer_input_grad + 3 * similarity
    assert toy["gflop_per_step"] * 1e9 == pytest.approx(expected)
    assert rows["nopreset"]["status"] == "skipped" and "preset" in rows["nopreset"]["note"]
    assert rows["kmeans"]["status"] == "skipped"
    md = (tmp_path / "throughput.md").read_text()
    assert "| toy |" in md and "## Skipped or failed" in md and "nopreset" in md and "GFLOP/s" in md
    assert json.loads((tmp_path / "throughput.json").read_text())["methods"][0]["method"] == "toy"


def test_throughput_rejects_bad_shape():
    with pytest.raises(SystemExit):
        load_benchmark("throughput").main(["--image-shape", "28,28"])


def test_both_memory_formats_are_measured_in_one_run(tmp_path):
    result = load_benchmark("throughput").main(["--methods", "dchl", "--memory-format", "both", "--warmup", "0",
                                                "--steps", "1", "--batch-size", "8", "--image-shape", "1,16,16",
                                                "--matmul-size", "64", "--out", str(tmp_path)])
    contiguous, channels_last = result["methods"]
    assert (contiguous["memory_format"], channels_last["memory_format"]) == ("contiguous", "channels_last")
    assert contiguous["status"] == channels_last["status"] == "ok"
    assert channels_last["gflop_per_step"] == pytest.approx(contiguous["gflop_per_step"])  # same work, other layout
    assert "| dchl | channels_last | small_cnn |" in (tmp_path / "throughput.md").read_text()


def test_a_variant_is_measured_after_the_preset_in_the_same_run(tmp_path):
    result = load_benchmark("throughput").main(["--methods", "concurl", "--variant", "method.nce_shared_noise=true",
                                                "--variant", "method.nce_shared=true", "--n-samples", "700",
                                                "--warmup", "0", "--steps", "1", "--batch-size", "8",
                                                "--image-shape", "1,16,16", "--matmul-size", "64",
                                                "--out", str(tmp_path)])
    preset, shared, misspelt = result["methods"]
    assert (preset["variant"], preset["status"]) == ("preset", "ok")
    assert (shared["variant"], shared["status"]) == ("method.nce_shared_noise=true", "ok")
    assert misspelt["status"] == "failed" and "nce_shared" in misspelt["note"]
    assert result["n_samples"] == 700
    md = (tmp_path / "throughput.md").read_text()
    assert "| Method | Config | Memory format |" in md and "| concurl | method.nce_shared_noise=true |" in md
    assert "- concurl (method.nce_shared=true): failed" in md and "700 images held" in md


def test_bad_variant_and_sample_count_are_refused(capsys):
    with pytest.raises(SystemExit):
        load_benchmark("throughput").main(["--variant", "method.nce_shared_noise"])
    assert "--variant: expected KEY=VALUE" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        load_benchmark("throughput").main(["--n-samples", "0"])
    assert "--n-samples must be >= 1, got 0" in capsys.readouterr().err


def test_a_compiled_variant_counts_the_same_flops_and_reports_its_warm_up(tmp_path):
    result = load_benchmark("throughput").main(["--methods", "dchl", "--variant", "training.compile=true",
                                                "--warmup", "1", "--steps", "1", "--batch-size", "8",
                                                "--image-shape", "1,16,16", "--matmul-size", "64",
                                                "--out", str(tmp_path)])
    eager, compiled = result["methods"]
    assert eager["status"] == compiled["status"] == "ok" and compiled["variant"] == "training.compile=true"
    assert compiled["gflop_per_step"] == pytest.approx(eager["gflop_per_step"])  # counted eagerly, same work
    assert compiled["warmup_seconds"] > 0 and eager["warmup_seconds"] > 0
    md = (tmp_path / "throughput.md").read_text()
    assert "% of matmul | Warm-up s |" in md and "| dchl | training.compile=true |" in md
