"""Tokens per second of one PTB training step at paper size: our 3-layer AWD-LSTM (DropConnect on weight_hh through
nn.LSTM's own kernel) against a plain stack of the same nn.LSTMs without weight drop, in one run.

Both: vocabulary 10,000, embedding 400, hidden 1150, batch 20, sequence 70, train mode, forward + cross-entropy +
backward (the optimizer step is the same for both and left out). Goal: ours <= 1.3x the plain stack's time, i.e.
the DropConnect does not cost a second LSTM.
Run: .venv/bin/python benchmarks/bench_ptb.py [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from adala_bench.models.awd_lstm import AWDLSTM

NTOKEN, EMSIZE, NHID, LAYERS, BATCH, BPTT = 10_000, 400, 1150, 3, 20, 70
WARMUP, REPEATS, GOAL = 1, 3, 1.3


class PlainLSTMStack(nn.Module):
    """The same shapes as AWDLSTM(3 layers): embedding, three one-layer nn.LSTMs, tied decoder; no dropout of any kind."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Embedding(NTOKEN, EMSIZE)
        sizes = [EMSIZE, NHID, NHID, EMSIZE]
        self.rnns = nn.ModuleList(nn.LSTM(sizes[i], sizes[i + 1]) for i in range(LAYERS))
        self.decoder = nn.Linear(EMSIZE, NTOKEN)
        self.decoder.weight = self.encoder.weight

    def forward(self, tokens, hidden):
        output = self.encoder(tokens)
        for layer, rnn in enumerate(self.rnns):
            output, _ = rnn(output, hidden[layer])
        return output


def hidden_state(device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    sizes = [NHID, NHID, EMSIZE]
    return [(torch.zeros(1, BATCH, n, device=device), torch.zeros(1, BATCH, n, device=device)) for n in sizes]


def seconds_per_step(model: nn.Module, decode, device) -> float:
    """Best wall time of REPEATS training steps (forward, loss, backward) after WARMUP."""
    tokens = torch.randint(NTOKEN, (BPTT, BATCH), device=device)
    targets = torch.randint(NTOKEN, (BPTT * BATCH,), device=device)
    times = []
    for i in range(WARMUP + REPEATS):
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        output = decode(model, tokens)
        F.cross_entropy(model.decoder(output).view(-1, NTOKEN), targets).backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= WARMUP:
            times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    device = torch.device(parser.parse_args().device)
    torch.manual_seed(0)
    ours = AWDLSTM(NTOKEN, LAYERS, EMSIZE, NHID).to(device).train()
    plain = PlainLSTMStack().to(device).train()
    ours_s = seconds_per_step(ours, lambda m, t: m(t, hidden_state(device))[0], device)
    plain_s = seconds_per_step(plain, lambda m, t: m(t, hidden_state(device)), device)
    tokens = BPTT * BATCH
    ratio = ours_s / plain_s
    print(f"ptb: 3-layer AWD-LSTM training step {tokens / ours_s:,.0f} tokens/s vs plain nn.LSTM stack "
          f"{tokens / plain_s:,.0f} tokens/s ({device}, batch {BATCH}, bptt {BPTT}, best of {REPEATS}, "
          f"{torch.get_num_threads()} threads): time ratio {ratio:.2f} (goal <= {GOAL})")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
