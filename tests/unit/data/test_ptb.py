"""data/ptb.py: PTB read as AWD-LSTM reads it (the vocabulary from train, words outside it refused), the files checked
against the official md5s, token counts and vocabulary, the download (only the three files, verified, nothing bad
left behind), batchify / get_batch / the sequence lengths as the reference draws them, and the synthetic corpus
(layout, exact sizes, bigram structure, byte-identical per arguments, safe against concurrent writers). The command
line (adala-data): tests/e2e/test_data_cli.py."""

from __future__ import annotations

import hashlib
import json
import math
import re
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from adala_bench.data import DataError
from adala_bench.data import ptb
from adala_bench.data.ptb import (
    batchify,
    download_ptb,
    ensure_synthetic_ptb,
    get_batch,
    load_ptb,
    sequence_lengths,
    write_synthetic_ptb,
)
from helpers import (PTB_URL, TINY_PTB, TINY_PTB_TOKENS, make_tiny_ptb_official, ptb_how, serve_download, tar_bytes,
                     tiny_ptb_archive)

TRAIN, VALID, TEST = TINY_PTB["train"], TINY_PTB["valid"], TINY_PTB["test"]
SMALL = dict(n_train_tokens=300, n_valid_tokens=40, n_test_tokens=50, vocab_size=20)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def write_ptb(root, train=TRAIN, valid=VALID, test=TEST):
    directory = root / "ptb"
    directory.mkdir(parents=True, exist_ok=True)
    for split, text in (("train", train), ("valid", valid), ("test", test)):
        (directory / f"ptb.{split}.txt").write_text(text)
    return directory


@pytest.fixture
def tiny_official(monkeypatch):
    """Make the tiny files the 'official' ones: their checksums, token counts and vocabulary size."""
    make_tiny_ptb_official(monkeypatch)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ptb")
    write_synthetic_ptb(root, **SMALL)
    return root


# ---- real files ----------------------------------------------------------------------------------------------

def test_tokenizes_like_awd_lstm_with_the_vocabulary_from_train(tmp_path, tiny_official):
    write_ptb(tmp_path)
    corpus = load_ptb(tmp_path)
    assert corpus.vocab == ("the", "cat", "sat", "<eos>", "on", "mat")  # order of first appearance
    assert corpus.train.tolist() == [0, 1, 2, 3, 4, 0, 5, 3]  # one <eos> closes each line
    assert corpus.valid.tolist() == [0, 1, 3]
    assert corpus.test.tolist() == [4, 0, 5, 3, 2, 3]
    assert corpus.train.dtype == corpus.test.dtype == torch.int64


def test_a_valid_or_test_word_outside_the_training_vocabulary_is_refused(tmp_path, monkeypatch, tiny_official):
    test = " the cat \n the dog \n"
    write_ptb(tmp_path, test=test)
    monkeypatch.setitem(ptb.OFFICIAL_MD5, "ptb.test.txt", md5(test.encode()))
    with pytest.raises(DataError) as error:
        load_ptb(tmp_path)
    path = tmp_path / "ptb" / "ptb.test.txt"
    assert str(error.value) == f"PTB file {path} line 2: word 'dog' is not in the training vocabulary; {ptb_how(tmp_path)}"


def test_missing_files_raise_one_line_with_both_ways_to_get_them(tmp_path):
    with pytest.raises(DataError) as error:
        load_ptb(tmp_path)
    assert str(error.value) == f"PTB not found at {tmp_path / 'ptb'} (missing ptb.train.txt); {ptb_how(tmp_path)}"


def test_each_of_the_three_files_is_required(tmp_path, tiny_official):
    directory = write_ptb(tmp_path)
    (directory / "ptb.valid.txt").unlink()
    with pytest.raises(DataError, match=r"^PTB not found at .*ptb \(missing ptb.valid.txt\); download it with"):
        load_ptb(tmp_path)


