"""`adala-sweep` (one sweep over every GPU, the run store's locks sharing it out) and SLURM requeue on preemption.

The GPUs are simulated (`--simulate-gpus` / ADALA_SIMULATE_GPUS): the workers get CUDA_VISIBLE_DEVICES as on a GPU
box and train on CPU.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from adala_bench import launch
from adala_bench.store import RunDir
from helpers import REPO, compose

SWEEP_BIN = str(REPO / ".venv" / "bin" / "adala-sweep")
STARTED = re.compile(r"^adala-train: (?:starting|resuming) (.+?)(?: at epoch \d+)?$", re.M)


def run_sweep(*args: str, cwd, env: dict | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([SWEEP_BIN, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, **(env or {})})


def smoke_args(data_root, runs) -> list[str]:
    return ["profile=smoke", "epochs=1", f"data.root={data_root}", f"results.root={runs}"]


def statuses(runs: Path) -> dict[str, str]:
    return {str(path.parent.relative_to(runs)): json.loads(path.read_text())["state"] for path in runs.rglob("status.json")}


def test_two_workers_on_one_gpu_train_every_run_exactly_once(tmp_path, data_root):
    runs, logs = tmp_path / "runs", tmp_path / "logs"
    result = run_sweep("--simulate-gpus", "1", "--per-gpu", "2", "--logs", str(logs), "--progress-every", "0.2", "--",
                       *smoke_args(data_root, runs), "task=cifar10_vgg11", "optimizer=sgd,adam", "seed=0,1",
                       cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout.splitlines()
    assert [line.split(":")[1] for line in out[:2]] == [f" worker {w} on GPU 0 (simulated)" for w in range(2)]
    assert out[-1].startswith("adala-sweep: 4/4 runs done (4 completed, 0 diverged in this sweep, 0 finished before it)")
    # Live progress while the workers train: k/N lines as runs finish, k never falling.
    progress = [int(k) for k in re.findall(r"^adala-sweep: (\d+)/4 runs done$", result.stdout, re.M)]
    assert progress and progress == sorted(progress) and len(set(progress)) == len(progress) and progress[-1] <= 4

    texts = [(logs / f"worker{w}.log").read_text() for w in range(2)]
    for w, text in enumerate(texts):  # each worker's own GPU, and the sweep it ran
        header = text.splitlines()
        assert header[0] == f"# adala-sweep worker {w} of 2: CUDA_VISIBLE_DEVICES=0 (simulated GPU; training on CPU)"
        assert "--multirun" in header[2] and "device=cpu" in header[2]
        assert "[HYDRA] Launching 4 jobs locally" in text
    started = Counter(path for text in texts for path in STARTED.findall(text))
    states = statuses(runs)
    assert len(states) == 4 and set(states.values()) == {"completed"}
    assert sorted(started) == sorted(str(runs / run) for run in states)  # every run started by one worker ...
    assert set(started.values()) == {1}  # ... once
    for text in texts:  # every worker met every run: trained it, found it held (and went on), or found it finished
        met = re.findall(r"^adala-train: (?:(?:starting|resuming) |skipping: run directory |(?=.* is already completed))"
                         r"(\S+)", text, re.M)
        assert len(met) == 4, text
    assert not any("Traceback" in text for text in texts)

    # Started again (as ADALA_SIMULATE_GPUS=0: no GPU, one CPU worker): nothing left to do, and it says so.
    again = run_sweep("--logs", str(tmp_path / "logs2"), "--", *smoke_args(data_root, runs), "task=cifar10_vgg11",
                      "optimizer=sgd,adam", "seed=0,1", cwd=tmp_path, env={launch.SIMULATE_ENV: "0"})
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    assert lines[0] == "adala-sweep: no GPU found: running one worker on CPU"
    assert lines[1].startswith("adala-sweep: worker 0 on CPU: pid ")
    assert lines[-1].startswith("adala-sweep: 4/4 runs done (0 completed, 0 diverged in this sweep, 4 finished before it)")
    assert (tmp_path / "logs2" / "worker0.log").read_text().startswith("# adala-sweep worker 0 of 1: CPU only (no GPU)")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_stops_every_worker_cleanly_leaving_their_runs_to_resume(tmp_path, data_root, signum):
    """Either signal reaches each worker as SIGINT: the runner records its run interrupted (SIGTERM itself would
    kill a worker before it could)."""
    runs, logs = tmp_path / "runs", tmp_path / "logs"
    process = subprocess.Popen(
        [SWEEP_BIN, "--simulate-gpus", "1", "--per-gpu", "2", "--logs", str(logs), "--", "profile=smoke", "epochs=500",
         f"data.root={data_root}", f"results.root={runs}", "task=cifar10_vgg11", "optimizer=sgd,adam"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not all(re.search(r"\(2/500 done\)", path.read_text()) for path in logs.glob("worker*.log")) \
                or len(list(logs.glob("worker*.log"))) < 2:
            assert process.poll() is None and time.monotonic() < deadline, "the workers never trained"
            time.sleep(0.2)
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signum
    assert f"adala-sweep: got {signal.Signals(signum).name}; stopping 2 worker(s)" in err
    pids = [int(pid) for pid in re.findall(r"pid (\d+), log", out)]
    assert len(pids) == 2
    for pid in pids:  # all gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert "0/2 runs done" in out and "2 left: start the same sweep again to resume them" in out
    for path in runs.rglob("status.json"):  # stopped cleanly between checkpoints: each resumes from its last epoch
        status = json.loads(path.read_text())
        assert status["state"] == "failed" and status["reason"].startswith("interrupted; re-run to resume")
        assert status["epochs_done"] >= 1 and RunDir(path.parent).load_checkpoint() is not None


def test_a_failing_sweep_exits_with_the_workers_status_and_their_error(tmp_path, data_root):
    result = run_sweep("--simulate-gpus", "1", "--logs", str(tmp_path / "logs"), "--", *smoke_args(tmp_path / "none",
                       tmp_path), "data.source=real", "task=cifar10_vgg11", cwd=tmp_path)
    assert result.returncode == 2
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and all(re.match(r"adala-sweep: worker \d exited with status 2 \(.*\): adala-train: error: "
                                             r"CIFAR-10 not found at ", line) for line in errors), errors


@pytest.mark.parametrize(
    "args,env,message",
    [
        (["--gpus", "2"], {}, "give the adala-train arguments after --, e.g. adala-sweep -- --multirun"),
        (["--"], {}, "no adala-train arguments after --"),
        (["--gpus", "two", "--", "seed=0"], {}, "--gpus 'two' is not allowed; give a number ≥ 0 or all"),
        (["--gpus", "3", "--simulate-gpus", "2", "--", "seed=0"], {}, "--gpus 3 asked for, but 2 GPU(s) found"),
        (["--per-gpu", "0", "--", "seed=0"], {}, "--per-gpu 0 is not allowed"),
        (["--per-gpu", "x", "--", "seed=0"], {}, "argument --per-gpu: invalid int value: 'x'"),
        (["--workers", "2", "--", "seed=0"], {}, "unrecognized arguments: --workers"),
        (["--", "seed=0"], {launch.SIMULATE_ENV: "many"}, "ADALA_SIMULATE_GPUS='many' is not allowed"),
        (["--", "task=cifar10_vgg12"], {}, "unknown task 'cifar10_vgg12'; allowed: cifar10_densenet121, "),
        (["--", "optimizer=choice(adam,lamb)"], {}, "unknown optimizer 'lamb'; allowed: "),
        (["--", "seed=-1"], {}, "seed=-1 is not allowed; it must be a non-negative integer"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args, env, message, capsys, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exit_:
        launch.main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("adala-sweep: error: ") and message in err[0], err


def test_the_installed_command_reports_bad_arguments_in_one_line(tmp_path):
    result = run_sweep("--per-gpu", "-1", "--", "seed=0", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "adala-sweep: error: --per-gpu -1 is not allowed; it must be an integer ≥ 1\n"


def test_the_launch_pins_workers_to_gpus_and_gives_each_its_own_hydra_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(launch, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # the caller's own choice of GPUs is kept
    monkeypatch.delenv(launch.SIMULATE_ENV, raising=False)
    plan = launch.make_launch(["--per-gpu", "2", "--logs", str(tmp_path), "--", "+experiment=table2", "seed=0,1"])
    assert plan.workers == 4 and [plan.gpu_of(w) for w in range(4)] == ["3", "3", "5", "5"]
    assert plan.train_args == ["--multirun", "+experiment=table2", "seed=0,1"]  # --multirun added
    assert launch.worker_args(plan, 1)[-1] == f"hydra.sweep.dir={tmp_path}/worker1"
    assert launch.worker_env(plan, 2)["CUDA_VISIBLE_DEVICES"] == "5"
    mine = launch.make_launch(["--", "-m", "hydra.sweep.dir=out/my sweep", "seed=0"])
    assert launch.worker_args(mine, 3) == ["-m", "seed=0", "hydra.sweep.dir='out/my sweep/worker3'"]
    with pytest.raises(launch.SweepError, match="device=cuda:1 names a GPU a worker cannot see"):
        launch.make_launch(["--", "seed=0", "device=cuda:1"])
    monkeypatch.setattr(launch, "device_count", lambda: 0)
    assert launch.make_launch(["--per-gpu", "3", "--", "seed=0"]).workers == 1  # no GPU: one CPU worker


def test_the_tally_counts_runs_from_the_run_store(tmp_path):
    """k/N runs done is read from the store (records.read_run), as adala-plan reads it, not from printed lines."""
    runs = [tmp_path / name for name in ("done-before", "completed", "diverged", "killed", "new")]
    RunDir(runs[0]).path.mkdir()
    RunDir(runs[0]).write_status("completed")
    tally = launch.Tally.start(runs)
    assert tally.progress() == "adala-sweep: 1/5 runs done"
    for path, state in zip(runs[1:4], ("completed", "diverged", "running")):
        path.mkdir()
        RunDir(path).write_status(state)  # "running" with nobody holding the lock: killed, not done
    assert tally.read().summary() == ("adala-sweep: 3/5 runs done (1 completed, 1 diverged in this sweep, 1 finished "
                                      "before it); 2 left: start the same sweep again to resume them")


# ---- SLURM: one GPU per job, and a preempted or timed-out job requeues and resumes ----------------------------------

def test_slurm_launcher_requeues_preempted_and_timed_out_jobs():
    from hydra.utils import instantiate
    from submitit.helpers import DelayedSubmission

    cfg = compose("hydra/launcher=slurm_gpu", hydra=True).hydra.launcher
    assert (cfg.gpus_per_node, cfg.tasks_per_node) == (1, 1)
    assert cfg.max_num_timeout >= 10 and 60 <= cfg.signal_delay_s < cfg.timeout_min * 60
    assert cfg.additional_parameters == {"requeue": True}

    launcher = instantiate(cfg)  # as Hydra does (its plugin loader may import the module afresh: compare by name)
    assert f"{type(launcher).__module__}.{type(launcher).__qualname__}" == cfg._target_
    assert type(launcher).__qualname__ == "SlurmLauncher" and launcher.params["max_num_timeout"] == cfg.max_num_timeout
    args = (["task=cifar10_vgg11", "optimizer=adala", "seed=0"], "hydra.sweep.dir", 3, "job_id_for_3", {})
    requeued = launcher.checkpoint(*args)  # what submitit calls on USR2 before it requeues the job
    assert isinstance(requeued, DelayedSubmission)
    assert requeued.function is launcher and requeued.args == args and requeued.kwargs == {}


@pytest.fixture
def hydra_state():
    """Hydra's and logging's process-wide state, put back after a test that runs a job in-process."""
    import logging

    from hydra.core.singleton import Singleton

    state, root = Singleton.get_state(), logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    Singleton.set_state(state)
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_preempted_slurm_job_requeues_and_resumes_its_run_from_the_checkpoint(tmp_path, data_root, monkeypatch,
                                                                               hydra_state):
    """The whole path, in-process, with submitit's own signal handler: the plugin submits the job (sbatch text
    captured, not sent), the job trains epoch 0, is preempted at epoch 1 (USR2), checkpoints and requeues, and the
    requeued submission, read back from submitit's pickle, resumes the run at epoch 1 and completes it, with the
    metrics of an uninterrupted run."""
    import signal as signals

    import submitit
    from hydra import initialize_config_dir
    from hydra._internal.callbacks import Callbacks
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext, RunMode
    from submitit.core.job_environment import SignalHandler
    from submitit.core.utils import JobPaths
    from submitit.slurm import slurm

    from adala_bench import runner, trainer as trainer_module
    from adala_bench.config import CONF_DIR
    from adala_bench.runner import train_one
    from helpers import run_path

    job = ["profile=smoke", "epochs=2", f"data.root={data_root}", f"results.root={tmp_path}/runs",
           "task=cifar10_vgg11", "optimizer=adala", "seed=0"]
    hydra_overrides = ["hydra/launcher=slurm_gpu", "hydra.mode=MULTIRUN", f"hydra.sweep.dir={tmp_path}/sweep",
                       f"hydra.launcher.submitit_folder={tmp_path}/submitit"]
    submitted = {}

    def process_submissions(executor, delayed_submissions):  # instead of sbatch: keep what would be sent
        submitted["sbatch"] = slurm._make_sbatch_string(command="python -m submitit.core._submit", folder=executor.folder,
                                                        **executor.parameters)
        for delayed in delayed_submissions:
            delayed.set_timeout(executor.parameters["time"], executor.max_num_timeout)
        submitted["jobs"] = delayed_submissions
        return [type("Job", (), {"results": lambda self: [None]})() for _ in delayed_submissions]

    monkeypatch.setattr(slurm.SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # "srun is there"
    monkeypatch.setattr(slurm.SlurmExecutor, "_internal_process_submissions", process_submissions)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="adala-train"):
        hydra = GlobalHydra.instance().hydra
        config = hydra.compose_config("config", overrides=hydra_overrides + job, run_mode=RunMode.MULTIRUN,
                                      with_log_configuration=False)
        context = HydraContext(config_loader=hydra.config_loader, callbacks=Callbacks(config))
        launcher = Plugins.instance().instantiate_launcher(hydra_context=context, task_function=runner.hydra_main.__wrapped__,
                                                           config=config)
        launcher.launch([job], initial_job_idx=0)
        sbatch = submitted["sbatch"].splitlines()
        for flag in ("#SBATCH --requeue", "#SBATCH --signal=USR2@120", "#SBATCH --gpus-per-node=1", "#SBATCH --time=1440"):
            assert flag in sbatch, submitted["sbatch"]
        (delayed,) = submitted["jobs"]
        assert delayed.function is launcher and delayed._timeout_countdown == 20

        # The job runs on a (pretend) SLURM node and is preempted when it starts epoch 1.
        for key, value in {"_TEST_CLUSTER_": "slurm", "SLURM_JOB_ID": "4242", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
                           "SLURM_NODEID": "0", "SLURM_NTASKS": "1", "SLURM_JOB_NUM_NODES": "1"}.items():
            monkeypatch.setenv(key, value)
        env = submitit.JobEnvironment()
        paths = JobPaths(tmp_path / "submitit", job_id="4242")
        paths.folder.mkdir(parents=True, exist_ok=True)
        handler = SignalHandler(env, paths, delayed)
        requeued = []
        monkeypatch.setattr(env, "_requeue", requeued.append)  # instead of `scontrol requeue`
        train_epoch = trainer_module.Trainer.train_epoch

        def preempted_at_epoch_1(self, progress):
            if progress.epoch == 1 and not requeued:
                handler.checkpoint_and_try_requeue(signals.SIGUSR2)  # as the signal would
            return train_epoch(self, progress)

        monkeypatch.setattr(trainer_module.Trainer, "train_epoch", preempted_at_epoch_1)
        with pytest.raises(SystemExit):
            delayed.result()
        assert requeued == [20]  # a preemption does not use up a time-out
        run = RunDir(next((tmp_path / "runs").rglob("status.json")).parent)
        status = run.read_status()
        assert status["state"] == "failed" and "re-run to resume" in status["reason"] and status["epochs_done"] == 1

        # SLURM starts the job again: submitit runs the submission its handler saved.
        again = submitit.helpers.DelayedSubmission.load(paths.submitted_pickle)
        assert again.args[:4] == delayed.args[:4] and again._timeout_countdown == 20
        assert again.result().return_value == "completed"

    assert run.read_status()["state"] == "completed"
    straight = compose(*job[:3], f"results.root={tmp_path}/straight", *job[4:])
    assert train_one(straight) == "completed"
    resumed_rows = [json.loads(line) for line in run.metrics_file.read_text().splitlines()]
    straight_rows = [json.loads(line) for line in RunDir(run_path(straight)).metrics_file.read_text().splitlines()]
    keys = ("epoch", "train_loss", "test_loss", "test_acc", "grad_evals")
    assert [{k: row[k] for k in keys} for row in resumed_rows] == [{k: row[k] for k in keys} for row in straight_rows]
