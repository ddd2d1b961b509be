"""adala-plan: every run of a sweep with its state, read from a run store written by the store itself."""
from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess

import pytest

from adala_bench.plan import main
from adala_bench.store import RunDir
from helpers import BIN, compose, run_path

OVERRIDES = ("profile=smoke", "epochs=10")  # the smoke profile, stretched so the epoch arithmetic says something
EPOCHS = 10
GUESS = 15.0  # gpu_hours.DEFAULT_SECONDS_PER_EPOCH["cifar10"]


def path_of(root, task, optimizer, seed):
    """The run directory as the runner names it (composed independently of adala-plan)."""
    return run_path(compose("+experiment=table2", *OVERRIDES, f"results.root={root}", f"task={task}",
                                   f"optimizer={optimizer}", f"seed={seed}"))


def rows(wall_per_epoch, epochs=EPOCHS):
    return [{"epoch": e, "wall_s": wall_per_epoch * (e + 1), "test_acc": 10.0 + e} for e in range(epochs)]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Table 2 (smoke, 10 epochs, seeds 0-2) with every state; the 'running now' run's lock held by this process."""
    root = tmp_path_factory.mktemp("plan") / "runs"

    def run(optimizer, seed, task="cifar10_vgg11"):
        return RunDir(path_of(root, task, optimizer, seed))

    for seed, wall in ((0, 300.0), (1, 500.0)):  # adam: two completed runs, 300 and 500 s/epoch -> 400 s/epoch
        done = run("adam", seed)
        done.path.mkdir(parents=True)
        done.write_metrics(rows(wall))
        done.write_status("completed", epochs_done=EPOCHS, reason=None)
    failed = run("adam", 2)  # failed after 4 epochs: 6 left at the measured 400 s/epoch
    failed.path.mkdir(parents=True)
    failed.write_metrics(rows(999.0, 4))  # an unfinished run's timing is never used
    failed.write_status("failed", epochs_done=4, reason="KeyboardInterrupt; re-run to resume from the last checkpoint")

    live = run("sgd", 0).lock()  # running now: status running and the lock held (by this test process)
    live.write_status("running", epochs_done=3)
    killed = run("sgd", 1)  # killed: status running, the lock file there but free
    killed.lock().unlock()
    killed.write_status("running", epochs_done=6)
    diverged = run("sgd", 2)
    diverged.path.mkdir(parents=True)
    diverged.write_metrics(rows(50.0, 2))
    diverged.write_status("diverged", epochs_done=2, diverged_at={"epoch": 2, "step": 77})

    adala = run("adala", 0)  # one completed AdaLA run: 800 s/epoch for its two missing seeds
    adala.path.mkdir(parents=True)
    adala.write_metrics(rows(800.0))
    adala.write_status("completed", epochs_done=EPOCHS)
    try:
        yield root, live, killed
    finally:
        live.unlock()


@pytest.fixture(scope="module")
def full(store):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["+experiment=table2", *OVERRIDES, "seed=0,1,2", f"results.root={store[0]}"]) == 0
    return out.getvalue()


def state_of(output, task, optimizer, seed):
    match = re.search(rf"^{task}\s+{optimizer}\s+{seed}\s+(not started|\S+)\s*(.*?)\s+(-|[\d.]+)$", output, re.M)
    assert match, f"no line for {task} {optimizer} {seed}"
    return match.groups()


# Expected seconds left: adam seed 2 (6 epochs × 400 s), sgd seeds 0 and 1 (7 and 4 epochs at the diverged run's
# 50 s/epoch: a finished run's timing), adala seeds 1, 2 (2 × 10 × 800 s), the other two AdaLA configs
# (2 × 3 × 10 × 15 s × 2 for the look-ahead), the other 25 configs (25 × 3 × 10 × 15 s, the cifar10 guess).
SECONDS_LEFT = 6 * 400 + 7 * 50 + 4 * 50 + 2 * 10 * 800 + 2 * 3 * 10 * GUESS * 2 + 25 * 3 * 10 * GUESS


