"""AWD-LSTM language model of PROTOCOL.md §2: AWD-LSTM's `RNNModel('LSTM', ..., tie_weights=True)` as run for PTB.

Embedding dropout, locked (variational) dropout and DropConnect on each layer's recurrent matrix, separate one-layer
`nn.LSTM`s whose last one is `emsize` wide, and a decoder tied to the embedding. The reference's WeightDrop never
lets a gradient reach the recurrent matrices (PROTOCOL.md §2, "WeightDrop caveat"); `train_recurrent=False`, the
default, keeps that, and `train_recurrent=True` gives the DropConnect the paper describes.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

# What cuDNN says, on every call, about weights that are not one flat buffer: the dropped matrix never is.
_NONCONTIGUOUS_WARNING = "RNN module weights are not part of single contiguous chunk of memory"


class WeightDropLSTM(nn.LSTM):
    """A one-layer nn.LSTM with DropConnect on `weight_hh_l0`, as AWD-LSTM's WeightDrop applies it.

    The matrix is kept as the parameter `weight_hh_l0_raw`; each forward drops it (p=`wdrop`, in train mode only)
    and runs nn.LSTM's own fused kernel (cuDNN on a GPU) with the dropped copy in its place. With
    `train_recurrent=False` the copy is made from a detached raw matrix, so, as in the reference, the raw matrix is
    masked but never receives a gradient. With wdrop=0 the reference wraps nothing and the matrix trains.
    """

    def __init__(self, input_size: int, hidden_size: int, wdrop: float, train_recurrent: bool = False):
        super().__init__(input_size, hidden_size)  # PyTorch's default init, as in the reference
        raw = self.weight_hh_l0
        del self._parameters["weight_hh_l0"]
        self.weight_hh_l0_raw = nn.Parameter(raw.detach())
        # forward points this plain attribute at the dropped matrix, and nn.LSTM's __setattr__ puts it in the weight
        # list its kernel reads. Re-reading that list now forgets the old parameter, so nn.LSTM never takes the
        # per-forward copy for a changed weight and re-flattens its weights (on a GPU) on every call.
        self.weight_hh_l0 = None
        self._init_flat_weights()
        self.wdrop = wdrop
        self.train_recurrent = train_recurrent or wdrop == 0

    def forward(self, input: torch.Tensor, hx=None):
        """The layer in fp32, outside any autocast, whatever the device: on CUDA, autocast would hand nn.LSTM's
        cuDNN kernel (`_cudnn_rnn`) fp16 inputs whatever dtype it was given, with no loss scaling, and the carried
        hidden state would become fp16. The output and the new (h, c) are fp32; the caller's autocast resumes after."""
        raw = self.weight_hh_l0_raw if self.train_recurrent else self.weight_hh_l0_raw.detach()
        dropped = F.dropout(raw, self.wdrop, self.training)
        if isinstance(dropped, nn.Parameter):  # eval mode or p=0 hand the input back; nn.Module would register it
            dropped = dropped.view_as(dropped)
        self.weight_hh_l0 = dropped
        try:
            with warnings.catch_warnings(), torch.autocast(input.device.type, enabled=False):
                warnings.filterwarnings("ignore", message=_NONCONTIGUOUS_WARNING, category=UserWarning)
                return super().forward(input.float(), None if hx is None else tuple(h.float() for h in hx))
        finally:
            self.weight_hh_l0 = None  # hold no graph between calls (deepcopy and pickling need that)


class AWDLSTM(nn.Module):
    """Tied-weight AWD-LSTM; forward returns the dropped output, the new hidden state and the last raw output.

    The caller decodes with `model.decoder(output)` and adds AR, alpha * output.pow(2).mean(), and TAR,
    beta * (raw_last[1:] - raw_last[:-1]).pow(2).mean(), as the reference's train() does.
    """

    def __init__(self, ntoken: int, nlayers: int, emsize: int = 400, nhid: int = 1150, dropout: float = 0.4,
                 dropouth: float = 0.25, dropouti: float = 0.4, dropoute: float = 0.1, wdrop: float = 0.5,
                 train_recurrent: bool = False):
        super().__init__()
        _check_sizes(ntoken=ntoken, nlayers=nlayers, emsize=emsize, nhid=nhid)
        _check_probabilities(dropout=dropout, dropouth=dropouth, dropouti=dropouti, dropoute=dropoute, wdrop=wdrop)
        # Build order and the discarded Linear(nhid, ntoken) weight follow the reference's RNNModel, so one seed
        # draws the same initial weights as it does.
        self.encoder = nn.Embedding(ntoken, emsize)
        self.rnns = nn.ModuleList(
            WeightDropLSTM(emsize if layer == 0 else nhid, emsize if layer == nlayers - 1 else nhid, wdrop,
                           train_recurrent)
            for layer in range(nlayers))
        self.decoder = nn.Linear(nhid, ntoken)
        self.decoder.weight = self.encoder.weight
        self.decoder.in_features = emsize
        with torch.no_grad():
            self.encoder.weight.uniform_(-0.1, 0.1)
            self.decoder.bias.zero_()
            self.decoder.weight.uniform_(-0.1, 0.1)  # the same matrix again, as the reference's init_weights
        self.ntoken, self.nlayers, self.emsize, self.nhid = ntoken, nlayers, emsize, nhid
        self.dropout, self.dropouth, self.dropouti, self.dropoute = dropout, dropouth, dropouti, dropoute
        self.train_recurrent = train_recurrent

    def forward(self, tokens: torch.Tensor, hidden: list[tuple[torch.Tensor, torch.Tensor]]):
        """tokens [T, B] -> (output [T, B, emsize] after the final dropout, new hidden, raw_last [T, B, emsize])."""
        output = embedded_dropout(self.encoder.weight, tokens, self.dropoute if self.training else 0.0)
        output = locked_dropout(output, self.dropouti, self.training)
        new_hidden = []
        for layer, rnn in enumerate(self.rnns):
            raw, state = rnn(output, hidden[layer])
            new_hidden.append(state)
            last = layer == self.nlayers - 1
            output = locked_dropout(raw, self.dropout if last else self.dropouth, self.training)
        return output, new_hidden, raw

    def init_hidden(self, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Zero (h, c) per layer, [1, batch_size, layer width], on the model's device and dtype."""
        weight = self.encoder.weight
        return [(weight.new_zeros(1, batch_size, rnn.hidden_size), weight.new_zeros(1, batch_size, rnn.hidden_size))
                for rnn in self.rnns]


def embedded_dropout(weight: torch.Tensor, tokens: torch.Tensor, p: float) -> torch.Tensor:
    """Embedding lookup with whole vocabulary rows dropped with probability p and the rest scaled by 1/(1-p).

    As AWD-LSTM's embedded_dropout, the lookup passes padding_idx=-1, which F.embedding reads as the last
    vocabulary row: that row gets no gradient through the lookup (only through the tied decoder).
    """
    if p:
        mask = weight.new_empty((weight.size(0), 1)).bernoulli_(1 - p).expand_as(weight) / (1 - p)
        weight = mask * weight
    return F.embedding(tokens, weight, padding_idx=-1)


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout of x [T, B, H] with one mask per (batch, unit), the same at every time step."""
    if not training or not p:
        return x
    mask = x.new_empty((1, x.size(1), x.size(2))).bernoulli_(1 - p) / (1 - p)
    return mask.expand_as(x) * x


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_probabilities(**probabilities: float) -> None:
    for name, value in probabilities.items():
        if not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1), got {value!r}")
