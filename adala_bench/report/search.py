"""The lr search (conf/experiment/search_*.yaml): per (task, optimizer), which of the searched lrs each rule picks.

A cell is (task, optimizer); its candidates are the hparams tags of its runs (in a search made with lr_scale, one tag
per lr; in search_ptb_eps, one per (lr, eps) pair, and then the choice and its override line carry eps too). For
every tag the mean over its completed seeds of

    clean:  the best validation value over epochs (max val_acc / min val_ppl; the family's val_metric and direction
            from the catalog), so no choice looks at the test set;
    paper:  the best test value over epochs (select.run_values with the paper rule), as the reference selected it.

Each rule picks the tag with the best mean (ties: the smaller lr, then the tag). A tag with a diverged run is never
picked. The lr of a tag is read from one of its runs' config.yaml (optimizer.lr, the exact value the run used); the
as-run lr beside it is what the shipped conf/ gives the (task, optimizer) (conf/hparams/, the tables' values), and
every lr is shown as a multiple of it. A custom optimizer has no as-run lr.
Cells without validation values (CIFAR-10 trained with data.val_size=0) are flagged, never guessed.

    search_table       the long frame -> one row per cell (search.csv)
search_output.py writes it: search.md, search.csv and the --emit-best file.
"""
from __future__ import annotations

import math

import pandas as pd

from adala_bench.catalog import FAMILIES, TASKS, optimizer_rows
from adala_bench.overrides import hydra_value
from adala_bench.config import CUSTOM
from adala_bench.records import DONE_STATES, read_run
from .format import count, number
from .load import config_number, optimizer_config
from .select import best_validation, check_rule, run_values

SEARCH_COLUMNS = [
    "task", "model", "optimizer", "metric", "val_metric", "n_tags", "lrs", "as_run_lr",
    "eps_searched", "clean_lr", "clean_eps", "clean_ratio", "clean_val", "clean_n", "clean_hparams",
    "paper_lr", "paper_eps", "paper_ratio", "paper_test", "paper_n", "paper_hparams",
    "agree", "flags", "rule", "line",
]
TAG_COLUMNS = ["task", "optimizer", "hparams", "lr", "eps", "ratio", "runs", "completed", "diverged", "unfinished",
               "val", "val_n", "test", "test_n", "picked_by"]
_NOT_CUSTOM_HPARAMS = ("name", "lr", "_target_")
SEARCHED = ("lr", "eps")  # what a search may vary; tags differing in anything else are flagged



def search_table(frame: pd.DataFrame, rule: str = "clean") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cells, tags): one row per searched (task, optimizer) in catalog and paper row order (SEARCH_COLUMNS), and
    one row per tag of each (TAG_COLUMNS). `rule` decides which choice `line` (the adala-train overrides) holds."""
    check_rule(rule)
    runs = _run_table(frame)
    as_run = as_run_lrs(runs[["task", "optimizer"]].drop_duplicates().itertuples(index=False))
    cells, tags = [], []
    for task in [t for t in TASKS if t in set(runs["task"])]:
        family = TASKS[task].family
        in_task = runs[runs["task"] == task]
        for optimizer in optimizer_rows(in_task["optimizer"].unique()):
            members = in_task[in_task["optimizer"] == optimizer]
            if members.empty:
                continue
            cell, cell_tags = _cell(task, optimizer, family, members, rule, as_run.get((task, optimizer), math.nan))
            cells.append(cell)
            tags.append(cell_tags)
    tag_frame = pd.concat(tags, ignore_index=True) if tags else pd.DataFrame(columns=TAG_COLUMNS)
    return pd.DataFrame(cells, columns=SEARCH_COLUMNS), tag_frame[TAG_COLUMNS]


def _run_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run of a family with a validation metric: identity, state, `test` (best test value over epochs,
    the paper rule) and `val` (best validation value over epochs, NaN where none was logged)."""
    runs = run_values(frame, "paper").rename(columns={"value": "test"})
    for column in ("task", "optimizer", "hparams", "state", "run_dir"):
        runs[column] = runs[column].astype(object)
    family_of = runs["task"].map(lambda t: TASKS[t].family.name if t in TASKS else None)
    runs["val"] = best_validation(frame, runs)
    searched = {f.name for f in FAMILIES.values() if f.val_metric is not None}
    return runs[family_of.isin(searched)].reset_index(drop=True)


