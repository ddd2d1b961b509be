"""tasks/language.py, Table 3's task on the small synthetic corpus: AdaLA's epoch equals a hand-written loop (carried
hidden state, per-batch lr scaling, clipping of g and g'); the plateau rule (the reference's nonmono); and the
evaluation numbers a run records, against a computation written apart from the task (issue 17, path 2, and the PTB
family of the pinned snapshot tests, which guard against change but not error).

The evaluation: val_loss/val_ppl and test_loss/test_ppl of an epoch's metrics row against a token-weighted
cross-entropy computed here: the split's text file read and tokenised here (one <eos> per line, the vocabulary in
order of first appearance in ptb.train.txt), cut into columns here (valid.txt at batch 10, test.txt at batch 1, the
remainder dropped), the model run in eval mode chunk by chunk (chunks of 50, not the task's 70) with the hidden state
carried, the cross-entropy summed over every target and divided by the number of targets scored. Perplexity is exp
of that mean. The model trains one epoch first through the runner's own build_trainer, so its predictions are not
uniform and the numbers checked are the ones the trainer writes into the metrics row.

(The as-run values of every depth: tests/unit/test_config.py; whole runs: tests/e2e/test_ptb_runs.py.)"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from adala_bench import optim
from adala_bench.config import RunConfig
from adala_bench.runner import build_trainer
from adala_bench.settings import Schedule, TrainerSettings
from adala_bench.tasks import build_task
from adala_bench.tasks.language import BPTT, PennTreebankLM
from adala_bench.trainer import Progress, Trainer, detach
from helpers import compose

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def ptb_root(tmp_path_factory):
    return tmp_path_factory.mktemp("ptb-data")


def ptb(ptb_root, tmp_path, *overrides):
    return compose("profile=smoke", f"data.root={ptb_root}", f"results.root={tmp_path / 'runs'}", *overrides)


@pytest.mark.parametrize("lookahead_batch", ["next", "same"])
def test_an_adala_epoch_equals_a_hand_written_loop(ptb_root, tmp_path, lookahead_batch):
    """Hidden state carried and detached, lr × seq_len/70 in the tentative step too, g and g' clipped to 0.25, the
    look-ahead from the same incoming hidden state with its outgoing one dropped: bit for bit."""
    cfg = ptb(ptb_root, tmp_path, "task=ptb_lstm2", "optimizer=adala", f"trainer.lookahead_batch={lookahead_batch}")
    torch.manual_seed(0)
    task = build_task(RunConfig.of(cfg), CPU)
    spec = RunConfig.of(cfg).optimizer
    model = copy.deepcopy(task.model)
    trainer = Trainer(task, {"model": spec}, epochs=1, schedule=Schedule(), device=CPU,
                      settings=TrainerSettings(lookahead_batch=lookahead_batch, clip_grad_norm=0.25))
    reference = optim.build("adala", model.parameters(), **spec.hparams)
    batches = task.train_batches(0)
    assert len({batch.seq_len for batch in batches}) > 1  # the lengths vary, so the lr scaling is exercised

    def loss_on(batch, hidden):
        output, new_hidden, raw = model(batch.tokens, hidden)
        logits = model.decoder(output)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), batch.targets)
        return loss + 2 * output.pow(2).mean() + (raw[1:] - raw[:-1]).pow(2).mean(), new_hidden

    torch.manual_seed(1)
    model.train()
    hidden = model.init_hidden(cfg.batch_size)
    for index in range(len(batches)):
        batch = batches[index]
        lookahead = batches[(index + 1) % len(batches)] if lookahead_batch == "next" else batch
        reference.param_groups[0]["lr"] = spec.hparams["lr"] * batch.seq_len / BPTT
        reference.zero_grad()
        loss, new_hidden = loss_on(batch, hidden)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)

        def closure():
            reference.zero_grad()
            lookahead_loss, _ = loss_on(lookahead, hidden)
            lookahead_loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            return lookahead_loss

        reference.step(closure)
        reference.param_groups[0]["lr"] = spec.hparams["lr"]
        hidden = detach(new_hidden)

    torch.manual_seed(1)
    row = trainer.train_epoch(Progress())
    assert row["grad_evals"] == 2 * len(batches) and row["lr"] == spec.hparams["lr"]
    for (name, mine), theirs in zip(task.model.state_dict().items(), model.state_dict().values()):
        assert torch.equal(mine, theirs), name


def test_the_plateau_rule_is_the_references_nonmono():
    """The reference's --nonmono 5: the last test loss worse than the best of all epochs before the last 5, with more
    than 5 epochs before it (what the optimizer then becomes is optim.on_plateau's:
    tests/unit/optim/test_registry.py)."""
    plateau = PennTreebankLM.plateau
    rows = lambda *losses: [{"test_loss": loss} for loss in losses]  # noqa: E731
    assert plateau(rows(3, 4, 4, 4, 4, 4, 4))
    assert plateau(rows(5, 3, 4, 4, 4, 4, 4, 3.5))  # the best before the last 5 is 3
    assert not plateau(rows(3, 4, 4, 4, 4, 4))  # only 5 epochs before this one
    assert not plateau(rows(3, 4, 4, 4, 4, 4, 3))  # not worse than the best before the last 5
    assert not plateau(rows(4, 4, 4, 4, 4, 4, 4))  # equal is not worse
    assert not plateau(rows(4, 3, 3, 3, 3, 3, 3.5))  # worse than the last 5, but not than the best before them


# ---- evaluation, against a computation written apart -------------------------------------------------------------

def words_of(path: Path) -> list[str]:
    """AWD-LSTM's Corpus: the words of every line, then <eos>."""
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        words += line.split() + ["<eos>"]
    return words


