"""`adala-sweep`: one `adala-train --multirun` sweep spread over every GPU of the machine.

    adala-sweep -- --multirun +experiment=table2 seed=0,1,2
    adala-sweep --gpus 4 --per-gpu 2 --logs results/sweep-logs/table2 -- +experiment=table2 seed=0,1,2

It starts k = gpus × per-gpu worker processes of `adala-train` (the one beside this Python), worker w with
CUDA_VISIBLE_DEVICES set to GPU w // per-gpu, and every worker runs the SAME sweep. There is no scheduler here:
the run store shares the work out. A worker locks a run directory while it trains it, and a worker that reaches a
run another one holds skips it ("adala-train: skipping: ..."); a run finished by another worker is "already
completed". So every run is trained once, and the sweep can be stopped and started again at any time (finished runs
are skipped, interrupted ones resume from their last checkpoint).

- `--gpus all` (the default) is torch.cuda.device_count() (counted within the caller's CUDA_VISIBLE_DEVICES, whose
  entries the workers then get); with no GPU it runs one worker on CPU and says so.
- `--multirun` is added to the adala-train arguments when they lack it; each worker's Hydra sweep folder is
  `<logs>/worker<w>/` (each job's `adala-train.log` is there), unless `hydra.sweep.dir=` is given (then
  `<that>/worker<w>`).
- Worker w writes stdout and stderr to `<logs>/worker<w>.log` (default logs: results/sweep-logs/<time>), after a
  header naming its CUDA_VISIBLE_DEVICES and command. Workers get OMP_NUM_THREADS = cores // k unless it is set.
- Ctrl-C (SIGINT) or SIGTERM: every worker gets SIGINT (each worker runs in its own session, so it gets it once),
  the runner records its run interrupted, and the next start of the sweep resumes it. A second signal kills them.
- Before starting anything it lists the sweep's runs (sweep_runs.py: the run directories the workers will use), so bad
  overrides stop it in one line. While it runs: `adala-sweep: k/N runs done` each time k changes, read from the run
  store every `--progress-every` seconds (30 by default; records.py, as adala-plan reads it). At the end:
  `adala-sweep: D/N runs done (...)`; the exit status is 0 if every worker exited 0, the first failing worker's
  status otherwise (130/143 after SIGINT/SIGTERM).

Testing on a machine without GPUs: `--simulate-gpus N` (or ADALA_SIMULATE_GPUS=N) counts N GPUs: the workers get
CUDA_VISIBLE_DEVICES as on a real box, but train on CPU (`device=cpu` is appended to their arguments).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from adala_bench.cli import OneLineParser
from adala_bench.config import ConfigError
from adala_bench.overrides import hydra_string, override_args, parse, values
from adala_bench.records import DONE_STATES, last_line, read_run
from adala_bench.sweep_runs import sweep_paths

PROG = "adala-sweep"
SIMULATE_ENV = "ADALA_SIMULATE_GPUS"
DEFAULT_LOGS_ROOT = Path("results") / "sweep-logs"
TRAIN = "adala-train"
MULTIRUN_FLAGS = ("--multirun", "-m")
SWEEP_DIR_KEY = "hydra.sweep.dir"


class SweepError(ValueError):
    """Bad arguments: one line, exit status 2."""


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog=PROG,
        usage=f"{PROG} [--gpus N|all] [--per-gpu K] [--logs DIR] -- <adala-train arguments>",
        description="Run one adala-train --multirun sweep with K workers per GPU; the run store's locks share the "
                    "runs out (every run is trained once).",
        epilog=f"e.g. {PROG} --per-gpu 2 -- --multirun +experiment=table2 seed=0,1,2",
    )
    parser.add_argument("--gpus", default="all", metavar="N|all",
                        help="how many GPUs to use: all (default: torch.cuda.device_count()) or a number")
    parser.add_argument("--per-gpu", type=int, default=1, metavar="K", help="workers per GPU (default 1)")
    parser.add_argument("--logs", type=Path, default=None, metavar="DIR",
                        help="where worker<w>.log go (default results/sweep-logs/<time>)")
    parser.add_argument("--progress-every", type=float, default=30.0, metavar="SECONDS",
                        help="how often to read the run store for the k/N runs done line (default 30)")
    parser.add_argument("--simulate-gpus", type=int, default=None, help=argparse.SUPPRESS)
    return parser


@dataclass
class Launch:
    gpus: list[str]  # CUDA_VISIBLE_DEVICES value of each GPU used; empty: CPU only
    per_gpu: int
    simulated: bool
    train_args: list[str]
    logs: Path
    runs: list[Path] = field(default_factory=list)  # the sweep's run directories (where progress is read)
    cpu_asked: bool = False  # --gpus 0 (rather than no GPU found)
    progress_every: float = 30.0  # seconds between the run-store reads of the progress line

    @property
    def workers(self) -> int:
        return max(1, len(self.gpus) * self.per_gpu)

    def gpu_of(self, worker: int) -> str | None:
        return self.gpus[worker // self.per_gpu] if self.gpus else None


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """adala-sweep's own options, and the adala-train arguments after `--`."""
    cut = argv.index("--") if "--" in argv else len(argv)
    return argv[:cut], argv[cut + 1:]