def _cell(task: str, optimizer: str, family, members: pd.DataFrame, rule: str, as_run_lr: float
          ) -> tuple[dict, pd.DataFrame]:
    flags: list[str] = []
    rows = []
    configs = {}
    for tag, runs in members.sort_values("seed").groupby("hparams", sort=True):
        states = runs["state"]
        completed = states == "completed"
        config = optimizer_config(runs["run_dir"].tolist())
        configs[tag] = config
        val = runs.loc[completed, "val"].dropna()
        test = runs.loc[completed, "test"].dropna()
        rows.append({
            "task": task, "optimizer": optimizer, "hparams": tag, "lr": config_number(config.get("lr")),
            "eps": config_number(config.get("eps")),
            "runs": len(runs), "completed": int(completed.sum()), "diverged": int((states == "diverged").sum()),
            "unfinished": int((~states.isin(DONE_STATES)).sum()),
            "val": float(val.mean()) if len(val) else math.nan, "val_n": len(val),
            "test": float(test.mean()) if len(test) else math.nan, "test_n": len(test),
        })
    tags = pd.DataFrame(rows)
    lrs = tags["lr"].dropna()
    tags["ratio"] = tags["lr"] / as_run_lr
    tags = tags.sort_values(["lr", "eps", "hparams"], na_position="last").reset_index(drop=True)
    eps_searched = tags["eps"].nunique() > 1  # search_ptb_eps: the choice is an (lr, eps) pair

    def setting(row) -> str:
        return f"lr {setting_number(row.lr)}" + (f", eps {setting_number(row.eps)}" if eps_searched else "")

    clean = _pick(tags, "val", "val_n", family.higher_is_better)
    paper = _pick(tags, "test", "test_n", family.higher_is_better)
    tags["picked_by"] = [", ".join(name for name, pick in (("clean", clean), ("paper", paper)) if pick == i)
                         for i in range(len(tags))]

    if tags["completed"].sum() and not tags["val_n"].sum():
        how = "train the search with data.val_size=5000" if family.name == "cifar10" else "no val metric logged"
        flags.append(f"no validation metric ({how})")
    elif (no_val := tags[(tags["completed"] > 0) & (tags["val_n"] == 0)]).size:
        flags.append("no validation metric, never picked by clean: "
                     + ", ".join(setting(r) for r in no_val.itertuples()))
    if (missing := tags.loc[tags["lr"].isna(), "hparams"].tolist()):
        flags.append("no optimizer.lr in config.yaml: " + ", ".join(missing))
    if (diverged := tags.loc[tags["diverged"] > 0]).size:
        flags.append("diverged, never picked: " + ", ".join(f"{setting(r)} ({r.diverged} of {r.runs})"
                                                             for r in diverged.itertuples()))
    if (unfinished := int(tags["unfinished"].sum())):
        flags.append(f"{count(unfinished, 'run')} unfinished or failed (the choice may still change)")
    if (shared := tags[tags["lr"].notna() & tags.duplicated(["lr", "eps"], keep=False)]).size:
        flags.append("several tags share " + ", ".join(dict.fromkeys(setting(r) for r in shared.itertuples())))
    if (differing := _differing_keys(configs)):
        flags.append("tags differ in more than lr and eps: " + ", ".join(differing))
    seeds = tags.loc[(tags["diverged"] == 0) & (tags["completed"] > 0), "completed"]
    if seeds.nunique() > 1:
        flags.append("seeds differ between settings: " + ", ".join(str(n) for n in seeds))

    def chosen(pick, column, count):
        if pick is None:
            return math.nan, math.nan, math.nan, math.nan, 0, ""
        row = tags.iloc[pick]
        eps = row["eps"] if eps_searched else math.nan
        return row["lr"], eps, row["ratio"], row[column], int(row[count]), row["hparams"]

    clean_lr, clean_eps, clean_ratio, clean_val, clean_n, clean_tag = chosen(clean, "val", "val_n")
    paper_lr, paper_eps, paper_ratio, paper_test, paper_n, paper_tag = chosen(paper, "test", "test_n")
    agree = "n/a" if clean is None or paper is None else "yes" if clean == paper else "no"
    emitted = clean_tag if rule == "clean" else paper_tag
    cell = {
        "task": task, "model": TASKS[task].model, "optimizer": optimizer, "metric": family.metric,
        "val_metric": family.val_metric, "n_tags": len(tags),
        "lrs": "; ".join(repr(float(x)) for x in sorted(lrs.unique())),
        "as_run_lr": as_run_lr,
        "eps_searched": bool(eps_searched), "clean_lr": clean_lr, "clean_eps": clean_eps, "clean_ratio": clean_ratio, "clean_val": clean_val, "clean_n": clean_n,
        "clean_hparams": clean_tag,
        "paper_lr": paper_lr, "paper_eps": paper_eps, "paper_ratio": paper_ratio, "paper_test": paper_test, "paper_n": paper_n,
        "paper_hparams": paper_tag,
        "agree": agree, "flags": "; ".join(flags), "rule": rule,
        "line": override_line(task, optimizer, configs[emitted], with_eps=bool(eps_searched))
        if emitted and configs[emitted].get("lr") is not None else "",
    }
    return cell, tags


