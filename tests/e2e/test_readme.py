"""The README's tour runs exactly as written, on a fresh copy of the repository, offline: the commands are read
from the README itself, so the two cannot drift apart. (The demo section's commands run in tests/demo, `make
test-demo`: minutes, so CI runs them after `make test`.)"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from helpers import REPO, fresh_copy, section_commands


def test_the_tour_runs_as_written_offline(tmp_path):
    commands = section_commands("A tour on your CPU")
    assert len(commands) == 6 and all(c.startswith((".venv/bin/", "TORCH_HOME=")) for c in commands)
    clone = fresh_copy(tmp_path)
    env = {key: value for key, value in os.environ.items() if key not in ("TORCH_HOME", "PYTHONPATH")}
    env.update(OMP_NUM_THREADS="1", HOME=str(tmp_path / "home"))  # no cached downloads to lean on
    outputs = []
    for command in commands:
        done = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        outputs.append(done.stdout + done.stderr)
    tour = clone / "results" / "tour"
    assert "completed: test_loss=" in outputs[0]
    assert "is already completed; nothing to do" in outputs[1]  # the run of the first step is one of the sweep's
    assert "RANDOM WEIGHTS: not a real FID" in outputs[2]
    assert outputs[4].splitlines()[-1] == "12 runs: 9 done, 3 left"
    assert f"the report is {Path('results/tour/report/index.md')}" in outputs[5]
    page = (tour / "report" / "index.md").read_text()
    assert "## The answer: AdaLA against AdaBelief" in page and "random Inception weights" in page
    assert (tour / "report" / "index.html").stat().st_size > 10_000
    assert not (clone / "data").exists()  # everything under results/tour: the data too


def test_the_demo_section_names_the_make_targets_the_makefile_has():
    commands = section_commands("The CPU demo, end to end")
    assert [c.split()[:2] for c in commands] == [["make", "demo"], ["make", "clean-demo"]]
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^clean-demo:", makefile, re.M)