def ptb_tokens(folder: Path, split: str) -> torch.Tensor:
    vocab: dict[str, int] = {}
    for word in words_of(folder / "ptb.train.txt"):
        vocab.setdefault(word, len(vocab))
    return torch.tensor([vocab[word] for word in words_of(folder / f"ptb.{split}.txt")], dtype=torch.int64)


def token_weighted_cross_entropy(model, tokens: torch.Tensor, columns: int, chunk: int = 50) -> tuple[float, int]:
    """(mean cross-entropy over every next-token target, number of targets) of `model` in eval mode on the stream
    cut into `columns` columns, read `chunk` rows at a time with the hidden state carried."""
    rows = len(tokens) // columns
    stream = tokens[:rows * columns].view(columns, rows).t()  # column j is the j-th contiguous piece of the text
    model.eval()
    total, targets_scored = 0.0, 0
    with torch.no_grad():
        hidden = model.init_hidden(columns)
        for start in range(0, rows - 1, chunk):
            stop = min(start + chunk, rows - 1)
            inputs, targets = stream[start:stop], stream[start + 1:stop + 1]
            output, hidden, _ = model(inputs, hidden)
            logits = model.decoder(output).double()
            total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="sum").item()
            targets_scored += targets.numel()
    assert targets_scored == (rows - 1) * columns
    return total / targets_scored, targets_scored


# (valid tokens, test tokens): the smoke corpus's sizes (<eos> included), then sizes whose streams end right at a
# chunk boundary of the task's 70-row chunks: valid 141 rows (140 targets, two full chunks), test 142 rows (the
# last target alone in a third chunk).
SIZES = [(2000, 2000), (1410, 142)]


@pytest.mark.parametrize("n_valid, n_test", SIZES)
def test_ptb_val_and_test_perplexity_equal_a_token_weighted_cross_entropy_computed_apart(tmp_path, n_valid, n_test):
    ptb_root = tmp_path / "data"
    cfg = compose("profile=smoke", "task=ptb_lstm2", "optimizer=adam", "epochs=1", f"data.root={ptb_root}",
                  f"results.root={tmp_path / 'runs'}", f"task.synthetic.n_valid={n_valid}",
                  f"task.synthetic.n_test={n_test}")
    torch.manual_seed(0)
    trainer = build_trainer(RunConfig.of(cfg), CPU)
    row = trainer.train_epoch(Progress())
    model = trainer.task.model

    folder = ptb_root / "synthetic" / "ptb"
    valid, test = ptb_tokens(folder, "valid"), ptb_tokens(folder, "test")
    assert (len(valid), len(test)) == (n_valid, n_test)
    val_loss, val_targets = token_weighted_cross_entropy(model, valid, columns=10)
    test_loss, test_targets = token_weighted_cross_entropy(model, test, columns=1)
    assert (val_targets, test_targets) == ((n_valid // 10 - 1) * 10, n_test - 1)
    assert val_loss < math.log(200) - 0.05  # trained: better than uniform over the 200 words

    assert row["val_loss"] == pytest.approx(val_loss, rel=2e-6)
    assert row["test_loss"] == pytest.approx(test_loss, rel=2e-6)
    assert row["val_ppl"] == pytest.approx(math.exp(val_loss), rel=1e-5)
    assert row["test_ppl"] == pytest.approx(math.exp(test_loss), rel=1e-5)
    # and the same model evaluated again gives the same numbers (evaluation leaves no state behind)
    again = trainer.task.evaluate(0)
    assert again["val_loss"] == row["val_loss"] and again["test_ppl"] == row["test_ppl"]