EXAMPLE = f"e.g. {PROG} -- --multirun +experiment=table2 seed=0,1,2"


def simulated_count(option: int | None) -> int | None:
    if option is not None:
        value, name = option, "--simulate-gpus"
    elif os.environ.get(SIMULATE_ENV, "").strip():
        raw, name = os.environ[SIMULATE_ENV].strip(), SIMULATE_ENV
        if not raw.isdigit():
            raise SweepError(f"{SIMULATE_ENV}={raw!r} is not allowed; it must be an integer ≥ 0")
        value = int(raw)
    else:
        return None
    if value < 0:
        raise SweepError(f"{name} {value} is not allowed; it must be an integer ≥ 0")
    return value


def visible_gpus(count: int, simulated: bool) -> list[str]:
    """The CUDA_VISIBLE_DEVICES value of GPU 0..count-1: the caller's own list where it has one."""
    outer = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    ids = [part.strip() for part in outer.split(",") if part.strip()] if outer and not simulated else []
    return [ids[i] if i < len(ids) else str(i) for i in range(count)]


def device_count() -> int:
    import torch  # only here: the rest of adala-sweep needs no torch

    return torch.cuda.device_count()


def check_no_hidden_gpu() -> None:
    """No GPU for torch: stop in one line if nvidia-smi lists one (the workers would train on the CPU, silently)."""
    from adala_bench.devices import hidden_gpu

    if (hidden := hidden_gpu()) is not None:
        raise SweepError(hidden)


def trains_on_cpu(parsed) -> bool:
    return any(override.key_or_group == "device" and values(override) == ["cpu"] for override in parsed)


def make_launch(argv: list[str]) -> Launch:
    own, train_args = split_argv(argv)
    args = build_parser().parse_args(own)  # first, so that --help works alone
    if "--" not in argv:
        raise SweepError(f"give the adala-train arguments after --, {EXAMPLE}")
    if not train_args:
        raise SweepError(f"no adala-train arguments after --; {EXAMPLE}")
    if not args.progress_every > 0:
        raise SweepError(f"--progress-every {args.progress_every:g} is not allowed; it must be a number of seconds > 0")
    if args.per_gpu < 1:
        raise SweepError(f"--per-gpu {args.per_gpu} is not allowed; it must be an integer ≥ 1")
    simulate = simulated_count(args.simulate_gpus)
    available = simulate
    if args.gpus == "all":
        gpus = available if available is not None else device_count()
    else:
        if not args.gpus.isdigit():
            raise SweepError(f"--gpus {args.gpus!r} is not allowed; give a number ≥ 0 or all")
        gpus = int(args.gpus)
        available = available if available is not None else (device_count() if gpus else 0)
        if gpus > available:
            raise SweepError(f"--gpus {gpus} asked for, but {available} GPU(s) found; give at most {available} or all")

    train_args = list(train_args)
    if not any(arg in MULTIRUN_FLAGS for arg in train_args):
        train_args.insert(0, "--multirun")
    overrides = override_args(train_args)
    try:
        parsed = parse(overrides)
        if gpus and simulate is None:
            for override in parsed:
                if override.key_or_group == "device" and any(re.fullmatch(r"cuda:[1-9]\d*", d) for d in values(override)):
                    raise SweepError(f"{override.input_line} names a GPU a worker cannot see (each sees its own GPU as "
                                     "cuda:0); use device=auto or device=cuda")
        runs = sweep_paths(overrides)
    except ConfigError as error:
        raise SweepError(str(error)) from None
    if args.gpus == "all" and not gpus and simulate is None and not trains_on_cpu(parsed):
        check_no_hidden_gpu()  # before a CPU worker starts on a GPU box
    if simulate is not None:
        train_args.append("device=cpu")  # the last override wins: simulated GPUs train on CPU
    logs = args.logs if args.logs is not None else new_logs_dir()
    return Launch(visible_gpus(gpus, simulate is not None), args.per_gpu, simulate is not None, train_args, logs,
                runs=runs, cpu_asked=args.gpus != "all" and gpus == 0, progress_every=args.progress_every)


