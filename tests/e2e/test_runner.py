"""The runner and the run store on real (small) CIFAR-format runs: train, skip, resume, diverge, refuse bad input."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from importlib import metadata

import pytest
import torch
import yaml

from adala_bench import runner
from adala_bench.config import ConfigError
from adala_bench.records import read_run
from adala_bench.runner import train_one
from adala_bench.store import RunDir, RunStoreError
from helpers import BIN, interrupt_at, metrics_without_time, run_path

ADALA_BIN = str(BIN / "adala-train")


@pytest.mark.parametrize("task", ["cifar10_vgg11", "cifar10_resnet34", "cifar10_densenet121"])
def test_smoke_run_of_each_model_trains_and_loss_falls(smoke, task):
    cfg = smoke(f"task={task}", "optimizer=adam", "epochs=3")
    assert train_one(cfg) == "completed"
    run = RunDir(run_path(cfg))
    rows = run.read_metrics()
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    steps_per_epoch = 256 // 32
    assert [row["step"] for row in rows] == [steps_per_epoch * (e + 1) for e in range(3)]
    assert [row["grad_evals"] for row in rows] == [row["step"] for row in rows]
    # lr × 0.1 from epoch 1 on (the smoke profile's milestone)
    assert rows[0]["lr"] == pytest.approx(1e-3) and rows[1]["lr"] == pytest.approx(1e-4)
    for row in rows:
        assert set(row) >= {"epoch", "grad_evals", "wall_s", "lr", "train_loss", "train_acc", "test_loss", "test_acc"}
        assert 0.0 <= row["test_acc"] <= 100.0
    status = run.read_status()
    assert status["state"] == "completed" and status["epochs_done"] == 3
    assert status["versions"]["torch"] == metadata.version("torch")
    assert status["device"].startswith("cpu") and status["started_at"] and status["ended_at"]
    saved = yaml.safe_load((run.path / "config.yaml").read_text())
    # config.yaml records the epochs and batch size that ran, also where the task's protocol has others
    assert saved["task"]["name"] == task and saved["epochs"] == saved["task"]["epochs"] == 3
    assert saved["batch_size"] == saved["task"]["batch_size"] == 32


def test_adala_counts_two_gradient_evaluations_per_step(smoke):
    cfg = smoke("task=cifar10_vgg11", "optimizer=adala", "epochs=1")
    assert train_one(cfg) == "completed"
    (row,) = RunDir(run_path(cfg)).read_metrics()
    assert row["step"] == 8 and row["grad_evals"] == 16


def test_validation_split_is_held_out_and_logged(smoke):
    cfg = smoke("task=cifar10_vgg11", "optimizer=sgd", "epochs=1", "data.val_size=64")
    assert train_one(cfg) == "completed"
    (row,) = RunDir(run_path(cfg)).read_metrics()
    assert row["step"] == (256 - 64) // 32  # the held-out images are not trained on
    assert {"val_loss", "val_acc"} <= set(row) and 0.0 <= row["val_acc"] <= 100.0
    assert row["val_acc"] * 64 / 100 == pytest.approx(round(row["val_acc"] * 64 / 100))  # a count out of 64 images

    with pytest.raises(ConfigError, match="data.val_size=256 leaves no training images"):
        train_one(smoke("task=cifar10_vgg11", "optimizer=sgd", "data.val_size=256"))


def test_run_directory_is_named_from_the_resolved_config(smoke, tmp_path):
    a = run_path(smoke("task=cifar10_vgg11", "optimizer=adam", "seed=3"))
    assert a.parent.parent.parent.name == "cifar10_vgg11" and a.parent.parent.name == "adam" and a.name == "seed=3"
    assert a.parent.name.startswith("lr0.001-betas0.9,0.999-eps1e-08-weight_decay0.0005-")
    # same config → same directory; anything that changes the result → another directory; paths and device don't count
    assert run_path(smoke("task=cifar10_vgg11", "optimizer=adam", "seed=3")) == a
    assert run_path(smoke("task=cifar10_vgg11", "optimizer=adam", "seed=3", "epochs=5")).parent != a.parent
    assert run_path(smoke("task=cifar10_vgg11", "optimizer=adam", "seed=3", "optimizer.lr=0.01")).parent != a.parent
    moved = run_path(smoke("task=cifar10_vgg11", "optimizer=adam", "seed=3", "device=auto", results=tmp_path / "elsewhere"))
    assert moved.relative_to(tmp_path / "elsewhere") == a.relative_to(tmp_path / "runs")


def test_rerunning_a_finished_run_does_nothing(smoke, capsys):
    cfg = smoke("task=cifar10_vgg11", "optimizer=sgd", "epochs=1")
    assert train_one(cfg) == "completed"
    run = RunDir(run_path(cfg))
    before = {f.name: f.stat().st_mtime_ns for f in run.path.iterdir()}
    capsys.readouterr()
    assert train_one(cfg) == "completed"
    assert "already completed; nothing to do" in capsys.readouterr().out
    assert {f.name: f.stat().st_mtime_ns for f in run.path.iterdir()} == before


@pytest.mark.parametrize("task,optimizer", [("cifar10_vgg11", "adala"), ("cifar10_resnet34", "sgd")])
def test_resume_after_interruption_equals_an_uninterrupted_run(smoke, tmp_path, monkeypatch, task, optimizer):
    """VGG11 has dropout (RNG state matters) and AdaLA a look-ahead closure; ResNet34 has BatchNorm buffers."""
    straight = smoke(f"task={task}", f"optimizer={optimizer}", "epochs=3", results=tmp_path / "straight")
    assert train_one(straight) == "completed"

    interrupted = smoke(f"task={task}", f"optimizer={optimizer}", "epochs=3", results=tmp_path / "interrupted")
    interrupt_at(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train_one(interrupted)
    run = RunDir(run_path(interrupted))
    status = run.read_status()
    assert status["state"] == "failed" and "interrupted" in status["reason"] and status["epochs_done"] == 2
    assert len(run.read_metrics()) == 2
    run.write_metrics(run.read_metrics()[:1])  # as a crash between the checkpoint and the metrics write leaves it
    with pytest.raises(KeyboardInterrupt):
        train_one(interrupted)  # resumes at epoch 2 and is interrupted again at once
    assert len(run.read_metrics()) == 2  # the checkpoint's record is written back

    monkeypatch.undo()
    assert train_one(interrupted) == "completed"
    reference = RunDir(run_path(straight))
    assert metrics_without_time(run) == metrics_without_time(reference)
    resumed, uninterrupted = run.load_checkpoint(), reference.load_checkpoint()
    for name, tensor in uninterrupted["models"]["model"].items():
        assert torch.equal(resumed["models"]["model"][name], tensor), name
    optimizer, resumed_optimizer = uninterrupted["optimizers"]["model"]["state"], resumed["optimizers"]["model"]["state"]
    assert optimizer["state"].keys() == resumed_optimizer["state"].keys()
    for index, state in optimizer["state"].items():
        for key, value in state.items():
            other = resumed_optimizer["state"][index][key]
            assert torch.equal(other, value) if torch.is_tensor(value) else other == value


def test_non_finite_loss_marks_the_run_diverged(smoke):
    cfg = smoke("task=cifar10_vgg11", "optimizer=sgd", "optimizer.lr=1e12", "epochs=2")
    assert train_one(cfg) == "diverged"
    run = RunDir(run_path(cfg))
    status = run.read_status()
    assert status["state"] == "diverged"
    assert status["diverged_at"]["epoch"] == 0 and 0 <= status["diverged_at"]["step"] < 8
    assert f"step {status['diverged_at']['step']}" in status["reason"]
    assert run.read_metrics() == []  # the diverged epoch is not recorded as a finished one
    assert train_one(cfg) == "diverged"  # terminal: not retried


def test_corrupt_checkpoint_is_reported_never_used(smoke, monkeypatch):
    cfg = smoke("task=cifar10_vgg11", "optimizer=adam", "epochs=2")
    interrupt_at(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train_one(cfg)
    monkeypatch.undo()
    run = RunDir(run_path(cfg))
    data = run.checkpoint_file.read_bytes()
    run.checkpoint_file.write_bytes(data[: len(data) // 2])  # truncated, as by a full disk
    with pytest.raises(ConfigError, match="corrupt or truncated"):
        train_one(cfg)
    assert run.read_status()["state"] == "failed"
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    run.checkpoint_file.write_bytes(bytes(flipped))
    with pytest.raises(RunStoreError, match="corrupt"):
        run.load_checkpoint()


def test_an_unreadable_status_stops_the_run_in_one_line_and_writes_nothing(smoke):
    cfg = smoke("task=cifar10_vgg11", "optimizer=adam", "epochs=1")
    run = RunDir(run_path(cfg))
    run.path.mkdir(parents=True)
    run.status_file.write_text("{not json")
    with pytest.raises(ConfigError, match=r"status.json is not a run status; delete the run directory"):
        train_one(cfg)
    assert run.status_file.read_text() == "{not json" and not run.metrics_file.exists()


def test_a_second_process_on_the_same_run_is_refused(smoke, monkeypatch):
    cfg = smoke("task=cifar10_vgg11", "optimizer=adam", "epochs=1")
    holder = RunDir(run_path(cfg)).lock()
    try:
        with monkeypatch.context() as patch:  # refused before its task is built: a skip costs a sweep nothing
            patch.setattr("adala_bench.tasks.build_task", lambda *args: pytest.fail("built the task of a held run"))
            with pytest.raises(ConfigError, match=f"run directory {holder.path} is in use by another process "
                                                  f"\\(pid {os.getpid()}\\)"):
                train_one(cfg)
        script = f"from adala_bench.store import RunDir; RunDir({str(holder.path)!r}).lock()"
        other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert other.returncode != 0 and "in use by another process" in other.stderr
    finally:
        holder.unlock()
    assert train_one(cfg) == "completed"


@pytest.mark.parametrize(
    "override,message",
    [
        ("optimizer.lr=-0.1", "-0.1"),
        ("optimizer.betas=[0.9,1.5]", "1.5"),
        ("epochs=0", "epochs=0"),
        ("batch_size=-4", "batch_size=-4"),
        ("data.source=imagenet", "'imagenet'"),
        ("device=tpu", "'tpu'"),
        ("trainer.lookahead_batch=previous", "trainer.lookahead_batch='previous' is not allowed; allowed: next, same"),
        ("optimizer.lr=abc", "optimizer.lr='abc' is not allowed; it must be a number"),
        ("optimizer.weight_decay=true", "optimizer.weight_decay=True is not allowed; it must be a number"),
        ("seed=1.5", "seed=1.5 is not allowed; it must be an integer"),
        ("task.width=wide", "task.width='wide' is not allowed; it must be a number"),
    ],
)
def test_bad_values_are_refused_before_anything_is_written(smoke, tmp_path, override, message):
    cfg = smoke("task=cifar10_vgg11", "optimizer=adala", override)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")) as error:
        train_one(cfg)
    assert "\n" not in str(error.value)
    assert not list((tmp_path / "runs").rglob("status.json"))


def test_missing_data_and_unwritable_results_root_are_refused(tmp_path):
    from helpers import compose

    cfg = compose("task=cifar10_vgg11", "optimizer=adam", f"data.root={tmp_path / 'nodata'}", f"results.root={tmp_path / 'runs'}")
    with pytest.raises(ConfigError, match="adala-data cifar10") as error:
        train_one(cfg)
    assert str(tmp_path / "nodata") in str(error.value)
    assert not list((tmp_path / "runs").rglob("status.json"))

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cfg = compose("task=cifar10_vgg11", "optimizer=adam", f"results.root={blocker / 'runs'}")
    with pytest.raises(ConfigError, match="is not writable"):
        train_one(cfg)


def run_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([ADALA_BIN, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture
def adala_train_here(monkeypatch, tmp_path):
    """adala-train's main with these arguments, in this process, from tmp_path. What Hydra's main sets up for a job is
    put back after: the root logger (Hydra's hydra/job_logging=stdout gives it a handler and INFO) and Hydra's config
    singleton (a run started later in this process must not see this one's)."""
    from hydra.core.hydra_config import HydraConfig

    root = logging.getLogger()
    handlers, level = set(root.handlers), root.level
    monkeypatch.setattr(HydraConfig.instance(), "cfg", HydraConfig.instance().cfg)
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> None:
        monkeypatch.setattr(sys, "argv", ["adala-train", *args])
        runner.main()

    yield run
    for handler in root.handlers:
        if type(handler) is logging.StreamHandler and handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize(
    "args,message",
    [
        (["task=cifar10_vgg12"], "unknown task 'cifar10_vgg12'; allowed: cifar10_densenet121, cifar10_resnet34, cifar10_vgg11, gan_wgan, gan_wgan_gp, ptb_lstm1, ptb_lstm2, ptb_lstm3"),
        (["optimizer=adam,lamb"], "unknown optimizer 'lamb'; allowed: adabelief, adabound, adala"),
        (["--multirun", "optimizer=choice(adam,lamb)"], "unknown optimizer 'lamb'; allowed: adabelief, adabound"),
        (["optimizer=choice(adam"], "cannot read the override 'optimizer=choice(adam'"),
        (["+experiment=table9"], "unknown experiment 'table9'; allowed: claims_mix, defaults_cifar10, defaults_gan, "),
        (["optimizer.lr=-1"], "optimizer.lr=-1 is not allowed; it must be a number >= 0"),
        (["task=ptb_lstm1", "task.lstm.train_recurrent=maybe"],
         "task.lstm.train_recurrent='maybe' is not allowed; it must be true or false"),
        (["task=ptb_lstm1", "task.clip_grad_norm=0"], "task.clip_grad_norm=0 is not allowed; it must be > 0 or null"),
        (["logger=[tensorboard,comet]"], "unknown logger 'comet'; allowed: mlflow, none, tensorboard, wandb"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(adala_train_here, tmp_path, data_root, capsys, args, message):
    """adala-train's main in this process (the installed command says the same: the test below)."""
    with pytest.raises(SystemExit) as exit_:
        adala_train_here("profile=smoke", f"data.root={data_root}", f"results.root={tmp_path}/runs", *args)
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("adala-train: error: ") and message in lines[0]
    assert not (tmp_path / "runs").exists()


def test_the_installed_command_reports_bad_input_in_one_line_and_exits_2(tmp_path, data_root):
    """The console script itself, for a value refused inside Hydra's job (as the in-process cases above are)."""
    result = run_cli("profile=smoke", f"data.root={data_root}", f"results.root={tmp_path}/runs", "optimizer.lr=-1",
                     cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["adala-train: error: optimizer.lr=-1 is not allowed; it must be a number >= 0"]


def test_cli_multirun_sweeps_and_goes_on_past_a_diverged_run(tmp_path, data_root):
    """Every run's outcome is its lr's: lr 0.01 completes, lr 1e12 diverges, and the sweep goes on past each."""
    result = run_cli(
        "--multirun", "profile=smoke", "epochs=1", f"data.root={data_root}", f"results.root={tmp_path}/runs",
        "task=cifar10_vgg11", "optimizer=sgd,adam", "seed=0,1", "optimizer.lr=0.01,1e12", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    outcomes = {}
    for status in (tmp_path / "runs").rglob("status.json"):
        run = status.parent
        lr = yaml.safe_load((run / "config.yaml").read_text())["optimizer"]["lr"]
        outcomes[(run.parent.parent.parent.name, run.parent.parent.name, run.name, lr)] = read_run(run).state
    assert len(outcomes) == 8
    assert all(state == ("completed" if lr == 0.01 else "diverged") for (*_, lr), state in outcomes.items()), outcomes


def test_hydras_sweep_syntax_runs_through_adala_train(tmp_path, data_root):
    """choice(), glob() and range() as Hydra reads them: 2 optimizers × 1 matching task × 2 seeds."""
    result = run_cli("--multirun", "profile=smoke", "epochs=1", f"data.root={data_root}", f"results.root={tmp_path}/runs",
                     "optimizer=choice(adam,sgd)", "task=glob(cifar10_v*)", "seed=range(0,2)", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = sorted([p.parts[-5], p.parts[-4], p.parts[-2]] for p in (tmp_path / "runs").rglob("status.json"))
    assert runs == [["cifar10_vgg11", "adam", "seed=0"], ["cifar10_vgg11", "adam", "seed=1"],
                    ["cifar10_vgg11", "sgd", "seed=0"], ["cifar10_vgg11", "sgd", "seed=1"]]


def test_a_sweep_skips_runs_another_process_holds_and_goes_on(tmp_path, data_root):
    """The same sweep started twice (say once per GPU) shares the runs out instead of stopping."""
    from helpers import compose

    held = compose("profile=smoke", "epochs=1", "task=cifar10_vgg11", "optimizer=sgd", "seed=1",
                          f"data.root={data_root}", f"results.root={tmp_path}/runs")
    holder = RunDir(run_path(held)).lock()
    try:
        result = run_cli("--multirun", "profile=smoke", "epochs=1", f"data.root={data_root}",
                         f"results.root={tmp_path}/runs", "task=cifar10_vgg11", "optimizer=sgd", "seed=0,1,2", cwd=tmp_path)
    finally:
        holder.unlock()
    assert result.returncode == 0, result.stderr
    assert f"adala-train: skipping: run directory {holder.path} is in use by another process" in result.stdout
    states = {p.parent.name: json.loads(p.read_text())["state"] for p in (tmp_path / "runs").rglob("status.json")}
    assert states == {"seed=0": "completed", "seed=2": "completed"}


def test_hydra_submitit_launcher_runs_a_sweep_in_parallel_processes(tmp_path, data_root):
    """Hydra's submitit launcher, locally (SLURM's sibling, conf/hydra/launcher/slurm_gpu.yaml): two runs at once."""
    result = run_cli("--multirun", "hydra/launcher=submitit_local", "profile=smoke", "epochs=1", f"data.root={data_root}",
                     f"results.root={tmp_path}/runs", "task=cifar10_vgg11", "optimizer=sgd,adala", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    states = {p.parent.parent.parent.name: json.loads(p.read_text())["state"] for p in (tmp_path / "runs").rglob("status.json")}
    assert states == {"sgd": "completed", "adala": "completed"}


# Far more epochs than any test below waits for: a run that a test signals is still training when the signal lands,
# however late the (busy) test gets to send it. The tests stop the runs they start; none trains to this end.
NEVER_ENDS = "epochs=1000"


def start_run(args: list[str], cwd) -> subprocess.Popen:
    return subprocess.Popen([ADALA_BIN, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_rows(run: RunDir, count: int, process: subprocess.Popen) -> None:
    """Until `run` has `count` metrics rows, while `process` trains it."""
    deadline = time.monotonic() + 120
    while not (run.metrics_file.exists() and len(run.read_metrics()) >= count):
        assert process.poll() is None, f"adala-train ended before {count} epochs: {process.communicate()[0]}"
        assert time.monotonic() < deadline, f"no {count} epochs in 120 s"
        time.sleep(0.05)


def resumed_at(out: str, run: RunDir) -> int:
    """The epoch adala-train said it resumes `run` at."""
    line = next(line for line in out.splitlines() if line.startswith(f"adala-train: resuming {run.path} at epoch "))
    return int(line.rsplit(" ", 1)[1])


@pytest.mark.parametrize("signum, reason", [(signal.SIGTERM, "terminated (SIGTERM)"), (signal.SIGINT, "interrupted")])
def test_sigterm_and_ctrl_c_leave_the_run_interrupted_and_it_resumes(tmp_path, data_root, signum, reason):
    """`docker stop`, `timeout` or a scheduler's kill (SIGTERM) records the run as Ctrl-C does: failed, with why,
    and read as interrupted; the next start resumes it where it stopped (and the same signal stops that one too),
    every epoch recorded once."""
    from helpers import compose

    args = ["profile=smoke", NEVER_ENDS, "task=cifar10_vgg11", "optimizer=sgd", f"data.root={data_root}",
            f"results.root={tmp_path}/runs"]
    run = RunDir(run_path(compose(*args)))
    rows = 0
    for start in ("first", "resumed"):
        process = start_run(args, tmp_path)
        wait_for_rows(run, rows + 1, process)  # at least one epoch of this start's own
        process.send_signal(signum)
        out, _ = process.communicate(timeout=60)
        if start == "resumed":  # from the checkpoint, written before an epoch's row: that row's epoch, or the next
            assert resumed_at(out, run) in (rows, rows + 1), out
        status, record, rows = run.read_status(), read_run(run.path), len(run.read_metrics())
        assert status["state"] == "failed" and status["reason"].startswith(reason), status
        # status.json, where the record reads epochs_done, is written after an epoch's row: it may lag it by one
        assert record.state == "interrupted" and record.epochs_done in (rows - 1, rows), (record, rows)
    assert rows >= 2 and [row["epoch"] for row in run.read_metrics()] == list(range(rows))


def test_a_lock_holder_killed_with_sigkill_frees_the_run_and_adala_train_resumes_it(tmp_path, data_root, monkeypatch):
    """SIGKILL mid-epoch: status.json still says running, but the OS dropped the lock, so the run reads as
    interrupted (killed) and adala-train resumes it from its last checkpoint, epoch for epoch as a straight run."""
    args = ["profile=smoke", NEVER_ENDS, "task=cifar10_vgg11", "optimizer=sgd", f"data.root={data_root}"]
    from helpers import compose

    killed = RunDir(run_path(compose(*args, f"results.root={tmp_path}/killed")))
    process = start_run([*args, f"results.root={tmp_path}/killed"], tmp_path)
    wait_for_rows(killed, 2, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    record, rows = read_run(killed.path), len(killed.read_metrics())
    assert killed.read_status()["state"] == "running"
    assert record.state == "interrupted" and record.reason == "killed (status running, lock free)"
    # status.json, where the record reads epochs_done, is written after metrics.jsonl: a kill between the two leaves
    # it one epoch behind the rows (the checkpoint, written first, may be one ahead of them)
    assert rows >= 2 and record.epochs_done in (rows - 1, rows)
    resumed = start_run([*args, f"results.root={tmp_path}/killed"], tmp_path)
    wait_for_rows(killed, rows + 3, resumed)  # two epochs of its own, at least
    resumed.send_signal(signal.SIGINT)
    out, _ = resumed.communicate(timeout=60)
    assert resumed_at(out, killed) in (rows, rows + 1), out
    rows = len(killed.read_metrics())
    straight = compose(*args, f"results.root={tmp_path}/straight")
    interrupt_at(monkeypatch, rows)  # the straight run, in this process, stopped at the same epoch
    with pytest.raises(KeyboardInterrupt):
        train_one(straight)
    assert metrics_without_time(killed) == metrics_without_time(RunDir(run_path(straight)))
