"""The tests' helpers, in one place (fixtures are in conftest.py): configs and run directories as adala-train makes
them, bit-for-bit comparisons, and a run-directory writer for report fixtures that goes through the store itself."""

from __future__ import annotations

from pathlib import Path
from html.parser import HTMLParser
from typing import Iterable, Mapping

import torch
from omegaconf import OmegaConf
from torch import nn

from adala_bench import trainer as trainer_module
from adala_bench.config import RunConfig, compose
from adala_bench.store import RunDir, layout_path
from adala_bench.trainer import Loss, Move, Player

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"

__all__ = ["BIN", "PTB_URL", "REPO", "TINY_PTB", "TINY_PTB_TOKENS", "assert_same", "assert_trajectories_close",
           "compose", "emitted_lines", "final_state", "fresh_copy", "interrupt_at", "make_tiny_ptb_official",
           "metrics_without_time", "parse_html", "ptb_how", "read_search", "reference_activations", "reference_pngs",
           "reference_statistics", "Relay", "run_dir_of", "run_path", "run_plain", "section_commands",
           "serve_download", "tar_bytes", "tiny_ptb_archive", "write_run", "write_tuning_run"]


def run_path(cfg) -> Path:
    """The run directory adala-train uses for this composed config."""
    return RunConfig.of(cfg).path


def run_dir_of(cfg) -> RunDir:
    return RunDir(run_path(cfg))


def metrics_without_time(run: RunDir) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "wall_s"} for row in run.read_metrics()]


def interrupt_at(monkeypatch, epoch: int, error: type[BaseException] = KeyboardInterrupt) -> None:
    """Make the trainer raise `error` (KeyboardInterrupt: as Ctrl-C would) when it starts `epoch`."""
    original = trainer_module.Trainer.train_epoch

    def train_epoch(self, progress):
        if progress.epoch == epoch:
            raise error
        return original(self, progress)

    monkeypatch.setattr(trainer_module.Trainer, "train_epoch", train_epoch)


def final_state(trainer, progress):
    """The trainer's checkpoint state without what legitimately differs between two equal runs (wall times, RNG)."""
    state = trainer.state_dict(progress)
    state["progress"].pop("wall_s")
    for row in state["progress"]["metrics"]:
        row.pop("wall_s")
    state.pop("rng")
    return state


def assert_same(a, b, where=""):
    """Nested dicts/lists of tensors and values are equal, bit for bit; `where` names the first difference."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}/{i}")
    else:
        assert a == b, where


def read_search(out: Path):
    """search.csv of an lr search report, by (task, optimizer), text columns as text."""
    import pandas as pd

    text = ["flags", "clean_hparams", "paper_hparams", "line"]
    cells = pd.read_csv(out / "search.csv", keep_default_na=False, na_values=[""], dtype={c: object for c in text})
    return cells.fillna({c: "" for c in text}).set_index(["task", "optimizer"])


def emitted_lines(path: Path) -> list[str]:
    """The override lines of an --emit-best file (its comment lines left out)."""
    return [line for line in path.read_text().splitlines() if not line.startswith("#")]


def section_commands(heading: str) -> list[str]:
    """The lines of the first ```bash block under a README heading (a trailing `  # comment` left out)."""
    import re

    text = (REPO / "README.md").read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)[1]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def fresh_copy(tmp_path: Path) -> Path:
    """The tracked files of this checkout, as a fresh clone has them, beside this checkout's virtual environment."""
    import shutil
    import subprocess

    clone = tmp_path / "clone"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout
    for name in filter(None, files.split("\0")):
        source = REPO / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    (clone / ".venv").symlink_to(REPO / ".venv")
    return clone


def write_run(
    runs_dir: Path,
    task: str,
    optimizer: str,
    hparams: str,
    seed: int,
    epochs: Iterable[Mapping[str, float]],
    *,
    state: str = "completed",
    reason: str | None = None,
    family: str | None = None,
    model: str | None = None,
    diverged_at: Mapping[str, int] | None = None,
    profile: str = "paper",
    config: Mapping | None = None,
) -> Path:
    """Write one run directory through the store; `epochs` are the metrics.jsonl records in order; `config`: top-level
    sections of config.yaml to add or replace (an optimizer's values, a tuning run's `tuning` record)."""
    records = list(epochs)
    run = RunDir(layout_path(runs_dir, task, optimizer, hparams, seed))
    run.path.mkdir(parents=True, exist_ok=True)
    written = {
        "task": {"name": task, "family": family, "model": model},
        "optimizer": {"name": optimizer},
        "seed": seed,
        "epochs": len(records),
        "profile": profile,
        **(config or {}),
    }
    run.write_config(OmegaConf.create(written))
    run.write_metrics(records)
    extra = {"diverged_at": dict(diverged_at)} if diverged_at is not None else {}
    run.write_status(state, reason=reason, epochs_done=len(records), device="cpu", **extra)
    return run.path


