"""The results table writer on fake benchmark records (no training)."""
import csv
import io
import json

import numpy as np
import pytest

from deepclust.reporting.table import (
    COMPARISON_RULE, aggregate_records, compare_with_best_baseline, comparison_lines, format_csv, format_markdown,
    write_results,
)

COMMAND = "deepclust bench --dataset fake --methods all --budget-minutes 5 --seeds 0,1"


def run(name, seed, acc, kind="method", **extra):
    record = {"name": name, "kind": kind, "method": "kmeans" if kind == "baseline" else name,
              "preset": "cpu-fashion-mnist" if kind == "method" else "features=pixels", "seed": seed,
              "status": "ok", "note": "", "acc": acc, "nmi": acc - 0.1, "ari": acc - 0.2, "n_clusters_used": 10,
              "train_seconds": 120.0, "images_per_second": 500.0, "peak_memory_mb": 100.0,
              "memory_kind": "CPU peak RSS growth (VmHWM)", "device": "cpu", "run_dir": f"runs/{name}-{seed}"}
    record.update(extra)
    return record


@pytest.fixture
def records():
    return [
        run("k-means (pixels)", 0, 0.47, kind="baseline", train_seconds=30.0),
        run("htcn", 0, 0.60, n_clusters_used=9, train_seconds=60.0, peak_memory_mb=200.0),
        run("htcn", 1, 0.70, train_seconds=180.0, peak_memory_mb=400.0),
        {"name": "dchl", "kind": "method", "method": "dchl", "preset": "cpu-fashion-mnist", "seed": 0,
         "status": "skipped", "note": "preset 'cpu-fashion-mnist' not available"},
        run("hadis", 0, 0.55),
        {"name": "hadis", "kind": "method", "method": "hadis", "preset": "cpu-fashion-mnist", "seed": 1,
         "status": "failed", "note": "RuntimeError: boom"},
        run("k-means (pixels)", 1, 0.49, kind="baseline", train_seconds=30.0),
        {"name": "k-means (random small_cnn)", "kind": "baseline", "method": "kmeans", "preset": "features=small_cnn",
         "seed": 0, "status": "failed", "note": "ValueError: small_cnn: image_size=8 is too small"},
    ]


def test_rows_mean_std_and_order(records):
    rows = aggregate_records(records)
    assert [r["name"] for r in rows] == ["htcn", "dchl", "hadis", "k-means (pixels)", "k-means (random small_cnn)"]
    htcn = rows[0]
    assert htcn["n_seeds"] == 2 and htcn["seeds"] == [0, 1]
    assert htcn["acc_mean"] == pytest.approx(0.65)
    assert htcn["acc_std"] == pytest.approx(np.sqrt(((0.60 - 0.65) ** 2 + (0.70 - 0.65) ** 2) / 1))  # ddof = 1
    assert htcn["nmi_mean"] == pytest.approx(0.55) and htcn["ari_mean"] == pytest.approx(0.45)
    assert htcn["train_minutes_mean"] == pytest.approx(2.0) and htcn["train_minutes_std"] == pytest.approx(np.sqrt(2))
    assert htcn["peak_memory_mb_mean"] == pytest.approx(300.0)
    assert (htcn["clusters_min"], htcn["clusters_max"]) == (9, 10)
    assert rows[1]["status"] == "skipped" and "not available" in rows[1]["note"] and rows[1]["acc_mean"] is None
    hadis = rows[2]
    assert hadis["status"] == "ok" and hadis["n_seeds"] == 1 and hadis["acc_std"] is None
    assert "seed 1 failed" in hadis["note"]
    pixels = rows[3]
    assert pixels["kind"] == "baseline" and pixels["acc_mean"] == pytest.approx(0.48)
    assert pixels["train_minutes_mean"] == pytest.approx(0.5)
    assert rows[4]["status"] == "failed"


def test_markdown_contents(records):
    text = format_markdown(aggregate_records(records), {"dataset": "fake", "command": COMMAND, "n_samples": 100,
                                                        "seeds": [0, 1], "budget_minutes": 5})
    assert f"`{COMMAND}`" in text
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 3  # header, htcn, hadis, k-means pixels (skipped/failed rows are listed below)
    htcn = next(line for line in table if line.startswith("| htcn "))
    assert "0.6500 ± 0.0707" in htcn and "9–10" in htcn and "2.00 ± 1.41" in htcn and "300 ± 141" in htcn
    hadis = next(line for line in table if line.startswith("| hadis "))
    assert "0.5500 |" in hadis and "±" not in hadis
    assert "| k-means (pixels) *(baseline)* | features=pixels | 2 | 0.4800 ± 0.0141" in text
    assert "dchl: skipped — preset 'cpu-fashion-mnist' not available" in text
    assert "k-means (random small_cnn): failed — ValueError" in text
    assert "hadis: seed 1 failed: RuntimeError: boom" in text
    assert "ddof = 1" in text and "VmHWM" in text
    assert "`runs/htcn-0`, `runs/htcn-1`" in text
    assert "matmul" not in text  # results made before the machine's speed was recorded


def test_markdown_states_the_machines_matmul_speed(records):
    meta = {"dataset": "fake", "command": COMMAND, "machine": "CPU (2 cores)", "matmul_size": 2048,
            "matmul_gflops": 106.5}
    text = format_markdown(aggregate_records(records), meta)
    assert "Machine: CPU (2 cores); its speed: float32 matmul 2048×2048 at 106.5 GFLOP/s." in text


