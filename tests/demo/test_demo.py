"""The README's demo section runs as written, on a fresh copy of the repository, offline: `make demo` from nothing,
then again (it skips what it finished), then `make clean-demo`. Minutes on 2 cores: `make test-demo`, run by CI after
`make test`, not part of it."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pandas as pd

from helpers import fresh_copy, section_commands


def test_the_demo_runs_as_written_and_reports_every_task(tmp_path):
    commands = section_commands("The CPU demo, end to end")
    assert commands == ["make demo", "make clean-demo"]
    clone = fresh_copy(tmp_path)
    env = {key: value for key, value in os.environ.items() if key not in ("TORCH_HOME", "PYTHONPATH")}
    env.update(HOME=str(tmp_path / "home"))

    def run(command: str) -> str:
        started = time.monotonic()
        done = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True,
                              timeout=1200)
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        print(f"{command}: {time.monotonic() - started:.0f} s")
        return done.stdout + done.stderr

    run(commands[0])
    report = clone / "results" / "demo" / "report"
    page = (report / "index.md").read_text()
    assert "## The answer: AdaLA against AdaBelief" in page and (report / "index.html").is_file()
    # the claims table right after the answer, with the fix at w = 0.5 on every task and its figure per family
    assert page.index("## The answer") < page.index("## The paper's claims, tested") < page.index("## Across the")
    assert "| The proposed fix: more stable |" in page and "(fig8_lookahead_weight_cifar10.png)" in page
    fix = pd.read_csv(report / "instability.csv")
    assert len(fix[(fix["optimizer"] == "adala") & (fix["lookahead_weight"] == 0.5)]) == 8 * 2
    for table, models in (("table2", 3), ("table3", 3), ("table4", 2)):  # every task, 4 optimizers, 2 seeds each
        text = (report / f"{table}.csv").read_text()
        rows = [line for line in text.splitlines()[1:] if re.search(r",(adala|adabelief|sgd|adam),", line)]
        assert len(rows) == 4 * models, table
    again = run(commands[0])
    assert "adala-train: starting" not in again and "is already completed; nothing to do" in again
    run(commands[1])
    assert not (clone / "results" / "demo").exists()