def write_tuning_run(runs_dir: Path, task: str, optimizer: str, hparams: str, seed: int,
                     epochs: Iterable[Mapping[str, float]], *, trial: int | None = None, state: str = "completed",
                     hparam_values: Mapping | None = None) -> Path:
    """A run of a tuning sweep (trial given) or of the defaults track (no trial), as config.yaml records it: the
    `tuning` block and the optimizer's values (`hparam_values`, default lr 1e-3)."""
    records = list(epochs)
    tuning = {"track": "tuned", "trial": trial} if trial is not None else {"track": "defaults"}
    values = {"name": optimizer, **(hparam_values or {"lr": 1e-3})}
    return write_run(runs_dir, task, optimizer, hparams, seed, records, state=state, profile="smoke",
                     diverged_at={"epoch": len(records), "step": 3} if state == "diverged" else None,
                     config={"optimizer": values, "tuning": tuning})


class Relay:
    """Two players over a carried state h, in the shapes of PTB and a GAN together.

    "a" (Linear, BatchNorm, Dropout) maps a batch and the incoming h to the outgoing h; "b" (Linear) reads h through
    "a", so b's look-ahead runs a's BatchNorm too. "a" steps on every batch, "b" on every other one; with
    `switch`, the plateau rule fires after epoch 0 (and only then). The batch stream depends only on (seed, epoch).
    """

    def __init__(self, seed: int, *, switch: bool = False, batches: int = 5):
        torch.manual_seed(seed)
        self.a = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.2))
        self.b = nn.Linear(4, 1)
        self.players = {"a": Player(self.a), "b": Player(self.b)}
        self.seed, self.switch, self.n = seed, switch, batches
        self.seen: list[tuple[str, torch.Tensor]] = []  # (player, b's weight) at every loss evaluation

    def train_batches(self, epoch: int):
        generator = torch.Generator().manual_seed(1000 * self.seed + epoch)
        return [torch.randn(8, 4, generator=generator) for _ in range(self.n)]

    def moves(self, batches, index):
        following = batches[(index + 1) % len(batches)]
        moves = [Move("a", batches[index], following, lr_factor=1.0 + index / 10)]
        if index % 2 == 0:
            moves.append(Move("b", batches[index], following))
        return moves

    def initial_carry(self):
        return torch.zeros(8, 4)

    def loss(self, player, batch, carry):
        self.seen.append((player, self.b.weight.detach().clone()))
        h = torch.tanh(self.a(batch) + carry)
        if player == "a":
            value = (h - 0.5).pow(2).mean() + 0.1 * self.b(h).pow(2).mean()
            return Loss(value, {"loss_a": value.detach()}, carry=h)
        value = (self.b(h) - 1).pow(2).mean()
        return Loss(value, {"loss_b": value.detach()}, carry=carry)

    def summarize_train(self, sums):
        return {"train_loss": sums["loss_a"].item() / self.n, "loss_b": sums["loss_b"].item()}

    @torch.no_grad()
    def evaluate(self, epoch):
        self.a.eval()
        x = torch.linspace(-1, 1, 32).reshape(8, 4)
        return {"test_loss": float((self.b(torch.tanh(self.a(x))) - 1).pow(2).mean())}

    def plateau(self, rows):
        return self.switch and len(rows) == 1


def run_plain(optimizer_factory, theta0: list[torch.Tensor], grads: list[list[torch.Tensor]]):
    """An optimizer (built by `optimizer_factory` on copies of θ0) fed the given gradients, one list per step, with no
    closure; the parameters after every step, and the optimizer."""
    params = [nn.Parameter(p.clone()) for p in theta0]
    optimizer = optimizer_factory(params)
    trajectory = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        optimizer.step()
        trajectory.append([p.detach().clone() for p in params])
    return trajectory, optimizer


