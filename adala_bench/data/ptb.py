"""Penn TreeBank, word level (Mikolov's `simple-examples.tgz`), checked by MD5, a synthetic stand-in, and batching.

The official files are `ptb.train.txt`, `ptb.valid.txt` and `ptb.test.txt` from the archive's `simple-examples/data/`,
kept under `<root>/ptb/`; the synthetic writer produces the same three files under `<root>/synthetic/ptb/`.
Tokenising, batching and the training batch plan follow AWD-LSTM's `data.py`, `utils.py` and `main.py`, which
the reference runs use (PROTOCOL.md §2).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from adala_bench.data import DataError
from adala_bench.data.checksums import md5_of, read_manifest
from adala_bench.data.staging import is_synthetic_copy, synthetic_here, synthetic_matches, write_synthetic_directory

BASE_FOLDER = "ptb"
SYNTHETIC_FOLDER = "synthetic"
OFFICIAL_URL = "https://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"
ARCHIVE_FOLDER = ("simple-examples", "data")  # where the three files sit inside the archive
SPLITS = ("train", "valid", "test")
FILES = {split: f"ptb.{split}.txt" for split in SPLITS}
EOS = "<eos>"
DOWNLOAD_TIMEOUT_S = 60

# The official checksums, as torchtext's PennTreebank lists them.
OFFICIAL_MD5 = {
    "ptb.train.txt": "f26c4b92c5fdc7b3f8c7cdcb991d8420",
    "ptb.valid.txt": "aa0affc06ff7c36e977d7cd49e3839bf",
    "ptb.test.txt": "8b80168b89c18661a38ef683c0dc3721",
}
# Tokens with one <eos> per line, and the vocabulary <eos> included (Mikolov et al.; AWD-LSTM's Corpus).
OFFICIAL_TOKENS = {"train": 929_589, "valid": 73_760, "test": 82_430}
OFFICIAL_VOCAB_SIZE = 10_000

# Bump when the synthetic text changes, so corpora written by an older generator are rewritten.
SYNTHETIC_VERSION = 1


@dataclass(frozen=True)
class PtbCorpus:
    train: torch.Tensor  # int64 [n_tokens], word indices into `vocab`
    valid: torch.Tensor
    test: torch.Tensor
    vocab: tuple[str, ...]  # index -> word, in order of first appearance in train


def dataset_dir(root: str | os.PathLike, source: str = "real") -> Path:
    """Where `load_ptb(root, source)` looks: `<root>/ptb`, or `<root>/synthetic/ptb`."""
    root = Path(root).expanduser()
    return {"real": root / BASE_FOLDER, "synthetic": root / SYNTHETIC_FOLDER / BASE_FOLDER}[source]


def load_ptb(root: str | os.PathLike, source: str = "real") -> PtbCorpus:
    """Read and MD5-verify the three files of `source` ("real" or "synthetic") under `root`, as word indices.

    Each line is `line.split() + ['<eos>']`. The vocabulary comes from train alone; a valid or test word outside it
    is an error (AWD-LSTM adds such words instead, which for the real PTB changes nothing: it has none).
    A real-source load never falls back to synthetic data.
    """
    directory = verify_ptb(root, source)
    how = _how_to_get(root, source)
    vocab: dict[str, int] = {}
    train = _tokenize(directory / FILES["train"], vocab, grow=True, how=how)
    valid = _tokenize(directory / FILES["valid"], vocab, grow=False, how=how)
    test = _tokenize(directory / FILES["test"], vocab, grow=False, how=how)
    if source == "real":
        _check_official_sizes(directory, {"train": train, "valid": valid, "test": test}, len(vocab), how)
    return PtbCorpus(train, valid, test, tuple(vocab))


def ptb_corpus(root: str | os.PathLike, source: str, n_train: int, n_valid: int, n_test: int,
               vocab_size: int) -> PtbCorpus:
    """The corpus a run asked for: the real one, or the synthetic one (written once with these sizes) when the run
    chose it, never as a fallback."""
    if source == "synthetic":
        ensure_synthetic_ptb(root, n_train_tokens=n_train, n_valid_tokens=n_valid, n_test_tokens=n_test,
                             vocab_size=vocab_size)
    return load_ptb(root, source=source)


def verify_ptb(root: str | os.PathLike, source: str = "real") -> Path:
    """Check that the three files exist and have their expected MD5; return the dataset directory.

    Real data is checked against the official checksums, synthetic data against the manifest written with it.
    """
    directory = dataset_dir(root, source)
    how = _how_to_get(root, source)
    expected = OFFICIAL_MD5 if source == "real" else read_manifest(directory, "PTB", FILES.values(), how)
    for name in FILES.values():
        path = directory / name
        if not path.is_file():
            raise DataError(f"PTB not found at {directory} (missing {name}); {how}")
        actual = md5_of(path)
        if actual != expected[name]:
            if source == "real" and is_synthetic_copy(directory):
                raise DataError(synthetic_here(directory, "Mikolov's PTB", "adala-data verify ptb"))
            raise DataError(f"PTB file {path} is corrupt or truncated (md5 {actual} != {expected[name]}); "
                            f"delete it and {how}")
    return directory


def download_ptb(root: str | os.PathLike) -> Path:
    """Download `simple-examples.tgz`, extract the three word-level files into `<root>/ptb/`, and verify them.

    Files that already verify are kept without a download. The archive and the extracted files go to a staging
    directory beside `ptb/` and are MD5-checked there, so a failed or corrupt download never lands in `ptb/`.
    """
    root = Path(root).expanduser()
    try:
        return verify_ptb(root, "real")
    except DataError:
        pass
    target = dataset_dir(root, "real")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{BASE_FOLDER}-download-", dir=root))
    try:
        archive = staging / "simple-examples.tgz"
        _fetch(archive, root)
        _extract(archive, staging, root)
        for name, expected in OFFICIAL_MD5.items():
            actual = md5_of(staging / name)
            if actual != expected:
                raise DataError(f"PTB download to {root} failed: {name} in the archive has md5 {actual}, expected "
                                f"{expected}; {_by_hand(root)}")
        target.mkdir(exist_ok=True)
        for name in FILES.values():
            os.replace(staging / name, target / name)  # each file appears whole or not at all
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return verify_ptb(root, "real")


def write_synthetic_ptb(root: str | os.PathLike, n_train_tokens: int = 20_000, n_valid_tokens: int = 2_000,
                        n_test_tokens: int = 2_000, vocab_size: int = 200, seed: int = 0) -> Path:
    """Write a small learnable PTB stand-in in the official format under `<root>/synthetic/ptb/`.

    Words follow a fixed random ring: after a word comes its ring successor (60 %), the one after (25 %) or any
    word (15 %), and every eighth word on the ring usually ends the sentence, so a small LSTM learns the bigrams
    within a few steps. Train opens with one line that walks the whole ring, so every valid and test word is in
    the training vocabulary. The token counts (with <eos>) and the vocabulary size (with <eos>) are exactly the
    ones asked for, and the same arguments give byte-identical files. The directory is written beside its final
    place and renamed into it, so a half-written one is never read.
    """
    spec = _synthetic_spec(n_train_tokens, n_valid_tokens, n_test_tokens, vocab_size, seed)
    rng = np.random.default_rng(seed)
    ring = rng.permutation(vocab_size - 1)  # word ids in ring order; <eos> is the vocabulary's last slot
    texts = {
        "train": _synthetic_text(rng, ring, n_train_tokens, walk_ring=True),
        "valid": _synthetic_text(rng, ring, n_valid_tokens, walk_ring=False),
        "test": _synthetic_text(rng, ring, n_test_tokens, walk_ring=False),
    }

    def write_files(staging: Path) -> tuple[str, ...]:
        for split, text in texts.items():
            (staging / FILES[split]).write_bytes(text.encode("ascii"))
        return tuple(FILES.values())

    return write_synthetic_directory(dataset_dir(root, "synthetic"), spec, write_files,
                                     lambda: verify_ptb(root, "synthetic"))


def ensure_synthetic_ptb(root: str | os.PathLike, n_train_tokens: int = 20_000, n_valid_tokens: int = 2_000,
                         n_test_tokens: int = 2_000, vocab_size: int = 200, seed: int = 0) -> Path:
    """The synthetic corpus's directory, (re)written unless one with these sizes and seed is there and verifies."""
    spec = _synthetic_spec(n_train_tokens, n_valid_tokens, n_test_tokens, vocab_size, seed)
    if not synthetic_matches(lambda: verify_ptb(root, "synthetic"), spec):
        write_synthetic_ptb(root, n_train_tokens, n_valid_tokens, n_test_tokens, vocab_size, seed)
    return dataset_dir(root, "synthetic")