def test_each_state_and_the_totals(full, store):
    lines = full.splitlines()
    assert lines[-1] == "90 runs: 4 done, 86 left"
    assert "by state: 3 completed, 1 diverged, 1 running, 2 interrupted, 83 not started" in lines
    assert state_of(full, "cifar10_vgg11", "adam", 0)[:2] == ("completed", "10/10 epochs, 300.0 s/epoch")
    assert state_of(full, "cifar10_vgg11", "adam", 2) == (
        "interrupted", "4/10 epochs done; KeyboardInterrupt", f"{6 * 400 / 3600:.2f}")
    assert state_of(full, "cifar10_vgg11", "sgd", 0) == ("running", f"3/10 epochs done, pid {os.getpid()}",
                                                         f"{7 * 50 / 3600:.2f}")
    assert state_of(full, "cifar10_vgg11", "sgd", 1)[:2] == ("interrupted", "6/10 epochs done; killed (status running, lock free)")
    assert state_of(full, "cifar10_vgg11", "sgd", 2) == ("diverged", "at epoch 2, step 77", "-")
    assert state_of(full, "cifar10_vgg11", "adala", 1)[::2] == ("not started", f"{10 * 800 / 3600:.2f}")
    assert state_of(full, "cifar10_densenet121", "fromage", 2)[::2] == ("not started", f"{10 * GUESS / 3600:.2f}")
    assert f"est. GPU-hours left: {SECONDS_LEFT / 3600:.1f}" in lines
    adam = next(line for line in lines if re.match(r"cifar10_vgg11\s+adam\s+3\s", line))  # the per-config table
    assert adam.split()[-4:] == ["400.0", "measured", "(n=2)", f"{6 * 400 / 3600:.2f}"]
    assert "training only, evaluation excluded" in full


def test_probe_leaves_the_locks_as_they_were(full, store):
    from adala_bench.store import RunStoreError

    _, live, killed = store
    with pytest.raises(RunStoreError):  # still held by its owner
        RunDir(live.path).lock()
    RunDir(killed.path).lock().unlock()  # free, as before
    assert live.read_status()["state"] == killed.read_status()["state"] == "running"


def test_hours_are_measured_per_config(store):
    from adala_bench.plan import survey
    from adala_bench.sweep_runs import sweep_cells

    estimates = survey(sweep_cells(["+experiment=table2", *OVERRIDES, "seed=0,1,2", f"results.root={store[0]}"]))
    by_name = {(e.cell.task, e.cell.optimizer): e for e in estimates}
    adam, sgd, adala = (by_name["cifar10_vgg11", name] for name in ("adam", "sgd", "adala"))
    assert adam.seconds_per_epoch == pytest.approx(400.0) and adam.source == "measured (n=2)"
    assert [adam.hours_left(record) for record in adam.records] == [0, 0, pytest.approx(6 * 400 / 3600)]
    assert sgd.seconds_per_epoch == 50.0  # the diverged run's 2 epochs are a finished run's timing too
    assert adala.seconds_per_epoch == 800.0
    assert by_name["cifar10_resnet34", "adala"].seconds_per_epoch == 2 * GUESS
    total = sum(e.hours_left(record) for e in estimates for record in e.records)
    assert total == pytest.approx(SECONDS_LEFT / 3600)


