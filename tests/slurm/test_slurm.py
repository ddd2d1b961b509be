"""adala-train's SLURM launcher (hydra/launcher=slurm_cpu) end to end, against a real one-node cluster on this machine
(scripts/slurm_local.sh), used as a user's cluster is used: `adala-train --multirun` submits one job per run with
sbatch and waits for them; the jobs run on the node (this machine) as separate processes; the test drives SLURM with
its own commands (scontrol requeue, scancel) and reads the run store, adala-plan and the jobs' logs.

- a plain sweep of two runs completes, in the run directories adala-train alone would use;
- time-limit warning: SLURM itself sends USR2 `signal_delay_s` (120 s, as shipped) before a 3-minute time limit,
  after a few dozen epochs; submitit requeues the job, the requeued job resumes the run, and the metrics equal an
  uninterrupted run's;
- preemption: `scontrol requeue` resumes the same way;
- outright cancel: `scancel` leaves the run interrupted; the same sweep submitted again resumes it; adala-plan says
  running, interrupted and completed as it happens;
- submitit's sacct errors (this cluster keeps no accounting) come out as one line.

How long SLURM waits (scripts/slurm_local.sh's config; measured here on 2 slow cores):
- a job starts about 1 s after sbatch (the scheduler runs every second);
- the time-limit warning: slurmctld checks time limits every 30 s (PERIODIC_TIMEOUT) and sends the --signal when
  the limit is less than signal_delay_s + 30 s away, so USR2 for `--time=3 --signal=USR2@120` comes 30-60 s after
  the job starts, and again 30-60 s after each requeued start (SLURM re-arms the warning on requeue; the test
  raises the requeued job's limit to 10 minutes instead, so that it finishes the run in one go);
- a requeued job is held (BeginTime) for the job credential's lifetime + 1 s after it re-enters the queue: AuthInfo
  cred_expire=5 s here, so 6 s (120 s + 1 s by default, which is what a real cluster waits). submitit's own requeue
  (USR2) re-enters the queue at once: the job restarts about 7 s after the signal;
- `scontrol requeue` and `scancel` send SIGTERM, which submitit's handler ignores ("Bypassing signal SIGTERM"): the
  run trains on until SIGKILL, KillWait (10 s here, 30 s by default) later, and a requeued job re-enters the queue
  only then: it restarts about 16 s after `scontrol requeue`. Meanwhile the run reads as interrupted (status
  running, lock free).
Runs are sized from the epoch time measured here (the `epoch_seconds` fixture), so each is still training when
SLURM or the test stops it. Sized by time, a run may take a thousand epochs on the smoke data: every run here
trains at lr 0.01 (`STEADY`), where the shipped SGD lr 0.1 blows up at epoch 398 of 906 (a real divergence of the
tiny network, which the runner records as such and a resume test cannot use). The whole of tests/slurm took 5.5-6 minutes here, on 2 cores busy with other work
(the time-limit test 2.5, preemption 1.2, cancel 1.5, the plain sweep 0.3, calibration 0.2).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adala_bench.records import read_run
from adala_bench.store import RunDir
from helpers import compose, metrics_without_time, run_path

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
TRAIN, PLAN = str(BIN / "adala-train"), str(BIN / "adala-plan")

JOB_START = re.compile(r"^submitit INFO \([^)]*\) - Starting with JobEnvironment", re.M)
USR2 = re.compile(r"^submitit WARNING \([^)]*\) - Caught signal SIGUSR2 on \S+: this job is (timed-out|preempted)\.$",
                  re.M)
REQUEUED = re.compile(r"^submitit INFO \([^)]*\) - Requeued job (\S+) \((\d+) remaining timeouts\)$", re.M)
RUN_START = re.compile(r"^adala-train: (starting|resuming) (\S+?)(?: at epoch (\d+))?$", re.M)
EPOCH = re.compile(r"^cifar10_vgg11 \w+ seed=\d+: epoch (\d+) \(", re.M)
PLAN_ROW = re.compile(r"^cifar10_vgg11\s+(\S+)\s+\d+\s+(completed|diverged|running|interrupted|not started|unreadable)"
                      r"(?:\s+(.*?))?\s+(?:-|\d+\.\d+)$", re.M)
SACCT_LINES = ("Bypassing sacct error", "Slurm accounting storage is disabled")


# Every run of these tests: a steady lr (SGD's shipped 0.1 diverges after ~400 smoke epochs; 0.01, then 0.001 from the
# smoke profile's milestone, trained Adam 1,100 epochs and SGD 1,065 here without a blow-up).
STEADY = ("profile=smoke", "task=cifar10_vgg11", "seed=0", "optimizer.lr=0.01")


def fail(step: str, message: str) -> None:
    """One line naming the step that failed (more lines after it only where a log says why)."""
    pytest.fail(f"step '{step}': {message}", pytrace=False)


def check(condition, step: str, message: str) -> None:
    if not condition:
        fail(step, message)


def epochs_for(seconds: float, epoch_seconds: float, least: int) -> int:
    """Epochs that train for about `seconds` here."""
    return max(least, math.ceil(seconds / epoch_seconds))


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


# -- SLURM, as its commands say it -------------------------------------------------------------------------------------
def queue() -> dict[str, str]:
    """Job id -> 'STATE reason' of every job in the queue (array tasks one by one)."""
    done = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T|%r"], capture_output=True, text=True, timeout=30)
    return {job: f"{state} {reason}" for job, state, reason in
            (line.split("|", 2) for line in done.stdout.splitlines() if line.count("|") == 2)}


def show_job(job: str) -> dict[str, str]:
    """`scontrol show job` as key -> value (a finished job stays there for MinJobAge, 300 s)."""
    done = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, timeout=30)
    return dict(re.findall(r"(\w[\w/:]*)=(\S*)", done.stdout))


def slurm(step: str, *command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    check(done.returncode == 0, step, f"`{' '.join(command)}` exited {done.returncode}: {done.stderr.strip()}")


# -- one sweep through the launcher ------------------------------------------------------------------------------------
class Sweep:
    """`adala-train --multirun hydra/launcher=slurm_cpu ...` in its own tmp folder: results root, Hydra sweep dir and
    submitit folder. The submitting process waits for its jobs; it runs in the background, its output in a file."""

    def __init__(self, tmp: Path, data_root: Path, *overrides: str, launcher: tuple[str, ...] = ()):
        self.tmp, self.runs, self.folder = tmp, tmp / "runs", tmp / "submitit"
        self.overrides = [*STEADY, f"data.root={data_root}",
                          f"results.root={self.runs}", *overrides]
        self.hydra = ["hydra/launcher=slurm_cpu", f"hydra.sweep.dir={tmp / 'sweep'}",
                      f"hydra.launcher.submitit_folder={self.folder}/%j", *launcher]
        self.process: subprocess.Popen | None = None
        self.submissions = 0
        self.known: set[str] = set()  # jobs of earlier submissions

    @property
    def output(self) -> Path:
        return self.tmp / f"submit{self.submissions}.out"

    def run_dir(self, optimizer: str) -> Path:
        """Where adala-train alone puts this sweep's run of `optimizer` (config.RunConfig.path)."""
        job = {key: value for key, value in (o.split("=", 1) for o in self.overrides)}
        job["optimizer"] = optimizer
        return run_path(compose(*(f"{key}={value}" for key, value in job.items())))

    def submit(self) -> None:
        self.known = set(self.jobs())
        self.submissions += 1
        with open(self.output, "w") as out:
            self.process = subprocess.Popen([TRAIN, "--multirun", *self.hydra, *self.overrides], cwd=self.tmp,
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def jobs(self) -> list[str]:
        """The job ids submitit wrote folders for (array tasks `<array>_<task>`), in submission order."""
        if not self.folder.is_dir():
            return []
        found = [path.name for path in self.folder.iterdir() if any(path.glob("*_submitted.pkl"))]
        return sorted(found, key=lambda job: tuple(map(int, job.split("_"))))

    def new_jobs(self) -> list[str]:
        return [job for job in self.jobs() if job not in self.known]

    def log(self, job: str, stream: str = "out") -> str:
        """The job's stdout (every run of it, appended), or its stderr."""
        path = self.folder / job / f"{job}_0_log.{stream}"
        return path.read_text(errors="replace") if path.exists() else ""

    def tails(self, job: str) -> str:
        """The ends of the job's stdout and stderr, for a failure message."""
        return f"{tail(self.log(job), 15)}\n-- stderr:\n{tail(self.log(job, 'err'), 10)}"

    def job_of(self, run: Path, step: str, timeout: float = 120) -> str:
        """The job of this submission that trains `run` (its log names the run)."""
        return wait_for(f"a job of submission {self.submissions} to start {run.parent.parent.name}", step,
                        lambda: next((job for job in self.new_jobs() if str(run) in self.log(job)), None),
                        timeout, sweep=self)

    def wait(self, timeout: float, step: str = "submit", each=None) -> str:
        """Until the submitting process exits 0 (its output), calling each() every half second meanwhile; fails at
        once when a job of ours has left the queue without a result, which the process would wait for forever
        (sacct has no accounting here: submitit sees the job's state as UNKNOWN)."""
        deadline, gone_since = time.monotonic() + timeout, None
        while self.process.poll() is None:
            if each is not None:
                each()
            jobs, queued = self.new_jobs(), queue()
            unfinished = [job for job in jobs if not list((self.folder / job).glob("*_result.pkl"))]
            if unfinished and not any(job in queued for job in jobs):
                gone_since = gone_since or time.monotonic()
                if time.monotonic() - gone_since > 20:
                    job = unfinished[0]
                    fail("job", f"job {job} left the queue without a result ({show_job(job).get('JobState')}); "
                                f"see {self.folder / job}\n{self.tails(job)}")
            else:
                gone_since = None
            if time.monotonic() > deadline:
                fail(step, f"the sweep did not finish in {timeout:.0f}s; queue {queued}; see {self.output}")
            time.sleep(0.5)
        text = self.output.read_text(errors="replace")
        check(self.process.returncode == 0, step, f"adala-train --multirun exited {self.process.returncode}; "
                                                  f"see {self.output}\n{tail(text)}")
        return text

    def stop(self) -> None:
        """Ctrl-C for the submitting process (SIGKILL if it does not go in 30 s)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)

    def clean_up(self) -> None:
        """No process and no job of this sweep left behind."""
        self.stop()
        left = [job for job in self.jobs() if job in queue()]
        if left:
            subprocess.run(["scancel", *left], capture_output=True, timeout=60)
            deadline = time.monotonic() + 60
            while any(job in queue() for job in left) and time.monotonic() < deadline:
                time.sleep(0.5)


def wait_for(what: str, step: str, condition, timeout: float, sweep: Sweep | None = None, poll: float = 0.25):
    """condition()'s first true value, polled; fails naming the step after `timeout` s, or at once when the sweep's
    submitting process has exited."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if sweep is not None and sweep.process.poll() is not None:
            fail(step, f"no {what}: the submitting process exited {sweep.process.returncode}; see {sweep.output}\n"
                       f"{tail(sweep.output.read_text(errors='replace'))}")
        if time.monotonic() > deadline:
            fail(step, f"no {what} after {timeout:.0f}s; queue {queue()}")
        time.sleep(poll)


def trained(run: Path, epochs: int):
    """The run's record once its job trains it (lock held) with at least `epochs` epochs done."""
    record = read_run(run)
    return record if record.state == "running" and record.epochs_done >= epochs else None


def plan(sweep: Sweep, in_process: bool = False) -> dict[str, tuple[str, str]]:
    """adala-plan's line for each run of the sweep (optimizer -> (state, detail)), given the sweep's overrides.
    In-process where a state lasts only seconds (adala-plan as a command takes ~5 s to start here)."""
    args = [*sweep.hydra, *sweep.overrides]
    if in_process:
        from adala_bench import plan as plan_module

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = plan_module.main(args)
        text = out.getvalue()
    else:
        done = subprocess.run([PLAN, *args], capture_output=True, text=True, timeout=120, cwd=sweep.tmp)
        code, text = done.returncode, done.stdout + done.stderr
    check(code == 0, "plan", f"adala-plan exited {code}: {tail(text, 3)}")
    return {optimizer: (state, detail or "") for optimizer, state, detail in PLAN_ROW.findall(text)}


@pytest.fixture
def sweeps(slurm_cluster):
    """Makes Sweeps; at the end stops their submitting processes and cancels their jobs, passed or failed."""
    made: list[Sweep] = []
    others: list[subprocess.Popen] = []

    def make(*args, **kwargs) -> Sweep:
        made.append(Sweep(*args, **kwargs))
        return made[-1]

    make.background = others  # other processes to stop (reference runs)
    yield make
    for process in others:
        if process.poll() is None:
            process.kill()
            process.wait(30)
    for sweep in made:
        sweep.clean_up()


def reference(sweeps, tmp: Path, data_root: Path, *overrides: str) -> tuple[subprocess.Popen, Path]:
    """The same run trained straight through by adala-train alone (no SLURM), in its own results root, in the
    background while the cluster runs the other; returns the process and the run directory."""
    job = [*STEADY, f"data.root={data_root}",
           f"results.root={tmp / 'straight'}", *overrides]
    out = open(tmp / "straight.out", "w")
    process = subprocess.Popen([TRAIN, *job, f"hydra.run.dir={tmp / 'straight-hydra'}"], cwd=tmp, stdout=out,
                               stderr=subprocess.STDOUT)
    out.close()
    sweeps.background.append(process)
    return process, run_path(compose(*job))


def same_metrics(step: str, run: Path, straight: tuple[subprocess.Popen, Path], tmp: Path) -> None:
    process, path = straight
    try:
        code = process.wait(600)
    except subprocess.TimeoutExpired:
        fail("reference run", f"the uninterrupted run did not finish in 600s; see {tmp / 'straight.out'}")
    check(code == 0, "reference run", f"adala-train exited {code}; see {tmp / 'straight.out'}")
    resumed, uninterrupted = metrics_without_time(RunDir(run)), metrics_without_time(RunDir(path))
    check(len(resumed) == len(uninterrupted), step,
          f"{len(resumed)} metrics rows after the requeue(s), {len(uninterrupted)} in the uninterrupted run")
    for row, (a, b) in enumerate(zip(resumed, uninterrupted)):
        check(a == b, step, f"metrics row {row} differs from the uninterrupted run's (wall_s aside): {a} != {b}")


def slots(log: str) -> list[str]:
    """The job's log cut at each start of the job (one piece per time SLURM ran it)."""
    starts = [m.start() for m in JOB_START.finditer(log)] + [len(log)]
    return [log[a:b] for a, b in zip(starts, starts[1:])]


def check_resumes(step: str, log: str, least: int) -> list[int]:
    """Every slot after the first that got as far as the run resumed it where the last one stopped, losing at most
    the epoch in progress; the first resume is at epoch >= `least`. Returns the epochs resumed at."""
    resumed, last_done = [], -1
    for number, slot in enumerate(slots(log)):
        started = RUN_START.findall(slot)
        if number and started:
            kind, _, epoch = started[0]
            check(kind == "resuming", step, f"slot {number + 1} of the job {kind} the run instead of resuming it")
            check(int(epoch) >= last_done + 1, step, f"slot {number + 1} resumed at epoch {epoch}, but epoch "
                                                     f"{last_done} had finished before: finished epochs were lost")
            resumed.append(int(epoch))
        last_done = max([last_done, *map(int, EPOCH.findall(slot))])
    check(resumed and resumed[0] >= least, step, f"the run was resumed at epochs {resumed}; expected a first resume at "
                                                 f"epoch {least} or later")
    return resumed


# -- the tests ---------------------------------------------------------------------------------------------------------
def test_submitits_sacct_errors_come_out_as_one_line(tmp_path):
    """No cluster needed: a `sacct` that fails as it does without accounting, submitit's own watcher calling it, its
    logger's own handlers, and a root handler as Hydra installs one."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sacct").write_text("#!/bin/sh\necho 'Slurm accounting storage is disabled' >&2\nexit 1\n")
    (fake / "sacct").chmod(0o755)
    script = (
        "import logging, sys\n"
        "logging.basicConfig(stream=sys.stdout, level=logging.INFO, format='[%(asctime)s][HYDRA] %(message)s')\n"
        "import submitit\n"
        "from submitit.slurm.slurm import SlurmInfoWatcher\n"
        "from adala_bench import slurm_logs\n"
        "if sys.argv[1] == 'quiet':\n"
        "    assert slurm_logs.quiet_sacct_errors() is slurm_logs.quiet_sacct_errors()\n"
        "watcher = SlurmInfoWatcher(delay_s=0)\n"
        "watcher.register_job('42')\n"
        "for _ in range(3):\n"
        "    watcher.update()\n"
        "    logging.getLogger('submitit').warning(\"Call #9 - Bypassing sacct error Command '['sacct']' returned \"\n"
        "                                          'non-zero exit status 1., status may be inaccurate.')\n"
        "logging.getLogger('submitit').warning('some other warning')\n"
        "print('state', watcher.get_state('42', mode='cache'))\n"
    )
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}

    def run(mode: str) -> list[str]:
        done = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, env=env,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return (done.stdout + done.stderr).splitlines()

    loud = run("loud")
    assert sum("Bypassing sacct error" in line for line in loud) == 18  # 6 failures x (stderr, stdout, root)
    assert loud.count("Slurm accounting storage is disabled") == 3
    quiet = run("quiet")
    noise = [line for line in quiet if any(text in line for text in SACCT_LINES)]
    assert len(noise) == 1, quiet
    assert noise[0].startswith("adala-train: sacct fails on this cluster (Slurm accounting storage is disabled: no "
                               "accounting database), so submitit cannot read job states;"), noise
    assert "a job that ends without writing one (cancelled with scancel, or killed)" in noise[0]
    assert sum("some other warning" in line for line in quiet) == 3  # everything else as before
    assert "state UNKNOWN" in quiet


def test_a_plain_sweep_completes_in_the_run_directories_adala_train_uses(sweeps, tmp_path, data_root):
    sweep = sweeps(tmp_path, data_root, "optimizer=sgd,adam")
    sweep.submit()
    out = sweep.wait(300)

    jobs = sweep.new_jobs()
    check(len(jobs) == 2 and all("_" in job for job in jobs), "submit",
          f"expected one array job of 2 tasks, found jobs {jobs}")
    array = jobs[0].split("_")[0]
    script = (sweep.folder / array / f"{array}_submission.sh").read_text()
    for flag in ("#SBATCH --array=0-1%2", "#SBATCH --partition=cpu", "#SBATCH --requeue", "#SBATCH --signal=USR2@120"):
        check(flag in script.splitlines(), "submit", f"{flag!r} missing from {sweep.folder / array}")
    expected = {sweep.run_dir(optimizer) for optimizer in ("sgd", "adam")}
    written = {path.parent for path in sweep.runs.rglob("status.json")}
    check(written == expected, "job", f"runs written at {sorted(map(str, written))}, adala-train alone would use "
                                      f"{sorted(map(str, expected))}")
    for run in expected:
        record = read_run(run)
        check(record.state == "completed" and record.epochs_done == 2, "job",
              f"{run} is {record.state} after {record.epochs_done} epochs")
        check(any(f"adala-train: starting {run}" in sweep.log(job) for job in jobs), "job",
              f"no job log says it started {run}")
    for job in jobs:
        check(show_job(job).get("JobState") == "COMPLETED", "job", f"job {job} is {show_job(job).get('JobState')}")

    # submitit asks sacct about its jobs every few seconds; sacct fails here (no accounting): one line says so.
    noise = [line for line in out.splitlines() if any(text in line for text in SACCT_LINES)]
    check(len(noise) <= 1, "sacct log", f"{len(noise)} lines of sacct errors in the sweep's output (at most 1): "
                                        f"adala_bench/runner.py main() must call slurm_logs.quiet_sacct_errors() "
                                        f"before hydra_main()\n" + "\n".join(noise[:4]))


def test_a_time_limit_warning_requeues_the_job_and_the_requeued_job_resumes_the_run(sweeps, tmp_path, data_root,
                                                                                     epoch_seconds):
    """SLURM itself sends USR2 signal_delay_s (120 s, as shipped) before a 3-minute time limit, i.e. 30-60 s after the
    job starts (its time-limit check runs every 30 s): the run is sized to train for 100 s (as calibrated alone; its
    reference run beside it slows it further), so it is still training then, on a fast machine or a loaded one. Once
    the job is requeued the test gives it 10 minutes (`scontrol update TimeLimit=10`), so the requeued job finishes
    the run in one go: SLURM would warn it again 30-60 s after it starts, and each further requeue would resume the
    run all the same, only a minute later."""
    epochs = epochs_for(100, epoch_seconds, least=40)
    straight = reference(sweeps, tmp_path, data_root, "optimizer=sgd", f"epochs={epochs}")
    sweep = sweeps(tmp_path, data_root, "optimizer=sgd", f"epochs={epochs}", launcher=("hydra.launcher.timeout_min=3",))
    run = sweep.run_dir("sgd")
    sweep.submit()
    job = sweep.job_of(run, "job")
    script = (sweep.folder / job / f"{job}_submission.sh").read_text().splitlines()
    check("#SBATCH --time=3" in script and "#SBATCH --signal=USR2@120" in script, "submit",
          f"the job's sbatch script lacks --time=3 or --signal=USR2@120: {sweep.folder / job}")

    seen, extended = set(), []  # the run's states while the sweep runs; when the time limit was raised

    def watch():
        seen.add(read_run(run).state)
        if not extended and REQUEUED.search(sweep.log(job)):
            slurm("requeue", "scontrol", "update", f"JobId={job}", "TimeLimit=10")
            extended.append(time.monotonic())

    sweep.wait(600, each=watch)
    log = sweep.log(job)
    warnings, requeues = USR2.findall(log), REQUEUED.findall(log)
    check(warnings, "time-limit warning", f"SLURM sent no USR2 before the run completed ({epochs} epochs); "
                                          f"see {sweep.folder / job}")
    check(warnings == ["timed-out"], "time-limit warning", f"submitit took the warnings for {warnings}")
    check([int(n) for _, n in requeues] == [19], "requeue",
          f"requeues {requeues}: the time-out should requeue the job once, with 19 time-outs left of 20")
    check(len(slots(log)) == 2, "requeue", f"the job ran {len(slots(log))} times after one requeue")
    info = show_job(job)
    check(info.get("Restarts") == "1", "requeue", f"SLURM counts {info.get('Restarts')} restarts of job {job} "
                                                  f"(SLURM_RESTART_COUNT)")
    (resumed,) = check_resumes("resume", log, least=2)
    check({"running", "interrupted"} <= seen, "resume", f"the run was only ever {sorted(seen)} while the job ran")
    record = read_run(run)
    check(record.state == "completed" and record.epochs_done == epochs, "resume",
          f"the run is {record.state} after {record.epochs_done}/{epochs} epochs")
    same_metrics("metrics", run, straight, tmp_path)
    stamp = re.compile(r"^submitit \w+ \(([\d-]+ [\d:]+),\d+\) - (?:Caught signal SIGUSR2|Starting with)", re.M)
    times = [time.mktime(time.strptime(t, "%Y-%m-%d %H:%M:%S")) for t in stamp.findall(log)]
    print(f"\ntime-limit: {epochs} epochs; USR2 {times[1] - times[0]:.0f}s after the job started, at epoch "
          f"{resumed}; started again {times[2] - times[1]:.0f}s later (held from {info.get('SubmitTime')} to "
          f"{info.get('EligibleTime')})")


def test_a_preempted_job_requeued_by_scontrol_resumes_the_run(sweeps, tmp_path, data_root, epoch_seconds):
    epochs = epochs_for(35, epoch_seconds, least=30)
    straight = reference(sweeps, tmp_path, data_root, "optimizer=sgd", f"epochs={epochs}")
    sweep = sweeps(tmp_path, data_root, "optimizer=sgd", f"epochs={epochs}")
    run = sweep.run_dir("sgd")
    sweep.submit()
    job = sweep.job_of(run, "job")
    wait_for("2 epochs of the run", "job", lambda: trained(run, 2), 120, sweep=sweep)

    requeued = time.monotonic()
    slurm("preempt", "scontrol", "requeue", job)
    # SIGTERM (ignored by submitit), SIGKILL KillWait later: the run is left running with its lock free.
    record = wait_for("interrupted run after the requeue", "preempt",
                      lambda: (r := read_run(run)).state != "running" and r, 60, sweep=sweep)
    killed = time.monotonic() - requeued
    check(record.state == "interrupted" and record.reason == "killed (status running, lock free)", "preempt",
          f"after the requeue the run is {record.state} ({record.reason})")
    check(record.epochs_done < epochs, "preempt", f"the run finished before the requeue stopped it ({epochs} epochs)")
    lines = plan(sweep, in_process=True)
    caught = read_run(run).state == "interrupted"
    if caught:  # still, after adala-plan read it: its line must say so
        check(lines.get("sgd", ("?",))[0] == "interrupted" and "lock free" in lines["sgd"][1], "plan",
              f"adala-plan says {lines.get('sgd')} for the preempted run")
    wait_for("second start of the job", "resume", lambda: len(slots(sweep.log(job))) >= 2, 120, sweep=sweep)
    restarted = time.monotonic() - requeued
    sweep.wait(300)

    log = sweep.log(job)
    check(len(slots(log)) == 2 and not USR2.findall(log), "resume", f"the job ran {len(slots(log))} times; see "
                                                                    f"{sweep.folder / job}")
    check("Bypassing signal SIGTERM" in slots(log)[0], "preempt", "the first run of the job got no SIGTERM")
    (resumed,) = check_resumes("resume", log, least=2)
    check(resumed >= record.epochs_done, "resume", f"resumed at epoch {resumed}, {record.epochs_done} were done")
    info = show_job(job)
    check(info.get("Restarts") == "1", "resume", f"SLURM counts {info.get('Restarts')} restarts of job {job}")
    record = read_run(run)
    check(record.state == "completed" and record.epochs_done == epochs, "resume",
          f"the run is {record.state} after {record.epochs_done}/{epochs} epochs")
    same_metrics("metrics", run, straight, tmp_path)
    print(f"\npreemption: {epochs} epochs; killed {killed:.1f}s after `scontrol requeue`, started again after "
          f"{restarted:.1f}s (held from {info.get('SubmitTime')} to {info.get('EligibleTime')}); resumed at {resumed}; "
          f"adala-plan {'said interrupted' if caught else 'came too late'}")


def test_a_cancelled_job_leaves_its_run_interrupted_and_the_same_sweep_resumes_it(sweeps, tmp_path, data_root,
                                                                                   epoch_seconds):
    epochs = epochs_for(35, epoch_seconds, least=30)
    sweep = sweeps(tmp_path, data_root, "optimizer=sgd,adam", f"epochs={epochs}")
    sgd, adam = sweep.run_dir("sgd"), sweep.run_dir("adam")
    sweep.submit()
    job = sweep.job_of(sgd, "job")
    wait_for("2 epochs of the sgd run", "job", lambda: trained(sgd, 2), 120, sweep=sweep)

    state, detail = plan(sweep).get("sgd", ("absent", ""))
    check(state == "running", "plan", f"adala-plan says {state} ({detail}) for the run its job trains")
    holder = int(re.search(r"pid (\d+)", detail)[1])
    command = Path(f"/proc/{holder}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    check("submitit.core._submit" in command, "plan",
          f"the run's lock is held by pid {holder} ({command}), not by its job")
    check(read_run(sgd).state == "running", "job", f"the sgd run ended before the cancel ({epochs} epochs)")

    slurm("cancel", "scancel", job)
    wait_for(f"end of job {job} after scancel", "cancel", lambda: job not in queue(), 60)
    record = read_run(sgd)
    check(record.state == "interrupted" and record.epochs_done < epochs, "cancel",
          f"after scancel the run is {record.state} ({record.reason}), {record.epochs_done}/{epochs} epochs")
    wait_for("completed adam run", "job", lambda: read_run(adam).state == "completed", 300)
    # The cancelled job writes no result, and submitit, with no sacct, never learns it ended: stop it as a user would.
    waiting = sweep.process.poll() is None
    sweep.stop()
    lines = plan(sweep)
    check(lines.get("sgd", ("?",))[0] == "interrupted" and "lock free" in lines["sgd"][1], "plan",
          f"adala-plan says {lines.get('sgd')} for the cancelled run")
    check(lines.get("adam", ("?",))[0] == "completed", "plan", f"adala-plan says {lines.get('adam')} for the adam run")

    sweep.submit()  # the same sweep again
    sweep.wait(300)
    again = sweep.job_of(sgd, "resume", timeout=5)
    resumed = RUN_START.findall(sweep.log(again))
    said = f"{resumed[0][0]} the run at epoch {resumed[0][2] or 0}" if resumed else "never ran the run"
    check(resumed and resumed[0][0] == "resuming" and int(resumed[0][2]) >= record.epochs_done, "resume",
          f"the sweep submitted again {said} ({record.epochs_done} epochs were done)")
    check(any("is already completed; nothing to do" in sweep.log(other) for other in sweep.new_jobs()), "resume",
          "the adam run, completed before, was not skipped")
    lines = plan(sweep)
    check({optimizer: state for optimizer, (state, _) in lines.items()} == {"sgd": "completed", "adam": "completed"},
          "plan", f"adala-plan says {lines} after the second submission")
    print(f"\ncancel: {epochs} epochs; cancelled at {record.epochs_done}, resumed at {resumed[0][2]}; the first "
          f"submission was {'still waiting for the cancelled job' if waiting else 'done'} when stopped")