# ---- batching (AWD-LSTM's utils.py and main.py) ----------------------------------------------------------------

def batchify(data: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The token stream cut into `batch_size` columns, [n_steps, batch_size]; the remainder is dropped."""
    if not (isinstance(batch_size, int) and 1 <= batch_size <= len(data)):
        raise ValueError(f"batch_size must be an int in 1..{len(data)} (the number of tokens), got {batch_size!r}")
    n_steps = data.size(0) // batch_size
    return data.narrow(0, 0, n_steps * batch_size).view(batch_size, -1).t().contiguous()


def get_batch(source: torch.Tensor, i: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows i..i+seq_len of `source` and the next-token targets, flattened; the last batch is clipped to fit."""
    seq_len = min(seq_len, len(source) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].reshape(-1)


def sequence_lengths(n_steps: int, generator: np.random.Generator, bptt: int = 70) -> list[tuple[int, int]]:
    """One epoch's training batches over `n_steps` rows, as (start row, seq_len), the way AWD-LSTM's train() walks.

    bptt' is `bptt` with probability 0.95 and bptt/2 otherwise; seq_len = max(5, int(N(bptt', 5))). The draws
    come from `generator` alone (random, then normal, per batch, as the reference draws from np.random), so the
    plan is a function of its state. get_batch clips the last batch to the rows that are left.
    """
    plan, i = [], 0
    while i < n_steps - 1 - 1:
        mean = bptt if generator.random() < 0.95 else bptt / 2.0
        seq_len = max(5, int(generator.normal(mean, 5)))
        plan.append((i, seq_len))
        i += seq_len
    return plan


# ---- reading -------------------------------------------------------------------------------------------------

def _fetch_command(root: str | os.PathLike, source: str) -> str:
    command = "adala-data ptb" if source == "real" else "adala-data synthetic-ptb"
    return f"{command} --root {Path(root).expanduser()}"


def _by_hand(root: str | os.PathLike) -> str:
    return (f"download {OFFICIAL_URL} by hand and copy simple-examples/data/ptb.{{train,valid,test}}.txt "
            f"to {dataset_dir(root, 'real')}/")


def _how_to_get(root: str | os.PathLike, source: str) -> str:
    if source == "real":
        return f"download it with: {_fetch_command(root, source)} (offline: {_by_hand(root)})"
    return f"create it with: {_fetch_command(root, source)}"


def _tokenize(path: Path, vocab: dict[str, int], grow: bool, how: str) -> torch.Tensor:
    """Word indices of `path`, one <eos> closing each line; new words extend `vocab` only when `grow`."""
    ids = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            for word in line.split() + [EOS]:
                index = vocab.get(word)
                if index is None:
                    if not grow:
                        raise DataError(f"PTB file {path} line {number}: word {word!r} is not in the training "
                                        f"vocabulary; {how}")
                    index = vocab[word] = len(vocab)
                ids.append(index)
    return torch.tensor(ids, dtype=torch.int64)


def _check_official_sizes(directory: Path, splits: dict[str, torch.Tensor], vocab_size: int, how: str) -> None:
    for split, tokens in splits.items():
        if len(tokens) != OFFICIAL_TOKENS[split]:
            raise DataError(f"PTB at {directory} has {len(tokens)} {split} tokens, expected "
                            f"{OFFICIAL_TOKENS[split]}; {how}")
    if vocab_size != OFFICIAL_VOCAB_SIZE:
        raise DataError(f"PTB at {directory} has a vocabulary of {vocab_size} words, expected "
                        f"{OFFICIAL_VOCAB_SIZE}; {how}")


# ---- downloading ---------------------------------------------------------------------------------------------

def _fetch(archive: Path, root: Path) -> None:
    try:
        with urllib.request.urlopen(OFFICIAL_URL, timeout=DOWNLOAD_TIMEOUT_S) as response, open(archive, "wb") as file:
            shutil.copyfileobj(response, file)
    except OSError as error:  # URLError and timeouts are OSErrors
        reason = " ".join(str(getattr(error, "reason", error)).split())
        raise DataError(f"PTB download to {root} failed ({type(error).__name__}: {reason}); "
                        f"{_by_hand(root)}") from error


def _extract(archive: Path, staging: Path, root: Path) -> None:
    """Copy the three word-level files out of the archive into `staging`, reading nothing else from it."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {PurePosixPath(m.name).parts[-3:]: m for m in tar.getmembers() if m.isfile()}
            for name in FILES.values():
                member = members.get(ARCHIVE_FOLDER + (name,))
                if member is None:
                    raise DataError(f"PTB download to {root} failed: the archive has no "
                                    f"{'/'.join(ARCHIVE_FOLDER)}/{name}; {_by_hand(root)}")
                with tar.extractfile(member) as source, open(staging / name, "wb") as file:
                    shutil.copyfileobj(source, file)
    except (tarfile.TarError, EOFError, zlib.error) as error:
        reason = " ".join(str(error).split())
        raise DataError(f"PTB download to {root} failed: the archive is corrupt ({type(error).__name__}: {reason}); "
                        f"{_by_hand(root)}") from error


# ---- synthetic writing ---------------------------------------------------------------------------------------

def _synthetic_spec(n_train_tokens: int, n_valid_tokens: int, n_test_tokens: int, vocab_size: int,
                    seed: int) -> dict[str, int]:
    _check_int("vocab_size", vocab_size, least=3)
    _check_int("n_train_tokens", n_train_tokens, least=vocab_size)  # train's first line: the ring and an <eos>
    _check_int("n_valid_tokens", n_valid_tokens, least=1)
    _check_int("n_test_tokens", n_test_tokens, least=1)
    _check_int("seed", seed, least=0)
    return {"n_train_tokens": int(n_train_tokens), "n_valid_tokens": int(n_valid_tokens),
            "n_test_tokens": int(n_test_tokens), "vocab_size": int(vocab_size), "seed": int(seed),
            "version": SYNTHETIC_VERSION}


def _check_int(name: str, value, least: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
        raise ValueError(f"{name} must be an int >= {least}, got {value!r}")


def _synthetic_text(rng: np.random.Generator, ring: np.ndarray, n_tokens: int, walk_ring: bool) -> str:
    """Lines in PTB's layout (" w1 w2 ... \\n") holding exactly `n_tokens` tokens once each line gets its <eos>."""
    sentences = [list(ring)] if walk_ring else []
    count = sum(len(words) + 1 for words in sentences)
    while count < n_tokens:
        words = _synthetic_sentence(rng, ring)[:n_tokens - count - 1]  # the last line is cut to fit
        sentences.append(words)
        count += len(words) + 1
    return "".join(" " + " ".join(f"w{word}" for word in words) + " \n" for words in sentences)


def _synthetic_sentence(rng: np.random.Generator, ring: np.ndarray) -> list[int]:
    n_words = len(ring)
    position = int(rng.random() * n_words)
    words = []
    while True:
        words.append(int(ring[position]))
        end, step, jump = rng.random(3)
        if end < (0.6 if position % 8 == 7 else 0.04):
            return words
        if step < 0.6:
            position = (position + 1) % n_words
        elif step < 0.85:
            position = (position + 2) % n_words
        else:
            position = int(jump * n_words)
