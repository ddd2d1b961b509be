"""The experiment trackers (logger=tensorboard, mlflow, wandb) on real smoke runs, each read back by its own reader:
MLflow's client on the local store, wandb's reader of its offline transaction logs (`wandb leet inspect --json`),
TensorBoard's EventAccumulator. One tracker run per run directory through an interrupted and a SIGKILLed session, each
epoch once; a sweep's runs grouped; a tracker's failure one warning line and nothing else; a missing package one line
before anything trains; and never a change to the run."""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from adala_bench.config import ConfigError
from adala_bench.progress import EpochLog
from adala_bench.runner import train_one
from adala_bench.store import RunDir
from helpers import BIN, compose, metrics_without_time, run_path

ADALA_BIN = str(BIN / "adala-train")
RUN = ("task=cifar10_vgg11", "optimizer=sgd")
ALL = "logger=[tensorboard,mlflow,wandb]"
# What the trackers set with os.environ.setdefault (trackers.py), undone after each test.
TRACKER_DEFAULTS = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT", "WANDB_ERROR_REPORTING")


@pytest.fixture(scope="module")
def migrated_mlflow_db(tmp_path_factory):
    """An empty MLflow SQLite store as MLflow makes it: its schema migrations take seconds, so each test starts from a
    copy of this one."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    yield db
    if "wandb" in sys.modules:  # the wandb-core service this process started
        sys.modules["wandb"].teardown()


@pytest.fixture(autouse=True)
def trackers_home(tmp_path, monkeypatch, migrated_mlflow_db):
    """The local MLflow store where the runner puts it (beside the run store: <tmp>/mlruns), wandb's own caches and
    settings in the test's folder, no WANDB_MODE from outside, and the trackers' environment defaults undone after."""
    (tmp_path / "mlruns").mkdir()
    shutil.copy(migrated_mlflow_db, tmp_path / "mlruns" / "mlflow.db")
    for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    # wandb points child processes at this process's wandb-core (WANDB_SERVICE); an adala-train started here, then
    # SIGKILLed, would leave its run held there. Each process its own, as for a user.
    monkeypatch.delenv("WANDB_SERVICE", raising=False)
    for name in TRACKER_DEFAULTS:  # recorded as absent, so monkeypatch removes them again
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


# -- each tracker's own reader --------------------------------------------------------------------------------------
def local_store(tmp_path) -> str:
    """Where the runner puts the local MLflow store of a run store in <tmp>/runs: beside it."""
    return f"sqlite:///{tmp_path.resolve() / 'mlruns' / 'mlflow.db'}"


def mlflow_runs(tmp_path, experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(local_store(tmp_path))
    found = client.get_experiment_by_name(experiment)
    return client, client.search_runs([found.experiment_id]) if found else []


def mlflow_history(client, run, key: str) -> list[tuple[int, float]]:
    return sorted((metric.step, metric.value) for metric in client.get_metric_history(run.info.run_id, key))


def session_logs(run_dir) -> list:
    """<run dir>/wandb/offline-run-<time>-<id>[-n]/run-<id>.wandb, oldest first (latest-run links to the newest)."""
    logs = (run_dir / "wandb").glob("*/run-*.wandb")
    return sorted((log for log in logs if not log.parent.is_symlink()), key=lambda log: log.parent.name)


def wandb_sessions(run_dir) -> list[list[dict]]:
    """The records of each session of the run's W&B run (one transaction log each, oldest first), as wandb's own
    reader prints them."""
    logs = session_logs(run_dir)
    env = {**os.environ, "WANDB_MODE": "offline"}
    printed = [subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(log)],
                              capture_output=True, text=True, check=True, env=env).stdout for log in logs]
    return [[json.loads(line) for line in text.splitlines()] for text in printed]


def records(session: list[dict], kind: str) -> list[dict]:
    return [record[kind] for record in session if record["type"] == kind]


def wandb_history(sessions) -> list[dict]:
    """Every history row of every session, wandb's own keys left out."""
    return [{k: v for k, v in item["item"].items() if not k.startswith("_")}
            for session in sessions for item in records(session, "history")]


def wandb_summary(session) -> dict:
    summary = {}
    for update in records(session, "summary"):
        summary.update(update.get("update", {}))
    return summary


def tensorboard_scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def tensorboard_written_steps(run_dir, tag: str) -> list[int]:
    """The steps of every event of a tag in the event files as written, all sessions', before a reader's purge."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    return sorted(event.step for log in (run_dir / "tensorboard").glob("events.out.tfevents.*")
                  for event in EventFileLoader(str(log)).Load() for value in event.summary.value if value.tag == tag)


def unflatten(params: dict[str, str]) -> dict:
    """MLflow's params (dotted keys, values as text) back into the nested config they came from."""
    tree: dict = {}
    for key, text in params.items():
        *parents, leaf = key.split(".")
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
        try:
            node[leaf] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            node[leaf] = text
    return tree


