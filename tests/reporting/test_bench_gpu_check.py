"""benchmarks/gpu_check.py: the whole check as a dry run on the CPU, its time limit and its refusals."""
import json
import os
import subprocess
import sys
import time

import pytest
from support import load_benchmark


def test_dry_run_on_the_cpu_runs_and_reports_every_stage(tmp_path):
    script = load_benchmark("gpu_check")
    out, work = tmp_path / "out", tmp_path / "work"
    completed = subprocess.run([sys.executable, script.__file__, "--device", "cpu", "--dry-run", "--out", str(out),
                                "--work-dir", str(work)], capture_output=True, text=True, timeout=600,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    result = json.loads((out / "gpu-check.json").read_text())
    markdown = (out / "gpu-check.md").read_text()
    assert result["dry_run"] and result["passed"] and "CPU" in result["device"]
    stages = {stage["name"]: stage for stage in result["stages"]}
    assert list(stages) == list(script.STAGES)
    for name in script.STAGES:
        assert script.TITLES[name] in markdown
    assert stages["cuda-tests"]["status"] == "skipped" and stages["cuda-tests"]["tests"] > 0
    assert "CUDA not available" in stages["cuda-tests"]["note"] and "CUDA not available" in markdown
    for name in ("device-views", "dataloader-views", "training", "torchrun"):
        assert stages[name]["status"] == "ok", (name, stages[name]["note"])
    methods = {row["method"]: row for row in stages["device-views"]["methods"]}
    assert {"htcn", "dchl", "concurl", "hadis", "hardreg"} <= set(methods)
    assert all(row["images_per_second"] > 0 and row["gflop_per_step"] > 0 and 0 <= row["view_share"] < 1
               for row in methods.values())
    assert methods["htcn"]["views"] == 3 and methods["htcn"]["image_shape"] == [3, 16, 16]
    assert all(row["device_over_dataloader"] > 0 for row in stages["dataloader-views"]["methods"])
    assert stages["training"]["epochs"] == 2 and (work / "fit" / "report" / "report.html").is_file()
    assert stages["torchrun"]["backend"] == "gloo" and stages["torchrun"]["labels_identical"]
    assert f"`{result['command']}`" in markdown and result["date"] in markdown


def test_a_command_past_its_deadline_is_killed_and_fails_the_stage(tmp_path):
    script = load_benchmark("gpu_check")
    started = time.perf_counter()
    with pytest.raises(script.StageFailure, match="did not finish"):
        script.run_command([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "sleep.log",
                           started + 1.5)
    assert time.perf_counter() - started < 30


def test_time_limit_shares_and_a_stage_without_time():
    script = load_benchmark("gpu_check")
    limit = script.TimeLimit(100.0)
    budgets = [*limit.budgets("cuda-tests"), *limit.budgets("device-views", "dataloader-views"),
               *limit.budgets("training"), *limit.budgets("torchrun")]
    assert budgets[0] == pytest.approx(100.0 * script.SHARES["cuda-tests"], rel=0.01)
    # the stages here took no time, so each left its share to the later ones: the last gets all but the reserve
    assert budgets[-1] == pytest.approx(100.0 * (1 - script.RESERVE), rel=0.01)
    stage = script.run_stage("training", 0.5, lambda deadline: {})
    assert stage["status"] == "failed" and "time limit" in stage["note"]


def test_a_real_run_needs_cuda(capsys):
    with pytest.raises(SystemExit):
        load_benchmark("gpu_check").main(["--device", "cpu"])
    assert "needs a CUDA device" in capsys.readouterr().err