def test_files_are_checked_against_the_official_md5(tmp_path):
    write_ptb(tmp_path)
    with pytest.raises(DataError) as error:
        load_ptb(tmp_path)
    path = tmp_path / "ptb" / "ptb.train.txt"
    assert str(error.value) == (f"PTB file {path} is corrupt or truncated (md5 {md5(TRAIN.encode())} != "
                                f"f26c4b92c5fdc7b3f8c7cdcb991d8420); delete it and {ptb_how(tmp_path)}")


def test_truncated_file_is_refused_in_one_line(tmp_path, tiny_official):
    directory = write_ptb(tmp_path)
    (directory / "ptb.test.txt").write_text(TEST[:7])
    with pytest.raises(DataError) as error:
        load_ptb(tmp_path)
    message = str(error.value)
    assert message.startswith(f"PTB file {directory / 'ptb.test.txt'} is corrupt or truncated (md5 ")
    assert "\n" not in message


def test_real_load_checks_the_official_token_counts_and_vocabulary(tmp_path, monkeypatch, tiny_official):
    write_ptb(tmp_path)
    monkeypatch.setattr(ptb, "OFFICIAL_TOKENS", {"train": 929_589, "valid": 73_760, "test": 82_430})
    with pytest.raises(DataError, match="PTB at .* has 8 train tokens, expected 929589; download it with"):
        load_ptb(tmp_path)
    monkeypatch.setattr(ptb, "OFFICIAL_TOKENS", TINY_PTB_TOKENS)
    monkeypatch.setattr(ptb, "OFFICIAL_VOCAB_SIZE", 10_000)
    with pytest.raises(DataError, match="has a vocabulary of 6 words, expected 10000"):
        load_ptb(tmp_path)


# ---- download ------------------------------------------------------------------------------------------------


def test_download_extracts_only_the_three_files_and_verifies_them(tmp_path, monkeypatch, tiny_official):
    calls = serve_download(monkeypatch, tiny_ptb_archive())
    directory = download_ptb(tmp_path)
    assert directory == tmp_path / "ptb" and calls == [(PTB_URL, ptb.DOWNLOAD_TIMEOUT_S)]
    assert sorted(p.name for p in directory.iterdir()) == ["ptb.test.txt", "ptb.train.txt", "ptb.valid.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ptb"]  # no staging left behind
    assert load_ptb(tmp_path).vocab[:3] == ("the", "cat", "sat")
    assert download_ptb(tmp_path) == directory and len(calls) == 1  # files that verify are kept