def _pick(tags: pd.DataFrame, column: str, count: str, higher_is_better: bool) -> int | None:
    """Row of the best mean among tags with a value, an lr and no diverged run (ties: smaller lr, then tag)."""
    eligible = tags[(tags[count] > 0) & (tags["diverged"] == 0) & tags["lr"].notna()]
    if eligible.empty:
        return None
    key = -eligible[column] if higher_is_better else eligible[column]
    order = eligible.assign(_key=key).sort_values(["_key", "lr", "eps", "hparams"], kind="stable")
    return int(order.index[0])


def as_run_lrs(pairs) -> dict[tuple[str, str], float]:
    """optimizer.lr as the shipped conf/ composes it for each (task, optimizer) of the paper's ten (custom ones have
    no as-run value)."""
    from adala_bench.catalog import OPTIMIZER_ORDER
    from adala_bench.config import compose

    wanted = [(task, optimizer) for task, optimizer in pairs if task in TASKS and optimizer in OPTIMIZER_ORDER]
    return {(task, optimizer): float(compose(f"task={task}", f"optimizer={optimizer}").optimizer.lr)
            for task, optimizer in wanted}


def _differing_keys(configs: dict[str, dict]) -> list[str]:
    keys = sorted({k for c in configs.values() for k in c} - set(SEARCHED))
    return [f"optimizer.{k}" for k in keys if len({repr(c.get(k)) for c in configs.values()}) > 1]


def setting_number(x: float) -> str:
    """An lr or eps as the search shows it: four significant digits."""
    return number(x, ".4g")


def override_line(task: str, optimizer: str, config: dict, with_eps: bool = False) -> str:
    """`task=T optimizer=O optimizer.lr=LR` (and `optimizer.eps=EPS` where the search varied eps); for a custom
    optimizer (a name with a dot: its import path) `optimizer=custom optimizer._target_=NAME optimizer.lr=LR` and
    `+optimizer.KEY=VALUE` for each other hyperparameter its run had, since there are no as-run values to fall back
    on."""
    lr = f"optimizer.lr={hydra_value(config['lr'])}"
    if "." not in optimizer:
        eps = [f"optimizer.eps={hydra_value(config['eps'])}"] if with_eps and "eps" in config else []
        return " ".join([f"task={task}", f"optimizer={optimizer}", lr, *eps])
    extra = [f"+optimizer.{k}={hydra_value(v)}" for k, v in config.items() if k not in _NOT_CUSTOM_HPARAMS]
    return " ".join([f"task={task}", f"optimizer={CUSTOM}", f"optimizer._target_={optimizer}", lr, *extra])
