"""Run directories -> one long DataFrame, one row per run and logged epoch.

Identity (task, optimizer, hparams, seed) comes from the directory path the store names deterministically; the
state (in records.py's one vocabulary), its reason and the run's profile come from records.read_run, and the rest
of config.yaml is read only for tasks the catalog does not know. A run that has logged no epoch yet keeps one row
with NaN metrics, so that it still counts as unfinished. `profile` is the run's own profile (paper, fast, smoke),
`fast` also for a run with any speed switch on (its tag says so), so that the report never mixes them.

metrics.jsonl of thousands of runs is parsed in bulk: flat JSON objects become CSV by a byte translation
({ -> space, } -> newline, : -> comma), which pandas' C reader parses into alternating key and value columns
(batches of runs on two threads: the reader releases the GIL). A file that does not look like flat,
one-object-per-line JSON with numeric values takes the slow path, json per line.
"""
from __future__ import annotations

import io
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from adala_bench.catalog import TASKS
from adala_bench.config import is_fast_tag
from adala_bench.records import RunRecord, read_run
from adala_bench.store import METRICS_FILE as METRICS
from adala_bench.store import SEED_PREFIX

RUN_COLUMNS = ["run", "task", "family", "model", "optimizer", "hparams", "profile", "seed", "state", "reason",
               "run_dir"]
PAPER = "paper"
LEADING_METRICS = ["epoch", "grad_evals", "wall_s", "lr"]
INTEGER_METRICS = ("epoch", "grad_evals")

_JSON_TO_CSV = bytes.maketrans(b"{}:", b" \n,")
# Every logged float read back exactly: pandas 2's C parser may land one ulp off unless asked for round-trip
# parsing; pandas 3 parses exactly by default and deprecates the option.
_EXACT_FLOATS = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
_BATCH_RUNS = 500
_THREADS = min(2, os.cpu_count() or 1)


@dataclass(frozen=True)
class RunPath:
    task: str
    optimizer: str
    hparams: str
    seed: int
    path: str


@dataclass
class _Records:
    """Rows of some runs: owners[i] is the run of row i; each field is (key codes, key names, values), code -1
    where a row lacks that field."""

    owners: np.ndarray
    fields: list[tuple[np.ndarray, list[str], np.ndarray]]


def find_run_dirs(runs_dir: Path) -> list[RunPath]:
    """Every <task>/<optimizer>/<hparams>/seed=<n> directory, sorted by task, optimizer, hparams, seed."""
    found = []
    for task in _subdirs(runs_dir):
        for optimizer in _subdirs(task.path):
            for hparams in _subdirs(optimizer.path):
                for seed in _subdirs(hparams.path):
                    number = seed.name[len(SEED_PREFIX):]
                    if seed.name.startswith(SEED_PREFIX) and number.lstrip("-").isdigit():
                        found.append(RunPath(task.name, optimizer.name, hparams.name, int(number), seed.path))
    return sorted(found, key=lambda r: (r.task, r.optimizer, r.hparams, r.seed))