def test_summary_seed_override_and_other_sweeps(store, capsys):
    assert main(["+experiment=table2", "profile=smoke", "epochs=10,20", "seed=range(0,2)", "optimizer=adam,sgd",
                 f"results.root={store[0]}", "--summary"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("+experiment=table2 profile=smoke epochs=10,20 seed=range(0,2) optimizer=adam,sgd ")
    assert "12 configs, 24 runs (seeds 0,1) under " in lines[0]
    assert sum("not started" in line for line in lines) == 2  # no run lines: the header and the by-state line
    assert re.search(r"^cifar10_vgg11\s+adam\s+epochs=10\s+2\s+2\s+0\s", out, re.M)
    assert re.search(r"^cifar10_vgg11\s+adam\s+epochs=20\s+2\s+0\s+2\s", out, re.M)
    assert lines[-1] == "24 runs: 2 done, 22 left"


def test_other_overrides_name_other_runs(store, capsys):
    assert main(["+experiment=table2", "profile=smoke", "seed=0,1,2", f"results.root={store[0]}",
                 "--summary"]) == 0  # 2 epochs: another tag
    assert capsys.readouterr().out.splitlines()[-1] == "90 runs: 0 done, 90 left"


def test_it_plans_what_adala_train_multirun_takes(store, capsys):
    """No experiment, Hydra's choice() and glob(), and the seed from the config when none is given."""
    assert main(["task=glob(cifar10_v*)", "optimizer=choice(adam,sgd)", *OVERRIDES, f"results.root={store[0]}"]) == 0
    out = capsys.readouterr().out
    assert "2 configs, 2 runs (seeds 0) under " in out.splitlines()[0]
    assert state_of(out, "cifar10_vgg11", "adam", 0)[0] == "completed"
    assert state_of(out, "cifar10_vgg11", "sgd", 0)[0] == "running"
    assert out.splitlines()[-1] == "2 runs: 1 done, 1 left"


@pytest.mark.parametrize("argv, message", [
    (["+experiment=table9"], "unknown experiment 'table9'; allowed: "),
    (["table2"], "give the experiment as +experiment=table2 (adala-plan takes adala-train's overrides)"),
    (["+experiment=table2", "seed=x"], "seed='x' is not allowed; it must be an integer"),
    (["+experiment=table2", "seed=1,0,1"], "a seed is given twice"),
    (["+experiment=table2", "seed=-1"], "seed=-1 is not allowed; it must be a non-negative integer"),
    (["+experiment=table2", "optimizer=nope"], "unknown optimizer 'nope'; allowed: "),
    (["+experiment=table2", "optimizer=choice(adam,nope)"], "unknown optimizer 'nope'; allowed: "),
    (["+experiment=table2", "epochs=0"], "epochs=0 is not allowed"),
    (["optimizer=choice(adam"], "cannot read the override 'optimizer=choice(adam'"),
    (["--seeds", "0"], "unrecognized arguments: --seeds"),
])
def test_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("adala-plan: error: ") and message in err and err.count("\n") == 1, err


def test_console_script(tmp_path):
    done = subprocess.run([str(BIN / "adala-plan"), "+experiment=table3", "optimizer=adam", "seed=0", "--summary",
                           f"results.root={tmp_path}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "3 runs: 0 done, 3 left"


def test_last_line_reads_from_the_end(tmp_path):
    from adala_bench.gpu_hours import seconds_per_epoch
    from adala_bench.records import last_line, read_run

    path = tmp_path / "metrics.jsonl"
    long = '{"epoch": 1, "pad": "' + "x" * 10000 + '"}'
    path.write_text('{"epoch": 0}\n' + long + "\n\n")
    assert last_line(path, chunk=64) == long
    path.write_text('{"epoch": 0}')
    assert last_line(path) == '{"epoch": 0}'
    path.write_text("")
    assert last_line(path) is None and last_line(tmp_path / "missing") is None
    path.write_bytes(b'{"epoch": 0}\n{"epoch": 1, "wall_s": \xff}\n')  # a damaged row is no reason to crash
    assert last_line(path) == '{"epoch": 1, "wall_s": \ufffd}'
    (tmp_path / "status.json").write_text('{"state": "completed", "epochs_done": 2}')
    record = read_run(tmp_path)
    assert record.done and record.last_row is None and seconds_per_epoch(record) is None