def new_logs_dir() -> Path:
    stamp = _dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    path, n = DEFAULT_LOGS_ROOT / stamp, 1
    while path.exists():  # two sweeps started in the same second
        n += 1
        path = DEFAULT_LOGS_ROOT / f"{stamp}_{n}"
    return path


def worker_args(launch: Launch, worker: int) -> list[str]:
    """The sweep's arguments with this worker's own Hydra sweep folder (workers started in the same second would
    otherwise share outputs/multirun/<time>/ and write into each other's job folders)."""
    args, own = [], None
    overrides = set(override_args(launch.train_args))
    for arg in launch.train_args:
        if arg in overrides:
            (override,) = parse([arg])
            if override.key_or_group == SWEEP_DIR_KEY:
                own = f"{override.value()}/worker{worker}"
                continue
        args.append(arg)
    folder = own if own is not None else str(launch.logs / f"worker{worker}")
    return [*args, f"{SWEEP_DIR_KEY}={hydra_string(folder)}"]


def worker_env(launch: Launch, worker: int) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # lines reach the log as they are printed, in order
    gpu = launch.gpu_of(worker)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    if "OMP_NUM_THREADS" not in os.environ:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        env["OMP_NUM_THREADS"] = str(max(1, cores // launch.workers))
    return env


@dataclass
class Worker:
    index: int
    process: subprocess.Popen
    log: Path


@dataclass
class Tally:
    """The sweep's runs as the run store has them: done (completed or diverged) now, and before the sweep began."""

    runs: list[Path]
    done_before: set[Path] = field(default_factory=set)
    states: dict[Path, str] = field(default_factory=dict)

    @classmethod
    def start(cls, runs: list[Path]) -> "Tally":
        tally = cls(runs)
        tally.read()
        tally.done_before = tally.done
        return tally

    def read(self) -> "Tally":
        self.states = {path: read_run(path).state for path in self.runs}
        return self

    @property
    def done(self) -> set[Path]:
        return {path for path, state in self.states.items() if state in DONE_STATES}

    def progress(self) -> str:
        return f"{PROG}: {len(self.done)}/{len(self.runs)} runs done"

    def summary(self) -> str:
        new = self.done - self.done_before
        completed = sum(self.states[path] == "completed" for path in new)
        text = (f"{self.progress()} ({completed} completed, {len(new) - completed} diverged in this sweep, "
                f"{len(self.done_before)} finished before it)")
        if left := len(self.runs) - len(self.done):
            text += f"; {left} left: start the same sweep again to resume them"
        return text


def exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode  # killed by signal s: 128 + s, as a shell says


class Stopper:
    """SIGINT/SIGTERM to adala-sweep: SIGINT to every worker (a clean stop; the runs resume later); again: SIGKILL."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.workers: list[Worker] = []
        self.signum: int | None = None
        self.signalled: set[int] = set()
        self.previous = {}

    def __enter__(self) -> "Stopper":
        for signum in self.SIGNALS:
            self.previous[signum] = signal.signal(signum, self.handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def handle(self, signum: int, frame) -> None:
        again = self.signum is not None
        self.signum = self.signum or signum
        live = [worker for worker in self.workers if worker.process.poll() is None]
        name = signal.Signals(signum).name
        if again:
            print(f"{PROG}: got {name} again; killing {len(live)} worker(s)", file=sys.stderr, flush=True)
        else:
            print(f"{PROG}: got {name}; stopping {len(live)} worker(s) (their runs resume when the sweep is started "
                  "again; send it again to kill them)", file=sys.stderr, flush=True)
        for worker in live:
            self.send(worker, signal.SIGKILL if again else signal.SIGINT)

    def send(self, worker: Worker, signum: int) -> None:
        self.signalled.add(worker.index)
        try:
            worker.process.send_signal(signum)
        except ProcessLookupError:
            pass

    def catch_up(self) -> None:
        """A worker started while the signal was being handled gets it too."""
        if self.signum is not None:
            for worker in self.workers:
                if worker.index not in self.signalled and worker.process.poll() is None:
                    self.send(worker, signal.SIGINT)


def start_worker(launch: Launch, index: int, executable: Path) -> Worker:
    log = launch.logs / f"worker{index}.log"
    command = [str(executable), *worker_args(launch, index)]
    env = worker_env(launch, index)
    gpu = launch.gpu_of(index)
    where = ("CPU only (no GPU)" if gpu is None else
             f"CUDA_VISIBLE_DEVICES={gpu}" + (" (simulated GPU; training on CPU)" if launch.simulated else ""))
    with open(log, "w") as handle:
        handle.write(f"# {PROG} worker {index} of {launch.workers}: {where}\n")
        handle.write(f"# OMP_NUM_THREADS={env.get('OMP_NUM_THREADS', '')}\n")
        handle.write(f"# command: {subprocess.list2cmdline(command)}\n")
        handle.flush()
        # Its own session: a terminal's Ctrl-C reaches adala-sweep alone, which passes it on once (Stopper).
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                                   env=env, start_new_session=True)
    return Worker(index, process, log)


def run(launch: Launch) -> int:
    executable = Path(sys.executable).parent / TRAIN
    if not executable.exists():
        raise SweepError(f"{executable} not found; install the package (make install)")
    try:
        launch.logs.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SweepError(f"--logs {str(launch.logs)!r} cannot be created ({error.strerror})") from None
    if not launch.gpus:
        print(f"{PROG}: {'--gpus 0' if launch.cpu_asked else 'no GPU found'}: running one worker on CPU"
              + (" (--per-gpu counts workers per GPU)" if launch.per_gpu > 1 else ""), flush=True)
    workers: list[Worker] = []
    tally = Tally.start(launch.runs)
    with Stopper() as stopper:
        stopper.workers = workers
        for index in range(launch.workers):
            if stopper.signum is not None:
                break
            worker = start_worker(launch, index, executable)
            workers.append(worker)
            gpu = launch.gpu_of(index)
            on = "CPU" if gpu is None else f"GPU {gpu}" + (" (simulated)" if launch.simulated else "")
            print(f"{PROG}: worker {index} on {on}: pid {worker.process.pid}, log {worker.log}", flush=True)
        stopper.catch_up()
        shown = ""
        while live := [worker for worker in workers if worker.process.poll() is None]:
            try:  # returns as soon as this worker ends; a signal runs Stopper.handle and the wait goes on
                live[0].process.wait(timeout=launch.progress_every)
            except subprocess.TimeoutExpired:
                pass
            line = tally.read().progress()
            if line != shown and stopper.signum is None:
                print(line, flush=True)
                shown = line

    tally.read()
    failed = [worker for worker in workers if worker.process.returncode != 0]
    for worker in failed:
        print(f"{PROG}: worker {worker.index} exited with status {exit_status(worker.process.returncode)} "
              f"({worker.log}): {last_line(worker.log) or ''}", file=sys.stderr)
    print(tally.summary() + f"; logs in {launch.logs}", flush=True)
    if stopper.signum is not None:
        return 128 + stopper.signum
    return exit_status(failed[0].process.returncode) if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        return run(make_launch(argv))
    except SweepError as error:
        parser.error(str(error))


if __name__ == "__main__":
    sys.exit(main())