def load_runs(runs_dir: Path | str) -> pd.DataFrame:
    """The long frame: RUN_COLUMNS, then epoch, grad_evals, wall_s, lr and every other logged metric."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"runs directory {str(root)!r} does not exist")
    return load_run_paths(find_run_dirs(root))


def load_run_paths(runs: list[RunPath]) -> pd.DataFrame:
    """The long frame of these run directories (load_runs: of every run under a root)."""
    records = [read_run(r.path) for r in runs]
    status = [(record.state, record.reason) for record in records]
    run_of_row, metrics, corrupt = _read_metrics([r.path for r in runs])
    for i, message in corrupt.items():
        status[i] = ("unreadable", message)

    family, model = zip(*(_family_and_model(r, record) for r, record in zip(runs, records))) if runs else ((), ())
    per_run = {
        "task": [r.task for r in runs],
        "family": family,
        "model": model,
        "optimizer": [r.optimizer for r in runs],
        "hparams": [r.hparams for r in runs],
        "profile": [run_profile(r, record) for r, record in zip(runs, records)],
        "state": [s for s, _ in status],
        "reason": [m for _, m in status],
        "run_dir": [r.path for r in runs],
    }
    columns: dict[str, object] = {"run": run_of_row}
    for name in RUN_COLUMNS[1:]:
        if name == "seed":
            columns["seed"] = np.array([r.seed for r in runs], dtype=np.int64)[run_of_row]
        else:
            columns[name] = _repeat_categorical(per_run[name], run_of_row)
    return _epochs_in_order(pd.concat([pd.DataFrame(columns), metrics], axis=1))


def _subdirs(path) -> list[os.DirEntry]:
    with os.scandir(path) as entries:
        return [e for e in entries if e.is_dir() and not e.name.startswith(".")]


def _repeat_categorical(values, run_of_row: np.ndarray) -> pd.Categorical:
    codes, categories = pd.factorize(pd.Series(list(values), dtype=object), sort=True)
    return pd.Categorical.from_codes(codes[run_of_row], categories=pd.Index(categories, dtype=object))


def run_profile(run: RunPath, record: RunRecord) -> str:
    """The profile the run was trained under (its config's `profile:`; paper where none is recorded), and `fast`
    for a paper-profile run with any speed switch on."""
    profile = record.profile or PAPER
    return "fast" if profile == PAPER and is_fast_tag(run.hparams) else profile


def _family_and_model(run: RunPath, record: RunRecord) -> tuple[str | None, str | None]:
    """From the catalog; for tasks it does not know, from config.yaml (task.family, task.model)."""
    known = TASKS.get(run.task)
    if known is not None:
        return known.family.name, known.model
    task = (record.config or {}).get("task")
    if not isinstance(task, dict):
        return None, None
    return task.get("family"), task.get("model")


def _epochs_in_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort each run's rows by epoch and keep the last record of an epoch logged twice (a resumed run)."""
    if "epoch" not in frame:
        return frame
    run, epoch = frame["run"].to_numpy(), frame["epoch"].to_numpy(dtype=float)
    same_run = run[1:] == run[:-1]
    if not np.any(same_run & ~(epoch[1:] > epoch[:-1])):
        return frame
    frame = frame.iloc[np.lexsort((np.arange(len(frame)), epoch, run))]
    return frame[~frame.duplicated(["run", "epoch"], keep="last")].reset_index(drop=True)


# --- metrics.jsonl -------------------------------------------------------------------------------------------

def _read_metrics(paths: list[str]) -> tuple[np.ndarray, pd.DataFrame, dict[int, str]]:
    """All runs' records ordered by run: (run index of each row, metrics frame, {run index: why corrupt}).
    A run without any record gets one row of NaN."""
    indexed = list(enumerate(paths))
    batches = [indexed[i:i + _BATCH_RUNS] for i in range(0, len(indexed), _BATCH_RUNS)]
    with ThreadPoolExecutor(_THREADS) as pool:
        read = list(pool.map(_read_batch, batches))
    parts = [records for records, _ in read if records is not None]
    corrupt = {}
    for _, slow in read:
        for i, text in slow:
            try:
                parts.append(_records_of_json(i, text))
            except ValueError as error:
                corrupt[i] = f"{METRICS}: {error}"
    seen = np.zeros(len(paths), dtype=bool)
    for part in parts:
        seen[part.owners] = True
    parts.append(_Records(np.flatnonzero(~seen), []))
    owners, metrics = _assemble(parts)
    return owners, metrics, corrupt


def _read_batch(batch: list[tuple[int, str]]) -> tuple[_Records | None, list[tuple[int, bytes]]]:
    """Read a batch of runs' metrics files and parse the flat ones together; the rest is returned as text."""
    flat: list[tuple[int, bytes, int]] = []
    slow: list[tuple[int, bytes]] = []
    fields = 0
    for i, path in batch:
        try:
            with open(os.path.join(path, METRICS), "rb") as f:
                text = _complete_lines(f.read())
        except FileNotFoundError:
            continue
        lines = text.count(b"\n")
        # One object per line, nothing nested. Lines may differ in their keys (fid only at the end): the
        # widest of the first and last line sets the column count, a wider line elsewhere fails the parse.
        if lines and text.count(b"{") == lines:
            last = text[text.rfind(b"\n", 0, -1) + 1:]
            fields = max(fields, text[: text.index(b"\n")].count(b":"), last.count(b":"))
            flat.append((i, text, lines))
        elif lines:
            slow.append((i, text))
    if not flat:
        return None, slow
    owners = np.repeat([i for i, _, _ in flat], [n for _, _, n in flat])
    try:
        return _Records(owners, _parse_flat(b"".join(t for _, t, _ in flat), fields, len(owners))), slow
    except (ValueError, pd.errors.ParserError):
        return None, slow + [(i, t) for i, t, _ in flat]


def _complete_lines(text: bytes) -> bytes:
    """Drop a partially written last line (a run still writing); end the text with a newline."""
    if not text or text.endswith(b"\n"):
        return text
    cut = text.rfind(b"\n") + 1
    try:
        json.loads(text[cut:])
    except ValueError:
        return text[:cut]
    return text + b"\n"


def _parse_flat(blob: bytes, fields: int, lines: int) -> list[tuple[np.ndarray, list[str], np.ndarray]]:
    """Flat JSON lines with numeric values -> per field position (key codes, key names, values).
    Raises ValueError (or pandas' ParserError) for anything else, so the caller can take the slow path."""
    table = pd.read_csv(
        io.BytesIO(blob.translate(_JSON_TO_CSV)),
        header=None,
        names=range(2 * fields),
        skipinitialspace=True,
        dtype={2 * j: "category" for j in range(fields)},
        **_EXACT_FLOATS,
    )
    if len(table) != lines:
        raise ValueError(f"parsed {len(table)} rows from {lines} lines")
    parsed = []
    for j in range(fields):
        keys, values = table[2 * j], table[2 * j + 1]
        if not (pd.api.types.is_numeric_dtype(values) or values.isna().all()):
            raise ValueError(f"non-numeric values in field {j}")
        parsed.append((
            keys.cat.codes.to_numpy(),
            [str(k) for k in keys.cat.categories],
            values.to_numpy(dtype=float, na_value=np.nan),
        ))
    return parsed


def _records_of_json(run: int, text: bytes) -> _Records:
    """The slow path: json per line; values that are not numbers are dropped."""
    records = []
    for number, line in enumerate(text.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise ValueError(f"line {number} is not JSON") from None
        if not isinstance(record, dict):
            raise ValueError(f"line {number} is not a JSON object")
        records.append({k: v for k, v in record.items() if v is None or isinstance(v, (int, float))})
    table = pd.DataFrame.from_records(records)
    fields = [(np.zeros(len(table), dtype=np.int8), [str(key)], table[key].to_numpy(dtype=float, na_value=np.nan))
              for key in table]
    return _Records(np.full(len(table), run), fields)


def _assemble(parts: list[_Records]) -> tuple[np.ndarray, pd.DataFrame]:
    """All parts' rows in one float matrix ordered by run (stable), NaN where a row lacks a key (the leading
    metrics are always there); epoch and grad_evals become integer columns when no row lacks them."""
    owners = np.concatenate([p.owners for p in parts]).astype(np.int64)
    order = np.argsort(owners, kind="stable")
    destination = np.empty(len(owners), dtype=np.int64)
    destination[order] = np.arange(len(owners))
    names = {k for p in parts for _, keys, _ in p.fields for k in keys}
    names = LEADING_METRICS + sorted(names - set(LEADING_METRICS))
    column = {name: i for i, name in enumerate(names)}
    matrix = np.full((len(names), len(owners)), np.nan)
    start = 0
    for part in parts:
        rows = destination[start:start + len(part.owners)]
        start += len(part.owners)
        for codes, keys, values in part.fields:
            present = codes >= 0
            matrix[np.array([column[k] for k in keys])[codes[present]], rows[present]] = values[present]
    integers = {name: matrix[column[name]].astype(np.int64) for name in INTEGER_METRICS
                if name in column and len(owners) and not np.isnan(matrix[column[name]]).any()}
    floats = [name for name in names if name not in integers]
    # The integer candidates lead `names`, so the float rows are usually a slice: a view, not a copy.
    block = matrix[len(integers):] if floats == names[len(integers):] else matrix[[column[n] for n in floats]]
    metrics = pd.concat([pd.DataFrame(integers), pd.DataFrame(block.T, columns=floats, copy=False)], axis=1)
    return owners[order], metrics


def optimizer_config(run_dirs) -> dict:
    """The optimizer section of the first run's config.yaml that has one (values as YAML typed them: an lr written
    30 stays the int 30, 0.00030000000000000003 the float it was); {} where none has."""
    for run_dir in run_dirs:
        optimizer = (read_run(run_dir).config or {}).get("optimizer")
        if isinstance(optimizer, dict):
            return optimizer
    return {}


def config_number(value) -> float:
    """A hyperparameter of optimizer_config as a float; NaN where it is absent or not a number."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