def test_csv_and_json_files(records, tmp_path):
    meta = {"dataset": "fake", "command": COMMAND, "machine": "test machine", "seeds": [0, 1]}
    paths = write_results(records, tmp_path / "out", meta)
    assert [p.name for p in paths] == ["fake.md", "fake.csv", "fake.json"] and all(p.is_file() for p in paths)
    rows = list(csv.DictReader(io.StringIO(paths[1].read_text())))
    assert [r["name"] for r in rows][0] == "htcn" and len(rows) == 5
    assert float(rows[0]["acc_mean"]) == pytest.approx(0.65) and float(rows[0]["acc_std"]) == pytest.approx(0.0707107)
    assert rows[0]["seeds"] == "0 1" and rows[1]["status"] == "skipped" and rows[1]["acc_mean"] == ""
    assert rows[3]["kind"] == "baseline"
    data = json.loads(paths[2].read_text())
    assert data["command"] == COMMAND and data["machine"] == "test machine"
    assert len(data["runs"]) == len(records) and len(data["rows"]) == 5
    assert data["rows"][0]["acc_mean"] == pytest.approx(0.65)
    assert format_csv(aggregate_records(records)) == paths[1].read_text()


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="name"):
        aggregate_records([{"acc": 0.5}])
    with pytest.raises(ValueError, match="dataset"):
        write_results([], "/tmp", {})


def test_comparison_with_the_best_baseline(records):
    records = records + [run("k-means (pixels)", 2, 0.48, kind="baseline"),
                         run("UMAP + GMM (pixels)", 0, 0.58, kind="baseline"),
                         run("UMAP + GMM (pixels)", 1, 0.56, kind="baseline"),
                         run("dchl", 1, 0.80), run("dchl", 2, 0.82)]
    rows = aggregate_records(records)
    comparisons = {entry["method"]: entry for entry in compare_with_best_baseline(rows)}
    assert set(comparisons) == {"htcn", "hadis", "dchl"}  # every method that ran
    htcn = comparisons["htcn"]  # 0.65 ± 0.0707 against UMAP + GMM 0.57 ± 0.0141 (the best baseline)
    assert htcn["baseline"] == "UMAP + GMM (pixels)" and htcn["baseline_acc_mean"] == pytest.approx(0.57)
    assert htcn["difference"] == pytest.approx(0.08) and htcn["spread"] == pytest.approx(np.sqrt(0.005))
    assert htcn["verdict"] == "above"  # 0.08 > 0.0707
    dchl = comparisons["dchl"]  # 0.81 ± 0.0141: +0.24 > 0.0141
    assert dchl["verdict"] == "above" and dchl["spread"] == pytest.approx(np.sqrt(0.0002))
    assert comparisons["hadis"]["verdict"] == "no verdict" and comparisons["hadis"]["spread"] is None  # one seed
    close = aggregate_records([run("m", 0, 0.60), run("m", 1, 0.64), run("b", 0, 0.58, kind="baseline"),
                               run("b", 1, 0.60, kind="baseline")])
    (entry,) = compare_with_best_baseline(close)  # +0.03 against a spread of 0.0283: above, barely
    assert entry["verdict"] == "above"
    closer = aggregate_records([run("m", 0, 0.60), run("m", 1, 0.62), run("b", 0, 0.56, kind="baseline"),
                                run("b", 1, 0.64, kind="baseline")])
    assert compare_with_best_baseline(closer)[0]["verdict"] == "not above"  # +0.01 against 0.0566
    lines = comparison_lines(compare_with_best_baseline(closer))
    assert lines == ["- m: mean ACC 0.6100 − 0.6000 of b = +0.0100; spread 0.0566 → NOT above the best baseline by "
                     "more than the spread. Mean NMI 0.5100 − 0.5000 of b = +0.0100."]
    text = format_markdown(rows, {"dataset": "fake"})
    assert "## Against the best baseline" in text and COMPARISON_RULE in text
    assert "- hadis: mean ACC 0.5500 − 0.5700 of UMAP + GMM (pixels) = -0.0200; one seed, so no spread: no verdict. " \
        "Mean NMI 0.4500 − 0.4700 of UMAP + GMM (pixels) = -0.0200." in text
    mixed = aggregate_records([run("m", 0, 0.70, nmi=0.60), run("b", 0, 0.65, kind="baseline", nmi=0.50),
                               run("u", 0, 0.60, kind="baseline", nmi=0.66)])
    (entry,) = compare_with_best_baseline(mixed)  # ACC against b (best ACC), NMI against u (best NMI)
    assert (entry["baseline"], entry["nmi_baseline"]) == ("b", "u")
    assert entry["nmi_difference"] == pytest.approx(-0.06)
    assert compare_with_best_baseline(aggregate_records([run("m", 0, 0.6)])) == []  # no baseline: no comparison


def test_supervised_embedding_scores_are_averaged_and_marked(tmp_path):
    records = [run("m", seed, 0.6, supervised_knn_acc=knn, supervised_probe_acc=probe)
               for seed, knn, probe in ((0, 0.80, 0.85), (1, 0.82, 0.87))]
    rows = aggregate_records(records)
    assert rows[0]["supervised_knn_acc_mean"] == pytest.approx(0.81)
    assert rows[0]["supervised_probe_acc_std"] == pytest.approx(np.sqrt(0.0002))
    text = format_markdown(rows, {"dataset": "fake"})
    assert "kNN ACC†" in text and "0.8100 ± 0.0141" in text and "WITH THE GROUND-TRUTH LABELS" in text
    paths = write_results(records, tmp_path, {"dataset": "fake"})
    data = json.loads(paths[2].read_text())
    assert [r["supervised_knn_acc"] for r in data["runs"]] == [0.80, 0.82]  # per seed
    assert data["comparisons"] == [] and "supervised_probe_acc_mean" in paths[1].read_text().splitlines()[0]