def assert_trajectories_close(ours, expected, rtol=1e-11, atol=1e-14):
    """Two trajectories (lists of parameter lists) agree step by step; the message names the step and the tensor."""
    for t, (params, params_ref) in enumerate(zip(ours, expected), start=1):
        for i, (a, b) in enumerate(zip(params, params_ref)):
            torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=lambda text: f"step {t}, tensor {i}: {text}")


# ---- pytorch-fid's chain as the paper's reference ran it: images saved as PNGs, read back by pytorch-fid ----------

def reference_pngs(images: torch.Tensor, folder: Path) -> list[str]:
    """Each [-1, 1] image saved alone with save_image(normalize=True), as the reference wrote its samples."""
    from torchvision.utils import save_image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(images):
        path = folder / f"{index:05d}.png"
        save_image(image, path, normalize=True)
        paths.append(str(path))
    return paths


def reference_activations(paths: list[str], dims: int, batch_size: int = 50):
    """pytorch-fid's get_activations over PNG files, with pytorch-fid's own InceptionV3 (weights from TORCH_HOME)."""
    from pytorch_fid.fid_score import get_activations
    from pytorch_fid.inception import InceptionV3

    model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[dims]]).eval()
    return get_activations(paths, model, batch_size=batch_size, dims=dims, device="cpu", num_workers=0)


def reference_statistics(paths: list[str], dims: int):
    """As pytorch-fid's calculate_activation_statistics: the mean and np.cov(rowvar=False) of the activations."""
    import numpy as np

    activations = reference_activations(paths, dims)
    return np.mean(activations, axis=0), np.cov(activations, rowvar=False)


# ---- HTML as Python's html.parser reads it ------------------------------------------------------------------------

class HtmlDocument(HTMLParser):
    """Every tag with its attributes, every <img> src, and the text, as Python's html.parser sees them."""

    def __init__(self):
        super().__init__()
        self.tags, self.images, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        self.text.append(data)


def parse_html(html: str) -> HtmlDocument:
    document = HtmlDocument()
    document.feed(html)
    document.close()
    return document


# ---- a tiny PTB made the official one (its checksums, counts and vocabulary), and a download that serves it --------

PTB_URL = "https://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"
# Tiny files in PTB's layout: a space before and after each line's words.
TINY_PTB = {"train": " the cat sat \n on the mat \n", "valid": " the cat \n", "test": " on the mat \n sat \n"}
TINY_PTB_TOKENS = {"train": 8, "valid": 3, "test": 6}


def make_tiny_ptb_official(monkeypatch) -> None:
    """Make TINY_PTB's files the 'official' ones: their checksums, token counts and vocabulary size."""
    import hashlib

    from adala_bench.data import ptb

    monkeypatch.setattr(ptb, "OFFICIAL_MD5", {f"ptb.{split}.txt": hashlib.md5(text.encode()).hexdigest()
                                              for split, text in TINY_PTB.items()})
    monkeypatch.setattr(ptb, "OFFICIAL_TOKENS", TINY_PTB_TOKENS)
    monkeypatch.setattr(ptb, "OFFICIAL_VOCAB_SIZE", 6)


def ptb_how(root: Path) -> str:
    """How a missing PTB is to be got, as adala-data's errors say it."""
    return (f"download it with: adala-data ptb --root {root} (offline: download {PTB_URL} by hand and copy "
            f"simple-examples/data/ptb.{{train,valid,test}}.txt to {root / 'ptb'}/)")


def tar_bytes(files: dict[str, str]) -> bytes:
    """A .tgz holding `files` (name: text)."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tiny_ptb_archive() -> bytes:
    """TINY_PTB as simple-examples.tgz holds PTB: "./"-prefixed names, and other files beside the three."""
    return tar_bytes({"./simple-examples/data/ptb.train.txt": TINY_PTB["train"],
                      "./simple-examples/data/ptb.valid.txt": TINY_PTB["valid"],
                      "./simple-examples/data/ptb.test.txt": TINY_PTB["test"],
                      "./simple-examples/data/ptb.char.train.txt": "x", "./simple-examples/README": "readme"})


def serve_download(monkeypatch, payload: bytes) -> list:
    """urllib's urlopen answers every URL with `payload`; the (url, timeout) of each call are listed."""
    import io
    import urllib.request

    calls = []

    def urlopen(url, timeout):
        calls.append((url, timeout))
        return io.BytesIO(payload)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return calls
