"""scripts/gpu_check.sh, the first script a GPU box runs, rehearsed on this CPU (`--device cpu --tiny`) through the
same code: its correctness steps pass here (`--quick`: the timings, minutes of compiling on a CPU, are left out),
every step's result is written as soon as it is known, and a failing step makes the exit status non-zero without
losing the others. What only a GPU can show is the script's to find on one (README, "The GPU check")."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import REPO

sys.path.insert(0, str(REPO / "scripts"))
import gpu_check  # noqa: E402


def test_the_quick_rehearsal_passes_every_correctness_step(tmp_path, random_home):
    out = tmp_path / "gpu_timings.md"
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "--device", "cpu", "--tiny", "--quick",
                           "--out", str(out)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "TORCH_HOME": str(random_home)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.with_suffix(".json").read_text())
    steps = {step["step"]: step for step in report["steps"]}
    assert list(steps) == list(gpu_check.CHECKS) and report["failed"] == [] and report["finished"]
    assert all(step["ok"] for step in steps.values())
    assert steps["resume"]["values"]["outcomes"] == dict.fromkeys(gpu_check.resumed_tasks(tiny=True), "equal")
    assert steps["lstm_dtype"]["detail"].endswith("got ['torch.float32']; carried state ['torch.float32']; decoder "
                                                  "output torch.bfloat16")
    assert steps["gan_sums"]["values"]["relative"] <= 1e-4 and steps["foreach"]["values"]["fp32"]["identical"]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and " | ok | " in line]
    assert [row.split(" | ")[0][2:] for row in rows] == list(gpu_check.CHECKS)
    assert out.read_text().rstrip().endswith("every check passed")


def test_a_failing_step_exits_non_zero_and_every_other_step_is_still_written(tmp_path, random_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(random_home))

    def broken(ctx):
        raise RuntimeError("broken on purpose")

    monkeypatch.setitem(gpu_check.STEPS, "foreach", broken)
    out = tmp_path / "gpu_timings.md"
    assert gpu_check.main(["--device", "cpu", "--tiny", "--steps", "device,foreach,lstm_dtype", "--out", str(out)]) == 1
    report = json.loads(out.with_suffix(".json").read_text())
    assert [(step["step"], step["ok"]) for step in report["steps"]] == [("device", True), ("foreach", False),
                                                                         ("lstm_dtype", True)]
    assert report["steps"][1]["detail"] == "RuntimeError: broken on purpose" and report["failed"] == ["foreach"]
    text = out.read_text()
    assert "| foreach | FAILED |" in text and "| lstm_dtype | ok |" in text
    assert text.rstrip().endswith("FAILED: foreach")


def test_a_device_that_does_not_work_stops_the_check_at_once(tmp_path, random_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(random_home))
    out = tmp_path / "gpu_timings.md"
    assert gpu_check.main(["--device", "cuda", "--out", str(out)]) == 1  # this machine has no GPU
    report = json.loads(out.with_suffix(".json").read_text())
    assert [(step["step"], step["ok"]) for step in report["steps"]] == [("device", False)]
    assert report["stopped"] == "the device step failed: nothing else can run on it"


@pytest.mark.parametrize("args, message", [
    (["--steps", "device,fid2"], "gpu_check: error: step 'fid2' is not allowed; allowed: device, resume, cuda_rng, "),
    (["--device", "tpu:0"], "gpu_check: error: --device 'tpu:0' is not a device; e.g. cuda, cuda:1, cpu"),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    assert gpu_check.main([*args, "--out", str(tmp_path / "x.md")]) == 2
    assert capsys.readouterr().err.startswith(message) and not (tmp_path / "x.md").exists()


def test_only_a_full_size_cuda_run_writes_the_gpu_reference_timings():
    import torch

    reference = REPO / "results" / "reference" / "gpu_timings.md"
    assert gpu_check.default_out(torch.device("cuda"), tiny=False) == reference
    assert gpu_check.default_out(torch.device("cuda:1"), tiny=False) == reference
    for device, tiny in (("cpu", True), ("cpu", False), ("cuda", True)):
        assert gpu_check.default_out(torch.device(device), tiny) == REPO / "results" / "gpu_check" / "rehearsal.md"
