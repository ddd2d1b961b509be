"""Penn TreeBank word-level language modelling with the 1-, 2- and 3-layer AWD-LSTM as the reference ran it
(PROTOCOL.md §2): AdaBelief's LSTM/main.py, which is AWD-LSTM with the optimizer switched.

Training: the token stream in 20 columns; each batch's length max(5, int(N(bptt', 5))) with bptt' = 70 (p 0.95)
or 35, drawn from a generator seeded by (seed, epoch) so resume repeats it; lr × seq_len/70 for that batch (the
trainer's per-step lr factor, so AdaLA's tentative step is scaled too); the hidden state carried and detached from
batch to batch and reset every epoch; loss = cross-entropy + AR 2·mean(dropped output²) + TAR 1·mean(Δ raw output²).
Clipping (global norm 0.25) and the lr decays are the trainer's, from the task config.

Metrics each epoch: train_loss (the token mean of the raw cross-entropy over the epoch, dropout on, no AR/TAR) and
train_ppl; test_loss/test_ppl with batch 1 as the reference evaluates; val_loss/val_ppl on valid.txt with batch 10.
Perplexity is exp of the token-weighted mean cross-entropy. The task's plateau rule (`plateau`) is the reference's:
the test loss stopped improving; the trainer then switches SGD to ASGD (optim.on_plateau), as the reference does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from adala_bench.data.ptb import PtbCorpus, batchify, get_batch, sequence_lengths
from adala_bench.seeding import epoch_seed
from adala_bench.models.awd_lstm import AWDLSTM
from adala_bench.settings import LanguageTaskSettings
from adala_bench.trainer import Loss, Move, Player

BPTT = 70
NONMONO = 5  # the reference's --nonmono: epochs the test loss may fail to improve on before it is a plateau


@dataclass(frozen=True)
class TextBatch:
    tokens: torch.Tensor  # [T, B]
    targets: torch.Tensor  # [T·B]
    seq_len: int  # as drawn, before the last batch is clipped: the lr factor uses it, as the reference


class EpochText(Sequence):
    """One epoch's training batches, made when asked for (random access, so the trainer can look ahead)."""

    def __init__(self, data: torch.Tensor, plan: list[tuple[int, int]]):
        self.data, self.plan = data, plan

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, index: int) -> TextBatch:
        start, seq_len = self.plan[index]
        tokens, targets = get_batch(self.data, start, seq_len)
        return TextBatch(tokens, targets, seq_len)


class PennTreebankLM:
    """One player, "model"; the carry is the LSTM's hidden state; `next` is the following batch, wrapping."""

    def __init__(self, corpus: PtbCorpus, lstm: LanguageTaskSettings, *, batch_size: int, seed: int,
                 device: torch.device, eval_batch_size: int = 10, test_batch_size: int = 1):
        self.train_data = batchify(corpus.train, batch_size).to(device)
        self.val_data = batchify(corpus.valid, eval_batch_size).to(device)
        self.test_data = batchify(corpus.test, test_batch_size).to(device)
        self.batch_size, self.seed, self.lstm = batch_size, seed, lstm
        self.model = AWDLSTM(len(corpus.vocab), lstm.nlayers, emsize=lstm.emsize, nhid=lstm.nhid, dropout=lstm.DROPOUT,
                             dropouth=lstm.DROPOUTH, dropouti=lstm.DROPOUTI, dropoute=lstm.DROPOUTE, wdrop=lstm.WDROP,
                             train_recurrent=lstm.train_recurrent).to(device)
        self.players = {"model": Player(self.model)}

    # -- training ------------------------------------------------------------------------------------------------
    def train_batches(self, epoch: int) -> EpochText:
        generator = np.random.default_rng(epoch_seed(self.seed, epoch))
        return EpochText(self.train_data, sequence_lengths(len(self.train_data), generator, BPTT))

    def moves(self, batches: Sequence[TextBatch], index: int) -> list[Move]:
        batch = batches[index]
        return [Move("model", batch, batches[(index + 1) % len(batches)], lr_factor=batch.seq_len / BPTT)]

    def initial_carry(self):
        return self.model.init_hidden(self.batch_size)

    def loss(self, player: str, batch: TextBatch, carry) -> Loss:
        output, hidden, raw_last = self.model(batch.tokens, carry)
        logits = self.model.decoder(output)
        raw_loss = F.cross_entropy(logits.view(-1, logits.size(-1)), batch.targets)
        ar = self.lstm.AR_ALPHA * output.pow(2).mean()
        tar = self.lstm.TAR_BETA * (raw_last[1:] - raw_last[:-1]).pow(2).mean()
        tokens = batch.targets.numel()  # counted on the host: a tensor of it would be a blocking copy per step
        return Loss(raw_loss + ar + tar, {"loss_sum": raw_loss.detach() * tokens, "tokens": tokens}, carry=hidden)

    def summarize_train(self, sums: dict[str, torch.Tensor | int]) -> dict[str, float]:
        loss = sums["loss_sum"].item() / sums["tokens"]
        return {"train_loss": loss, "train_ppl": math.exp(loss)}

    # -- evaluation ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, epoch: int) -> dict[str, float]:
        self.model.eval()
        metrics = {}
        for split, data in (("val", self.val_data), ("test", self.test_data)):
            loss = self._mean_loss(data)
            metrics.update({f"{split}_loss": loss, f"{split}_ppl": math.exp(loss)})
        return metrics

    def _mean_loss(self, data: torch.Tensor) -> float:
        """Token mean of the cross-entropy over the whole stream, in bptt chunks with the hidden state carried."""
        hidden = self.model.init_hidden(data.size(1))
        total = 0.0  # a device tensor after the first chunk: one host sync at the end
        for start in range(0, data.size(0) - 1, BPTT):
            tokens, targets = get_batch(data, start, BPTT)
            output, hidden, _ = self.model(tokens, hidden)
            logits = self.model.decoder(output)
            total = total + F.cross_entropy(logits.view(-1, logits.size(-1)), targets, reduction="sum")
        return float(total) / ((data.size(0) - 1) * data.size(1))

    # -- the plateau rule ----------------------------------------------------------------------------------------
    @staticmethod
    def plateau(rows: list[dict[str, Any]]) -> bool:
        """The reference's rule (its --nonmono): the test loss of the last epoch is worse than the best of all epochs
        before the last NONMONO, with more than NONMONO epochs before it."""
        earlier = [row["test_loss"] for row in rows[:-1]]
        return len(earlier) > NONMONO and rows[-1]["test_loss"] > min(earlier[:-NONMONO])
