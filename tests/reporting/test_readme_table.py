"""The README's results block is generated from the committed benchmark JSON, not typed."""
import json
from pathlib import Path

import pytest

from deepclust.reporting.readme_table import BEGIN, END, current_block, readme_block, replace_block

ROOT = Path(__file__).resolve().parents[2]
RESULTS = "benchmarks/results/fashion-mnist.json"


def test_readme_block_is_what_the_script_generates_from_the_committed_json():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    data = json.loads((ROOT / RESULTS).read_text(encoding="utf-8"))
    expected = readme_block(data, RESULTS.replace(".json", ".md"))
    assert current_block(readme) == expected, "README results block is stale: run python benchmarks/readme_table.py"
    assert f"from {RESULTS}; do not edit by hand" in readme


def test_the_script_checks_and_rewrites(tmp_path):
    import runpy

    script = runpy.run_path(str(ROOT / "benchmarks" / "readme_table.py"))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{BEGIN} -->\nstale\n{END}\n\nafter\n", encoding="utf-8")
    args = ["--results", str(ROOT / RESULTS), "--readme", str(readme)]
    assert script["main"](args + ["--check"]) == 1
    assert script["main"](args) == 0 and script["main"](args + ["--check"]) == 0
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# x\n\n") and text.endswith(f"{END}\n\nafter\n") and "stale" not in text


def fake_results():
    def row(name, kind, acc, std, **extra):
        return {"name": name, "kind": kind, "status": "ok", "acc_mean": acc, "acc_std": std, "nmi_mean": acc - 0.1,
                "nmi_std": std, "ari_mean": acc - 0.2, "ari_std": std, "train_minutes_mean": 15.0, **extra}
    return {"dataset": "fake", "n_samples": 70000, "n_clusters": 10, "seeds": [0, 1, 2], "split": "all",
            "budget_minutes": 15.0, "preset": "cpu-fashion-mnist", "machine": "a CPU", "date": "2026-01-01",
            "command": "deepclust bench --dataset fake --methods all --budget-minutes 15 --seeds 0,1,2 --out /x/y",
            "rows": [row("htcn", "method", 0.60, 0.02, epochs_mean=11.0, images_per_second_mean=879.4,
                         supervised_knn_acc_mean=0.81, supervised_knn_acc_std=0.01),
                     row("dchl", "method", 0.65, 0.01, epochs_mean=16.0, images_per_second_mean=1308.0),
                     row("UMAP + GMM (pixels)", "baseline", 0.575, 0.005, supervised_knn_acc_mean=0.75),
                     {"name": "hadis", "kind": "method", "status": "failed", "note": "RuntimeError: boom"}]}


def test_block_shows_mean_and_sd_best_in_bold_and_the_verdicts():
    block = readme_block(fake_results(), "benchmarks/results/fake.md")
    lines = block.splitlines()
    assert lines[0].startswith("All 70,000 images (train + test), K = 10, seeds 0, 1, 2 (mean ± sample standard "
                               "deviation, ddof = 1), each method's `cpu-fashion-mnist` preset with 15 minutes")
    assert "`deepclust bench --dataset fake --methods all --budget-minutes 15 --seeds 0,1,2`" in lines[0]  # no --out
    table = [line for line in lines if line.startswith("| ")]
    assert table[0] == "| method | ACC | NMI | ARI | kNN ACC† | epochs | train min | images/s |"
    assert table[1].startswith("| `dchl` | **0.650 ± 0.010** |") and table[1].endswith("| 16 | 15.0 | 1,308 |")
    assert table[2].startswith("| `htcn` | 0.600 ± 0.020 |") and "**0.810 ± 0.010**" in table[2]
    assert table[3].startswith("| UMAP + GMM (pixels) *(baseline)* | 0.575 ± 0.005 |") and table[3].endswith("| – |")
    assert "USE THE GROUND-TRUTH LABELS" in block and "Not run: hadis (failed: RuntimeError: boom)." in block
    assert "- dchl: mean ACC 0.6500 − 0.5750 of UMAP + GMM (pixels) = +0.0750; spread 0.0100 → above" in block
    assert "- htcn: mean ACC 0.6000 − 0.5750 of UMAP + GMM (pixels) = +0.0250; spread 0.0200 → above" in block
    assert ", on a CPU, 2026-01-01;" in lines[0]  # no matmul speed in these results: none in the line


def test_block_states_the_machines_matmul_speed_when_the_results_have_it():
    results = {**fake_results(), "matmul_size": 2048, "matmul_gflops": 190.46}
    assert ", on a CPU, float32 matmul 2048² at 190 GFLOP/s, 2026-01-01;" in readme_block(results, "fake.md")


def test_block_names_the_overrides_of_a_variant_table():
    results = {**fake_results(), "overrides": ["backbone.depth=2", "training.epochs=3"]}
    line = readme_block(results, "fake.md").splitlines()[0]
    assert "preset + `--set backbone.depth=2` `--set training.epochs=3` with" in line
    assert "--set" not in readme_block(fake_results(), "fake.md").splitlines()[0]


def test_missing_markers_are_a_clear_error():
    with pytest.raises(ValueError, match="no results block"):
        replace_block("# a README without markers\n", "block\n", RESULTS)