def per_epoch(rows, key) -> list[tuple[int, float]]:
    return [(row["epoch"], float(row[key])) for row in rows if key in row]


def run_cli(*args, cwd, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([ADALA_BIN, *args], capture_output=True, text=True, cwd=cwd, timeout=300, **kwargs)


# -- the tests ------------------------------------------------------------------------------------------------------
def test_each_tracker_holds_the_run_once_through_an_interrupted_session_and_the_run_is_unchanged(smoke, tmp_path,
                                                                                                   monkeypatch):
    """Ctrl-C after the run store wrote epoch 1 but before the trackers got it: each tracker run ends failed with the
    reason, the next start continues it with epoch 1 (from metrics.jsonl) and 2, and ends it completed."""
    cfg = smoke(*RUN, "epochs=3", ALL)
    run = RunDir(run_path(cfg))
    logged = EpochLog.epoch_done

    def interrupted_after_the_store_wrote_epoch_1(self, row):
        logged(self, row)
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(EpochLog, "epoch_done", interrupted_after_the_store_wrote_epoch_1)
        with pytest.raises(KeyboardInterrupt):
            train_one(cfg)
    status = run.read_status()
    assert status["state"] == "failed" and [row["epoch"] for row in run.read_metrics()] == [0, 1]
    client, (first,) = mlflow_runs(tmp_path, "adala-bench")
    assert first.info.status == "KILLED"
    assert (first.data.tags["state"], first.data.tags["reason"]) == ("failed", status["reason"])
    assert [step for step, _ in mlflow_history(client, first, "epoch")] == [0]
    (session,) = wandb_sessions(run.path)
    assert records(session, "exit")[0]["exit_code"] == 1
    assert (wandb_summary(session)["state"], wandb_summary(session)["reason"]) == ("failed", status["reason"])

    assert train_one(cfg) == "completed"
    rows = run.read_metrics()
    config = yaml.safe_load(run.config_file.read_text())
    name = run.path.relative_to(tmp_path / "runs").as_posix()
    tags = {"task": "cifar10_vgg11", "optimizer": "sgd", "seed": "0", "profile": "smoke",
            "hparam_tag": run.path.parent.name, "run_dir": str(run.path.resolve()),
            "git_commit": run.read_status()["git_commit"]}

    # MLflow: the same run, now finished, with the config as params, the tags, every epoch once, config.yaml
    client, (tracked,) = mlflow_runs(tmp_path, "adala-bench")
    assert tracked.info.run_id == first.info.run_id == run.read_trackers()["mlflow"][local_store(tmp_path)]
    assert (tracked.info.status, tracked.info.run_name) == ("FINISHED", name)
    assert (tracked.data.tags["state"], tracked.data.tags["reason"]) == ("completed", "")
    assert tracked.data.tags.items() >= tags.items()
    assert unflatten(tracked.data.params) == config
    assert set(tracked.data.metrics) == set(rows[0])
    for key in rows[0]:
        assert mlflow_history(client, tracked, key) == per_epoch(rows, key), key
    copy = client.download_artifacts(tracked.info.run_id, "config.yaml", str(tmp_path))
    assert open(copy, "rb").read() == run.config_file.read_bytes()

    # W&B: two sessions of one run id, each epoch once across them, the end in the last one
    sessions = wandb_sessions(run.path)
    assert len(sessions) == 2
    starts = [records(session, "run")[0] for session in sessions]
    assert {start["run_id"] for start in starts} == {run.read_trackers()["wandb"]}
    start = starts[-1]
    assert (start["project"], start["display_name"], start.get("run_group", "")) == ("adala-bench", name, "")
    assert sorted(start["tags"]) == sorted(["cifar10_vgg11", "sgd", "smoke"])
    config_given = {k: v for k, v in start["config"]["update"].items() if k != "_wandb"}
    assert config_given == {**config, "run": tags}
    assert wandb_history(sessions) == rows
    assert records(sessions[-1], "exit")[0]["exit_code"] == 0
    assert (wandb_summary(sessions[-1])["state"], wandb_summary(sessions[-1])["reason"]) == ("completed", "")
    saved = [entry["path"] for files in records(sessions[0], "files") for entry in files["files"]]
    assert "run/config.yaml" in saved
    session_folder = session_logs(run.path)[0].parent
    assert (session_folder / "files" / "run" / "config.yaml").read_bytes() == run.config_file.read_bytes()

    # TensorBoard: every number of every row once at step = epoch (float32, as TensorBoard keeps scalars), each epoch
    # written once by the two sessions together
    assert tensorboard_written_steps(run.path, "test_acc") == [0, 1, 2]
    scalars = tensorboard_scalars(run.path)
    assert set(scalars) == set(rows[0])
    for key in rows[0]:
        assert scalars[key] == [(epoch, float(np.float32(value))) for epoch, value in per_epoch(rows, key)], key

    # the run itself: the same directory and metrics as without any logger
    plain = smoke(*RUN, "epochs=3", results=tmp_path / "plain")
    assert train_one(plain) == "completed"
    assert run_path(plain).relative_to(tmp_path / "plain").as_posix() == name
    assert metrics_without_time(RunDir(run_path(plain))) == metrics_without_time(run)


def test_a_run_sigkilled_mid_training_resumes_into_one_tracker_run_with_each_epoch_once(tmp_path, data_root):
    epochs = 16  # far more than the 2 the kill waits for
    args = ["profile=smoke", f"epochs={epochs}", *RUN, f"data.root={data_root}", f"results.root={tmp_path}/runs", ALL]
    run = RunDir(run_path(compose(*args)))
    process = subprocess.Popen([ADALA_BIN, *args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while not (run.metrics_file.exists() and len(run.read_metrics()) >= 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert run.read_status()["state"] == "running" and 2 <= len(run.read_metrics()) < epochs  # killed mid-training

    assert train_one(compose(*args)) == "completed"  # the resume, here
    rows = run.read_metrics()
    assert [row["epoch"] for row in rows] == list(range(epochs))

    client, (tracked,) = mlflow_runs(tmp_path, "adala-bench")
    assert tracked.info.status == "FINISHED"
    for key in ("epoch", "test_acc", "wall_s"):
        assert mlflow_history(client, tracked, key) == per_epoch(rows, key), key
    # The killed session's log holds what wandb-core had written of it when the kill came (it buffers: often nothing)
    sessions = wandb_sessions(run.path)
    assert len(sessions) == 2
    assert {start["run_id"] for session in sessions for start in records(session, "run")} == {run.read_trackers()["wandb"]}
    assert wandb_history(sessions) == rows
    assert [step for step, _ in tensorboard_scalars(run.path)["test_acc"]] == list(range(epochs))
    # wandb-core, the killed process's helper (it watches that pid), went with it
    def helper_left() -> bool:
        listed = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        return re.search(rf"wandb-core .*--pid {process.pid}\b", listed) is not None

    deadline = time.monotonic() + 30
    while helper_left() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not helper_left()


def test_a_sweep_groups_its_runs_and_a_gans_sample_grids_are_artifacts(tmp_path, data_root, random_home):
    """One MLflow experiment and one W&B group, named after the sweep's folder, with a tracker run per job."""
    sweep = tmp_path / "sweeps" / "probe-sweep"
    args = ["--multirun", "profile=smoke", "epochs=1", "task=cifar10_vgg11,gan_wgan", "optimizer=sgd",
            f"data.root={data_root}", f"results.root={tmp_path}/runs", "logger=[mlflow,wandb]",
            f"hydra.sweep.dir={sweep}"]
    result = run_cli(*args, cwd=tmp_path, env={**os.environ, "TORCH_HOME": str(random_home)})
    assert result.returncode == 0, result.stdout + result.stderr
    run_dirs = {task: RunDir(run_path(compose("profile=smoke", "epochs=1", f"task={task}", "optimizer=sgd",
                                               f"data.root={data_root}", f"results.root={tmp_path}/runs")))
                for task in ("cifar10_vgg11", "gan_wgan")}

    client, tracked = mlflow_runs(tmp_path, "probe-sweep")
    assert sorted(run.data.tags["task"] for run in tracked) == ["cifar10_vgg11", "gan_wgan"]
    assert {(run.info.status, run.data.tags["state"]) for run in tracked} == {("FINISHED", "completed")}
    gan = run_dirs["gan_wgan"]
    (gan_run,) = [run for run in tracked if run.data.tags["task"] == "gan_wgan"]
    samples = sorted(path.name for path in (gan.path / "samples").glob("*.png"))
    assert samples == ["epoch_000.png", "final.png"]
    assert sorted(a.path for a in client.list_artifacts(gan_run.info.run_id, "samples")) == [f"samples/{s}" for s in
                                                                                              samples]
    copy = client.download_artifacts(gan_run.info.run_id, "samples/final.png", str(tmp_path))
    assert open(copy, "rb").read() == (gan.path / "samples" / "final.png").read_bytes()

    for task, run in run_dirs.items():
        (session,) = wandb_sessions(run.path)
        assert records(session, "run")[0]["run_group"] == "probe-sweep", task
    (gan_session,) = wandb_sessions(gan.path)
    saved = {entry["path"] for files in records(gan_session, "files") for entry in files["files"]}
    assert saved >= {"run/config.yaml", "run/samples/epoch_000.png", "run/samples/final.png"}


def test_a_diverged_run_ends_its_tracker_run_failed_with_the_reason(smoke, tmp_path):
    cfg = smoke(*RUN, "epochs=1", "optimizer.lr=1e12", "logger=mlflow")
    assert train_one(cfg) == "diverged"
    reason = RunDir(run_path(cfg)).read_status()["reason"]
    _, (tracked,) = mlflow_runs(tmp_path, "adala-bench")
    assert (tracked.info.status, tracked.data.tags["state"], tracked.data.tags["reason"]) == ("FAILED", "diverged",
                                                                                            reason)
    assert reason.startswith("non-finite loss at epoch 0")


def test_an_unreachable_tracking_server_costs_one_warning_line(smoke, tmp_path, monkeypatch, caplog):
    """A server that takes the connection and never answers (a socket on this machine that listens and never
    accepts; the kernel completes the handshake): MLflow's request times out, and the run trains on."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        cfg = smoke(*RUN, "epochs=2", "logger=mlflow",
                    f"logger.mlflow.tracking_uri=http://127.0.0.1:{silent.getsockname()[1]}")
        started = time.monotonic()
        with caplog.at_level(logging.INFO, logger="adala_bench"):
            assert train_one(cfg) == "completed"
        assert time.monotonic() - started < 60
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0], warnings
    assert warnings[0].startswith("logger mlflow is off for the rest of this session") and "Read timed out" in warnings[0]
    assert len(RunDir(run_path(cfg)).read_metrics()) == 2


def test_a_full_mlflow_store_and_an_unwritable_wandb_folder_cost_a_warning_line_each_and_change_nothing(tmp_path,
                                                                                                       data_root):
    """Real failures in a mount namespace of the run's own: a full tmpfs where the local MLflow store goes, a
    read-only one on <run dir>/wandb. The baseline, the same run without a logger, imports no tracker's package."""
    if not shutil.which("unshare") or subprocess.run(["unshare", "-m", "mount", "-t", "tmpfs", "tmpfs", str(tmp_path)],
                                                     capture_output=True).returncode:
        pytest.skip("needs root: unshare -m and mount, to make a full and a read-only filesystem")
    args = ["profile=smoke", "epochs=2", *RUN, f"data.root={data_root}"]
    tracked = [*args, f"results.root={tmp_path}/runs", "logger=[mlflow,wandb]"]
    run = RunDir(run_path(compose(*tracked)))
    (run.path / "wandb").mkdir(parents=True)
    mlruns = tmp_path / "mlruns"
    script = (f"mount -t tmpfs -o size=64k tmpfs {mlruns} && {{ head -c 1M /dev/zero > {mlruns}/filler || true; }} "
              f"&& mount -t tmpfs -o ro tmpfs {shlex.quote(str(run.path / 'wandb'))} "
              f"&& exec {ADALA_BIN} {shlex.join(tracked)}")
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    warnings = [line for line in output.splitlines() if "is off for the rest of this session" in line]
    assert len(warnings) == 2, output
    assert re.search(r"logger mlflow is off .*database or disk is full", warnings[0]), warnings
    assert re.search(r"logger wandb is off .*wandb is not writable", warnings[1]), warnings
    assert "Traceback" not in output and "WARNING" not in output.replace(warnings[0], "").replace(warnings[1], "")
    assert run.read_status()["state"] == "completed"

    plain = subprocess.run([sys.executable, "-X", "importtime", "-m", "adala_bench.runner", *args,
                            f"results.root={tmp_path}/plain"], capture_output=True, text=True, cwd=tmp_path,
                           timeout=300)
    assert plain.returncode == 0, plain.stderr[-2000:]
    imported = re.findall(r"\|\s+((?:mlflow|wandb|tensorboard|torch\.utils\.tensorboard)\S*)$", plain.stderr, re.M)
    assert imported == []
    assert metrics_without_time(RunDir(run_path(compose(*args, f"results.root={tmp_path}/plain")))) == \
        metrics_without_time(run)


@pytest.mark.parametrize("name", ["tensorboard", "mlflow", "wandb"])
def test_a_missing_tracker_package_is_one_line_naming_its_extra_before_anything_is_built(smoke, tmp_path, monkeypatch,
                                                                                        name):
    monkeypatch.setitem(sys.modules, name, None)  # `import <name>` raises ImportError, as without the package
    monkeypatch.setattr("adala_bench.tasks.build_task", lambda *args: pytest.fail("built the task"))
    with pytest.raises(ConfigError) as error:
        train_one(smoke(*RUN, f"logger={name}"))
    assert str(error.value) == f"logger={name} needs the {name} package: pip install -e '.[{name}]'"
    assert not (tmp_path / "runs").exists()