def test_offline_download_says_which_files_to_put_where(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(DataError) as error:
        download_ptb(tmp_path)
    assert str(error.value) == (
        f"PTB download to {tmp_path} failed (URLError: no network in this test); download {PTB_URL} by hand and copy "
        f"simple-examples/data/ptb.{{train,valid,test}}.txt to {tmp_path / 'ptb'}/")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("payload, message", [
    (b"not a tarball", r"failed: the archive is corrupt \(ReadError: not a gzip file\); download "),
    (tiny_ptb_archive()[:200], r"failed: the archive is corrupt \(EOFError: Compressed file ended "),
    (tar_bytes({"simple-examples/data/ptb.train.txt": TRAIN}),
     r"failed: the archive has no simple-examples/data/ptb.valid.txt; download .* by hand"),
    (tiny_ptb_archive(),
     r"failed: ptb.train.txt in the archive has md5 \w+, expected f26c4b92c5fdc7b3f8c7cdcb991d8420;"),
])
def test_a_bad_download_never_lands(tmp_path, monkeypatch, payload, message):
    serve_download(monkeypatch, payload)
    with pytest.raises(DataError, match=f"^PTB download to {re.escape(str(tmp_path))} {message}") as error:
        download_ptb(tmp_path)
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


# ---- batching ------------------------------------------------------------------------------------------------

def test_batchify_cuts_the_stream_into_columns_and_drops_the_remainder():
    data = torch.arange(26)
    batched = batchify(data, 4)
    assert batched.shape == (6, 4) and batched.is_contiguous()
    for column in range(4):
        assert batched[:, column].tolist() == list(range(6 * column, 6 * column + 6))
    assert batchify(data, 1).shape == (26, 1)
    with pytest.raises(ValueError, match="batch_size must be an int in 1..26"):
        batchify(data, 27)


def test_get_batch_gives_next_token_targets_and_clips_the_last_batch():
    source = batchify(torch.arange(26), 4)
    inputs, targets = get_batch(source, 0, 3)
    assert torch.equal(inputs, source[0:3])
    assert torch.equal(targets, source[1:4].reshape(-1)) and targets.shape == (12,)
    inputs, targets = get_batch(source, 4, 70)  # only one row with a successor is left
    assert torch.equal(inputs, source[4:5]) and torch.equal(targets, source[5])


def test_sequence_lengths_are_a_function_of_the_generator():
    plan = sequence_lengths(5_000, np.random.default_rng(3))
    assert plan == sequence_lengths(5_000, np.random.default_rng(3))
    assert plan != sequence_lengths(5_000, np.random.default_rng(4))
    # The first batch: one uniform draw picks bptt or bptt/2, then one normal draw.
    draws = np.random.default_rng(3)
    mean = 70 if draws.random() < 0.95 else 35.0
    assert plan[0] == (0, max(5, int(draws.normal(mean, 5))))
    assert sequence_lengths(2, np.random.default_rng(0)) == []
    assert len(sequence_lengths(3, np.random.default_rng(0))) == 1


def test_sequence_lengths_walk_the_whole_stream_with_the_reference_mix():
    n_steps = 1_000_000
    plan = sequence_lengths(n_steps, np.random.default_rng(0), bptt=70)
    starts, lengths = np.array(plan).T
    assert starts[0] == 0 and (starts[1:] == starts[:-1] + lengths[:-1]).all()
    assert starts[-1] < n_steps - 2 <= starts[-1] + lengths[-1]  # the loop runs while i < n_steps - 1 - 1
    assert lengths.min() >= 5
    half = lengths < 52  # halfway between 35 and 70, 3.5 sd from both
    assert 0.04 < half.mean() < 0.06
    assert lengths[~half].mean() == pytest.approx(69.5, abs=0.3)  # int() truncates N(70, 5)
    assert lengths[half].mean() == pytest.approx(34.5, abs=0.5)
    short = sequence_lengths(10_000, np.random.default_rng(0), bptt=4)
    assert min(length for _, length in short) == 5  # N(4, 5) draws below 5 are raised to 5


# ---- synthetic -----------------------------------------------------------------------------------------------

def test_synthetic_corpus_has_the_official_layout_and_exact_sizes(synthetic_root):
    directory = synthetic_root / "synthetic" / "ptb"
    assert sorted(p.name for p in directory.iterdir()) == [
        "checksums.md5", "ptb.test.txt", "ptb.train.txt", "ptb.valid.txt", "synthetic.json"]
    lines = (directory / "ptb.valid.txt").read_text().splitlines(keepends=True)
    assert all(line.startswith(" ") and line.endswith(" \n") for line in lines)
    manifest = dict(reversed(line.split("  ")) for line in (directory / "checksums.md5").read_text().splitlines())
    assert all(md5((directory / name).read_bytes()) == digest for name, digest in manifest.items())
    assert json.loads((directory / "synthetic.json").read_text()) == {**SMALL, "seed": 0, "version": 1}
    corpus = load_ptb(synthetic_root, "synthetic")  # every valid and test word is in train's vocabulary
    assert (len(corpus.train), len(corpus.valid), len(corpus.test), len(corpus.vocab)) == (300, 40, 50, 20)
    assert "<eos>" in corpus.vocab


def test_synthetic_corpus_has_bigram_structure(tmp_path):
    """A word mostly predicts its successor, so a small LSTM learns it in a few steps (see test_awd_lstm)."""
    corpus = load_ptb(write_synthetic_ptb(tmp_path).parents[1], "synthetic")  # the default sizes
    assert (len(corpus.train), len(corpus.valid), len(corpus.test), len(corpus.vocab)) == (20_000, 2_000, 2_000, 200)
    tokens, size = corpus.train.numpy(), len(corpus.vocab)
    counts = np.zeros((size, size))
    np.add.at(counts, (tokens[:-1], tokens[1:]), 1)
    conditional = counts / counts.sum(1, keepdims=True)
    entropy = -(counts * np.log(np.where(counts > 0, conditional, 1))).sum() / counts.sum()
    assert entropy < 0.4 * math.log(size)


def test_synthetic_corpus_is_byte_identical_per_arguments(tmp_path):
    first = write_synthetic_ptb(tmp_path / "a", **SMALL, seed=5)
    again = write_synthetic_ptb(tmp_path / "b", **SMALL, seed=5)
    other = write_synthetic_ptb(tmp_path / "c", **SMALL, seed=6)
    for name in ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt", "synthetic.json", "checksums.md5"):
        assert (first / name).read_bytes() == (again / name).read_bytes()
    assert (first / "ptb.train.txt").read_bytes() != (other / "ptb.train.txt").read_bytes()


def test_ensure_rewrites_only_when_sizes_or_seed_differ_or_files_are_bad(tmp_path):
    path = ensure_synthetic_ptb(tmp_path, **SMALL)
    stamp = (path / "ptb.train.txt").stat().st_mtime_ns
    assert ensure_synthetic_ptb(tmp_path, **SMALL) == path
    assert (path / "ptb.train.txt").stat().st_mtime_ns == stamp
    ensure_synthetic_ptb(tmp_path, **{**SMALL, "n_train_tokens": 400})
    assert len(load_ptb(tmp_path, "synthetic").train) == 400
    (path / "ptb.test.txt").write_text(" w1 \n")
    ensure_synthetic_ptb(tmp_path, **{**SMALL, "n_train_tokens": 400})
    assert len(load_ptb(tmp_path, "synthetic").test) == 50
    assert sorted(p.name for p in (tmp_path / "synthetic").iterdir()) == ["ptb"]


def test_writers_of_the_same_corpus_do_not_disturb_each_other(tmp_path):
    # As when parallel runs of a sweep all ask for the same synthetic data.
    # A marker file tells the kept directory from a replacement (an inode number may be reused once freed).
    directory = write_synthetic_ptb(tmp_path, **SMALL)
    (directory / "marker").touch()
    assert write_synthetic_ptb(tmp_path, **SMALL) == directory
    assert (directory / "marker").exists()
    with ThreadPoolExecutor(4) as pool:
        written = list(pool.map(lambda seed: write_synthetic_ptb(tmp_path, **SMALL, seed=seed), [1, 1, 1, 1]))
    assert written == [directory] * 4 and not (directory / "marker").exists()
    assert json.loads((directory / "synthetic.json").read_text())["seed"] == 1
    assert sorted(p.name for p in (tmp_path / "synthetic").iterdir()) == ["ptb"]
    assert len(load_ptb(tmp_path, "synthetic").train) == 300


def test_corrupt_synthetic_file_names_the_file_and_the_fix(tmp_path):
    directory = write_synthetic_ptb(tmp_path, **SMALL)
    (directory / "ptb.valid.txt").write_bytes(b"x")
    with pytest.raises(DataError, match=r"ptb.valid.txt is corrupt or truncated \(md5 9dd4e461268c8034f5c8564e155c67a6 "
                                        r"!= \w+\); delete it and create it with: adala-data synthetic-ptb --root "):
        load_ptb(tmp_path, "synthetic")


def test_bad_arguments():
    with pytest.raises(ValueError, match="vocab_size must be an int >= 3, got 2"):
        write_synthetic_ptb("/nonexistent", vocab_size=2)
    with pytest.raises(ValueError, match="n_train_tokens must be an int >= 200, got 150"):
        write_synthetic_ptb("/nonexistent", n_train_tokens=150)
    with pytest.raises(ValueError, match="n_test_tokens must be an int >= 1, got 0"):
        write_synthetic_ptb("/nonexistent", n_test_tokens=0)


