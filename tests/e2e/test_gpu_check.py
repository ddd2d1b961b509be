"""scripts/gpu_check.sh, the check meant for the first GPU a project is lent, runs end to end: rehearsed here on CPU
at smoke sizes through the same code (one task per path that broke before: the GAN's FID sizing)."""

from __future__ import annotations

import os
import subprocess

from helpers import REPO


def test_the_gpu_check_rehearses_on_cpu(tmp_path):
    out = tmp_path / "gpu_timings.md"
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "--device", "cpu", "--tiny", "--tasks",
                           "gan_wgan_gp", "--profiles", "paper", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    text = out.read_text()
    (row,) = [line for line in text.splitlines() if line.startswith("| gan_wgan_gp |")]
    assert row.split("|")[1:3] == [" gan_wgan_gp ", " paper "] and row.rstrip().endswith("critic steps/s |")
    assert "- resume after an interruption equals the straight run, bit for bit: True" in text
    assert "AdaLA foreach vs per-tensor on cpu, 10 steps: bit-identical" in text
    bad = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "--device", "cpu", "--tiny", "--tasks",
                          "cifar10_vgg12", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "'cifar10_vgg12' is not allowed; allowed: cifar10_vgg11, " in bad.stderr
