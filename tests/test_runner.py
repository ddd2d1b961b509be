"""The runner and the run store on real (small) CIFAR-format runs: train, skip, resume, diverge, refuse bad input."""

from __future__ import annotations

import json
import os
from importlib import metadata
import subprocess
import sys

import pytest
import torch

from adala_bench import trainer as trainer_module
from adala_bench.runner import ConfigError, train_one
from adala_bench.store import RunDir, RunStoreError, run_path

from conftest import REPO

ADALA_BIN = str(REPO / ".venv" / "bin" / "adala-train")


def interrupt_at(monkeypatch, epoch: int) -> None:
    """Make the trainer raise KeyboardInterrupt (as Ctrl-C would) when it starts `epoch`."""
    original = trainer_module.Trainer.train_epoch

    def train_epoch(self, progress):
        if progress.epoch == epoch:
            raise KeyboardInterrupt
        return original(self, progress)

    monkeypatch.setattr(trainer_module.Trainer, "train_epoch", train_epoch)


def metrics_without_time(run: RunDir) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "wall_s"} for row in run.read_metrics()]


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
    saved = (run.path / "config.yaml").read_text()
    assert f"name: {task}" in saved and "epochs: 3" in saved


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
        ("optimizer.lookahead_batch=previous", "'previous'"),
    ],
)
def test_bad_values_are_refused_before_anything_is_written(smoke, tmp_path, override, message):
    cfg = smoke("task=cifar10_vgg11", "optimizer=adala", override)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")) as error:
        train_one(cfg)
    assert "\n" not in str(error.value)
    assert not list((tmp_path / "runs").rglob("status.json"))


def test_missing_data_and_unwritable_results_root_are_refused(tmp_path):
    from conftest import compose_config

    cfg = compose_config("task=cifar10_vgg11", "optimizer=adam", f"data.root={tmp_path / 'nodata'}", f"results.root={tmp_path / 'runs'}")
    with pytest.raises(ConfigError, match="adala-data cifar10") as error:
        train_one(cfg)
    assert str(tmp_path / "nodata") in str(error.value)
    assert not list((tmp_path / "runs").rglob("status.json"))

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cfg = compose_config("task=cifar10_vgg11", "optimizer=adam", f"results.root={blocker / 'runs'}")
    with pytest.raises(ConfigError, match="is not writable"):
        train_one(cfg)


def run_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([ADALA_BIN, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize(
    "args,message",
    [
        (["task=cifar10_vgg12"], "unknown task 'cifar10_vgg12'; allowed: cifar10_densenet121, cifar10_resnet34, cifar10_vgg11, gan_wgan, gan_wgan_gp, ptb_lstm1, ptb_lstm2, ptb_lstm3"),
        (["optimizer=adam,lamb"], "unknown optimizer 'lamb'; allowed: adabelief, adabound, adala"),
        (["optimizer.lr=-1"], "-1"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, data_root, args, message):
    result = run_cli("profile=smoke", f"data.root={data_root}", f"results.root={tmp_path}/runs", *args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("adala-train: error: ") and message in lines[0]


def test_cli_multirun_sweeps_and_goes_on_past_a_diverged_run(tmp_path, data_root):
    result = run_cli(
        "--multirun", "profile=smoke", "epochs=1", f"data.root={data_root}", f"results.root={tmp_path}/runs",
        "task=cifar10_vgg11,cifar10_resnet34", "optimizer=sgd,adam", "seed=0,1", "optimizer.lr=0.01,1e12",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    states = [json.loads(p.read_text())["state"] for p in sorted((tmp_path / "runs").rglob("status.json"))]
    assert len(states) == 16
    assert states.count("completed") >= 8 and set(states) <= {"completed", "diverged"} and "diverged" in states


def test_a_sweep_skips_runs_another_process_holds_and_goes_on(tmp_path, data_root):
    """The same sweep started twice (say once per GPU) shares the runs out instead of stopping."""
    from conftest import compose_config

    held = compose_config("profile=smoke", "epochs=1", "task=cifar10_vgg11", "optimizer=sgd", "seed=1",
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


def test_slurm_launcher_config_asks_one_gpu_per_run():
    from conftest import compose_config

    cfg = compose_config("hydra/launcher=slurm_gpu", return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.gpus_per_node, launcher.tasks_per_node) == (1, 1)


def test_the_old_spelling_optimizer_lookahead_batch_still_works_and_says_it_is_deprecated(smoke, capsys):
    new = smoke("task=cifar10_vgg11", "optimizer=adala", "epochs=1", "trainer.lookahead_batch=same")
    assert train_one(new) == "completed"
    capsys.readouterr()
    old = smoke("task=cifar10_vgg11", "optimizer=adala", "epochs=1", "optimizer.lookahead_batch=same")
    assert train_one(old) == "completed"
    err = capsys.readouterr().err
    assert "optimizer.lookahead_batch is deprecated; use trainer.lookahead_batch=same" in err
    assert run_path(old) == run_path(new)  # one run, whichever spelling asked for it: it is not trained twice
    assert old.trainer.lookahead_batch == "same" and old.optimizer.lookahead_batch is None


def test_a_task_that_is_not_built_yet_is_refused_in_one_line(monkeypatch):
    """The catalogue lists a task before its code exists (built=False): the runner names its table and says so."""
    import dataclasses

    from adala_bench import catalog, runner
    from adala_bench.runner import check_group_overrides

    coming = dataclasses.replace(catalog.TASKS["ptb_lstm2"], built=False)
    monkeypatch.setitem(runner.TASKS, "ptb_lstm2", coming)
    with pytest.raises(ConfigError) as error:
        check_group_overrides(["task=cifar10_vgg11,ptb_lstm2"])
    assert str(error.value).startswith("task 'ptb_lstm2' (Table3) is not built yet; built: cifar10_densenet121, ")


def test_lr_scale_names_the_run_by_the_lr_it_gives(smoke):
    from adala_bench.runner import apply_aliases

    scaled = smoke("task=cifar10_vgg11", "optimizer=adam", "lr_scale=3")
    plain = smoke("task=cifar10_vgg11", "optimizer=adam", f"optimizer.lr={1e-3 * 3!r}")
    with pytest.raises(ValueError, match="lr_scale is still in the config"):
        run_path(scaled)
    apply_aliases(scaled)
    apply_aliases(plain)
    assert scaled.optimizer.lr == 1e-3 * 3 and run_path(scaled) == run_path(plain)
    assert run_path(scaled).parent.name.startswith("lr0.003-")
    with pytest.raises(ConfigError, match="lr_scale=-1 is not allowed; it must be a number > 0"):
        apply_aliases(smoke("task=cifar10_vgg11", "optimizer=adam", "lr_scale=-1"))
