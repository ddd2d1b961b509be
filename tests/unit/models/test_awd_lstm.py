"""models/awd_lstm.py: the AWD-LSTM of PROTOCOL.md §3 against the reference: parameter counts, tied and initialised
decoder, initial weights per seed, shapes and hidden state, weight drop (DropConnect) on the recurrent matrices as
the reference leaves them or trained on request, forward and gradients against a computation written here, no state
left between calls, a tiny model learning the synthetic corpus, and each LSTM layer in fp32 outside autocast."""

from __future__ import annotations

import copy
import io
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from adala_bench.data.ptb import batchify, get_batch, load_ptb, sequence_lengths, write_synthetic_ptb
from adala_bench.models.awd_lstm import AWDLSTM

# PROTOCOL.md §2: 5.29M / 13.63M / 24.22M. Exactly: the 10000 x 400 embedding (shared with the decoder), the
# decoder bias, and per layer 4h x (in + h) weights (the recurrent one as weight_hh_l0_raw) plus two 4h biases.
FULL_SIZE = {1: (5_293_200, 6), 2: (13_632_400, 10), 3: (24_221_600, 14)}
PROTOCOL_MILLIONS = {1: 5.29, 2: 13.63, 3: 24.22}
LAYER_SIZES = {1: [(400, 400)], 2: [(400, 1150), (1150, 400)], 3: [(400, 1150), (1150, 1150), (1150, 400)]}

NTOKEN, EMSIZE, NHID = 50, 8, 12
NO_DROPOUT = dict(dropout=0.0, dropouth=0.0, dropouti=0.0, dropoute=0.0)


def small(nlayers=2, **kwargs) -> AWDLSTM:
    return AWDLSTM(NTOKEN, nlayers, emsize=EMSIZE, nhid=NHID, **kwargs)


def tokens(steps=6, batch=3, seed=0) -> torch.Tensor:
    return torch.randint(0, NTOKEN, (steps, batch), generator=torch.Generator().manual_seed(seed))


def lm_loss(model, output, raw_last, targets):
    """The reference's training loss: cross-entropy on the tied decoder, plus AR and TAR."""
    ce = F.cross_entropy(model.decoder(output).view(-1, model.ntoken), targets)
    return ce + 2 * output.pow(2).mean() + (raw_last[1:] - raw_last[:-1]).pow(2).mean()


@pytest.mark.parametrize("nlayers", (1, 2, 3))
def test_full_size_parameter_counts_match_the_protocol(nlayers):
    model = AWDLSTM(10_000, nlayers)
    parameters = list(model.parameters())
    count = sum(p.numel() for p in parameters)
    assert (count, len(parameters)) == FULL_SIZE[nlayers]
    assert round(count / 1e6, 2) == PROTOCOL_MILLIONS[nlayers]
    assert [(rnn.input_size, rnn.hidden_size) for rnn in model.rnns] == LAYER_SIZES[nlayers]
    expected = 10_000 * 400 + 10_000 + sum(4 * h * (i + h) + 2 * 4 * h for i, h in LAYER_SIZES[nlayers])
    assert count == expected


def test_decoder_is_tied_and_initialised_as_the_reference():
    torch.manual_seed(0)
    model = small()
    assert model.decoder.weight is model.encoder.weight
    assert (model.decoder.in_features, model.decoder.out_features) == (EMSIZE, NTOKEN)
    assert torch.count_nonzero(model.decoder.bias) == 0
    assert model.encoder.weight.abs().max() <= 0.1
    assert [name for name, _ in model.named_parameters()] == [
        "encoder.weight",
        "rnns.0.weight_ih_l0", "rnns.0.bias_ih_l0", "rnns.0.bias_hh_l0", "rnns.0.weight_hh_l0_raw",
        "rnns.1.weight_ih_l0", "rnns.1.bias_ih_l0", "rnns.1.bias_hh_l0", "rnns.1.weight_hh_l0_raw",
        "decoder.bias"]


def test_one_seed_gives_the_reference_models_initial_weights():
    """Built in the reference's order (embedding, LSTMs, Linear(nhid, ntoken), two uniform draws on the tie)."""
    torch.manual_seed(7)
    model = small(nlayers=3)
    torch.manual_seed(7)
    encoder = nn.Embedding(NTOKEN, EMSIZE)
    lstms = [nn.LSTM(EMSIZE if l == 0 else NHID, NHID if l != 2 else EMSIZE, 1, dropout=0) for l in range(3)]
    decoder = nn.Linear(NHID, NTOKEN)
    decoder.weight = encoder.weight
    encoder.weight.data.uniform_(-0.1, 0.1)
    decoder.bias.data.fill_(0)
    decoder.weight.data.uniform_(-0.1, 0.1)
    assert torch.equal(model.encoder.weight, encoder.weight)
    for ours, theirs in zip(model.rnns, lstms):
        assert torch.equal(ours.weight_hh_l0_raw, theirs.weight_hh_l0)
        for name in ("weight_ih_l0", "bias_ih_l0", "bias_hh_l0"):
            assert torch.equal(getattr(ours, name), getattr(theirs, name))


def test_shapes_and_hidden_state():
    model = small(nlayers=3)
    hidden = model.init_hidden(3)
    assert [(h.shape, c.shape) for h, c in hidden] == [((1, 3, NHID),) * 2, ((1, 3, NHID),) * 2,
                                                       ((1, 3, EMSIZE),) * 2]
    assert all(not h.any() and not c.any() for h, c in hidden)
    output, new_hidden, raw_last = model(tokens(), hidden)
    assert output.shape == raw_last.shape == (6, 3, EMSIZE)
    assert [(h.shape, c.shape) for h, c in new_hidden] == [(h.shape, c.shape) for h, c in hidden]
    assert model.decoder(output).shape == (6, 3, NTOKEN)
    assert model.double().init_hidden(2)[0][0].dtype == torch.float64


def test_by_default_the_recurrent_matrices_are_masked_but_never_trained():
    """PROTOCOL.md §2, WeightDrop caveat: no gradient reaches weight_hh_l0_raw; every other weight trains."""
    torch.manual_seed(0)
    model = small()
    output, _, raw_last = model(tokens(), model.init_hidden(3))
    lm_loss(model, output, raw_last, tokens(seed=1).view(-1)).backward()
    for name, parameter in model.named_parameters():
        if name.endswith("weight_hh_l0_raw"):
            assert parameter.grad is None, name
        else:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_the_dropconnect_mask_is_drawn_per_forward_in_train_mode_only():
    torch.manual_seed(0)
    model = small(**NO_DROPOUT)  # only the weight drop is random
    x, hidden = tokens(), model.init_hidden(3)
    first, second = model(x, hidden)[0], model(x, hidden)[0]
    assert torch.equal(first[0], second[0])  # step 0 sees a zero hidden state: the recurrent matrix plays no part
    assert not torch.allclose(first[1:], second[1:])
    model.eval()
    evaluated = model(x, hidden)[0]
    assert torch.equal(evaluated, model(x, hidden)[0])
    plain = [nn.LSTM(EMSIZE, NHID), nn.LSTM(NHID, EMSIZE)]
    for lstm, ours in zip(plain, model.rnns):
        lstm.load_state_dict({**{k: v for k, v in ours.state_dict().items() if k != "weight_hh_l0_raw"},
                              "weight_hh_l0": ours.weight_hh_l0_raw})
    expected = F.embedding(x, model.encoder.weight)
    for lstm, (h, c) in zip(plain, hidden):
        expected = lstm(expected, (h, c))[0]
    torch.testing.assert_close(evaluated, expected)  # eval: the raw matrix, unscaled


def test_train_recurrent_gives_real_dropconnect():
    torch.manual_seed(0)
    model = small(train_recurrent=True)
    output, _, raw_last = model(tokens(), model.init_hidden(3))
    lm_loss(model, output, raw_last, tokens(seed=1).view(-1)).backward()
    for rnn in model.rnns:
        grad = rnn.weight_hh_l0_raw.grad
        assert grad is not None and grad.abs().sum() > 0
        assert 0.3 < (grad == 0).float().mean() < 0.7  # dropped entries get no gradient


def test_without_weight_drop_the_recurrent_matrices_train_as_in_the_reference():
    model = small(wdrop=0.0)  # the reference wraps nothing in WeightDrop then
    output, _, raw_last = model(tokens(), model.init_hidden(3))
    output.sum().backward()
    assert all(rnn.weight_hh_l0_raw.grad is not None for rnn in model.rnns)


def reference_forward(model: AWDLSTM, x, hidden, seed: int) -> SimpleNamespace:
    """AWD-LSTM's RNNModel.forward, with its embedded_dropout, LockedDropout and WeightDrop, on copies of `model`.

    WeightDrop sets `weight_hh_l0 = Parameter(dropout(raw))` on a plain nn.LSTM before each call: a new leaf.
    """
    encoder = nn.Embedding(model.ntoken, model.emsize)
    lstms = [nn.LSTM(rnn.input_size, rnn.hidden_size) for rnn in model.rnns]
    bias = nn.Parameter(model.decoder.bias.detach().clone())
    with torch.no_grad():
        encoder.weight.copy_(model.encoder.weight)
        for lstm, rnn in zip(lstms, model.rnns):
            for name in ("weight_ih_l0", "bias_ih_l0", "bias_hh_l0"):
                getattr(lstm, name).copy_(getattr(rnn, name))

    def lockdrop(h, p):
        mask = h.data.new(1, h.size(1), h.size(2)).bernoulli_(1 - p) / (1 - p)
        return mask.expand_as(h) * h

    torch.manual_seed(seed)  # after building the copies, which draws from the generator too
    p = model.dropoute
    mask = encoder.weight.data.new().resize_((model.ntoken, 1)).bernoulli_(1 - p).expand_as(encoder.weight) / (1 - p)
    output = lockdrop(F.embedding(x, mask * encoder.weight, -1), model.dropouti)
    leaves = []
    for layer, (lstm, rnn) in enumerate(zip(lstms, model.rnns)):
        lstm.weight_hh_l0 = nn.Parameter(F.dropout(rnn.weight_hh_l0_raw, p=rnn.wdrop, training=True))
        leaves.append(lstm.weight_hh_l0)
        raw_output, _ = lstm(output, hidden[layer])
        output = lockdrop(raw_output, model.dropouth if layer < model.nlayers - 1 else model.dropout)
    logits = F.linear(output, encoder.weight, bias)
    return SimpleNamespace(output=output, raw_last=raw_output, logits=logits, encoder=encoder, lstms=lstms,
                           bias=bias, leaves=leaves)


@pytest.mark.parametrize("train_recurrent", (False, True))
def test_forward_and_gradients_equal_the_reference_computation(train_recurrent):
    torch.manual_seed(0)
    model = small(nlayers=3, train_recurrent=train_recurrent)  # every dropout at its protocol value
    x, targets, hidden = tokens(), tokens(seed=1).view(-1), model.init_hidden(3)
    reference = reference_forward(model, x, hidden, seed=11)
    torch.manual_seed(11)
    output, _, raw_last = model(x, hidden)
    assert torch.equal(output, reference.output) and torch.equal(raw_last, reference.raw_last)

    lm_loss(model, output, raw_last, targets).backward()
    (F.cross_entropy(reference.logits.view(-1, NTOKEN), targets) + 2 * reference.output.pow(2).mean()
     + (reference.raw_last[1:] - reference.raw_last[:-1]).pow(2).mean()).backward()
    torch.testing.assert_close(model.encoder.weight.grad, reference.encoder.weight.grad)
    torch.testing.assert_close(model.decoder.bias.grad, reference.bias.grad)
    for rnn, lstm, leaf in zip(model.rnns, reference.lstms, reference.leaves):
        for name in ("weight_ih_l0", "bias_ih_l0", "bias_hh_l0"):
            torch.testing.assert_close(getattr(rnn, name).grad, getattr(lstm, name).grad)
        if train_recurrent:  # the leaf's gradient, carried back through the mask
            kept = (leaf != 0).to(leaf.dtype) / (1 - rnn.wdrop)
            torch.testing.assert_close(rnn.weight_hh_l0_raw.grad, leaf.grad * kept)
        else:
            assert rnn.weight_hh_l0_raw.grad is None


def test_the_last_vocabulary_row_gets_no_gradient_through_the_lookup():
    """The reference's embedded_dropout passes padding_idx=-1, which F.embedding reads as row ntoken - 1."""
    model = small(**NO_DROPOUT)
    x = torch.tensor([[0, NTOKEN - 1], [NTOKEN - 1, 0]])
    output, _, _ = model(x, model.init_hidden(2))
    output.sum().backward()  # through the lookup only, not the tied decoder
    grad = model.encoder.weight.grad
    assert grad[0].abs().sum() > 0 and not grad[NTOKEN - 1].any()


def test_no_state_is_left_behind_between_calls():
    model = small()
    x, hidden = tokens(), model.init_hidden(3)
    names = [name for name, _ in model.named_parameters()]
    model(x, hidden)
    model.eval()
    model(x, hidden)  # dropout hands a parameter back in eval mode: it must not get registered
    model.train()
    model(x, hidden)
    assert [name for name, _ in model.named_parameters()] == names
    assert all(rnn.weight_hh_l0 is None for rnn in model.rnns)
    clone = copy.deepcopy(model)  # fails if a per-forward tensor with a graph were kept
    torch.save(model, io.BytesIO())
    model.eval(), clone.eval()
    assert torch.equal(model(x, hidden)[0], clone(x, hidden)[0])
    assert set(model.state_dict()) == set(names) | {"decoder.weight"}


def test_a_tiny_model_learns_the_synthetic_corpus(tmp_path):
    """About 30 Adam steps with the reference's loss (AR, TAR), clipping and batch plan."""
    write_synthetic_ptb(tmp_path, n_train_tokens=8_000, n_valid_tokens=100, n_test_tokens=100, vocab_size=50)
    corpus = load_ptb(tmp_path, "synthetic")
    torch.manual_seed(0)
    model = AWDLSTM(len(corpus.vocab), 2, emsize=32, nhid=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03, weight_decay=1.2e-6)
    data = batchify(corpus.train, 10)
    plan = sequence_lengths(len(data), np.random.default_rng(0), bptt=20)[:30]
    hidden, losses = model.init_hidden(10), []
    for start, seq_len in plan:
        inputs, targets = get_batch(data, start, seq_len)
        hidden = [(h.detach(), c.detach()) for h, c in hidden]
        output, hidden, raw_last = model(inputs, hidden)
        ce = F.cross_entropy(model.decoder(output).view(-1, model.ntoken), targets)
        optimizer.zero_grad()
        (ce + 2 * output.pow(2).mean() + (raw_last[1:] - raw_last[:-1]).pow(2).mean()).backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        optimizer.step()
        losses.append(ce.item())
    assert len(losses) == 30
    assert losses[0] == pytest.approx(np.log(50), abs=0.05)  # uniform at the start: the embedding is small
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3


class RecordingVF:
    """torch's _VF, whose `lstm` (the call nn.LSTM makes into its fused kernel: cuDNN's `_cudnn_rnn` on a GPU, whose
    autocast wrapper casts to fp16) records whether autocast is on for it and the dtypes it is handed."""

    def __init__(self, vf):
        self._vf, self.calls = vf, []

    def __getattr__(self, name):
        return getattr(self._vf, name)

    def lstm(self, input, hx, weights, *args):
        self.calls.append((torch.is_autocast_enabled(input.device.type), {t.dtype for t in (input, *hx, *weights)}))
        return self._vf.lstm(input, hx, weights, *args)


@pytest.fixture
def lstm_kernel(monkeypatch):
    import torch.nn.modules.rnn as rnn

    recording = RecordingVF(rnn._VF)
    monkeypatch.setattr(rnn, "_VF", recording)
    return recording


def test_each_lstm_layer_runs_in_fp32_outside_autocast(lstm_kernel):
    """profile=fast (PROTOCOL §10.2): the kernel gets fp32 with autocast off, under the caller's bf16 autocast, and
    gives the fp32 forward's numbers exactly; without this, autocast reaches cuDNN's LSTM, which runs in fp16."""
    from adala_bench.models.awd_lstm import WeightDropLSTM

    torch.manual_seed(0)
    layer = WeightDropLSTM(6, 5, wdrop=0.5).eval()
    inputs, state = torch.randn(4, 3, 6), (torch.randn(1, 3, 5), torch.randn(1, 3, 5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, (h, c) = layer(inputs.bfloat16(), tuple(t.bfloat16() for t in state))
    assert lstm_kernel.calls == [(False, {torch.float32})]
    assert output.dtype == h.dtype == c.dtype == torch.float32
    reference, (h_ref, c_ref) = layer(inputs.bfloat16().float(), tuple(t.bfloat16().float() for t in state))
    assert torch.equal(output, reference) and torch.equal(h, h_ref) and torch.equal(c, c_ref)


def test_under_autocast_the_carried_state_stays_fp32_and_the_decoder_computes_in_bf16(lstm_kernel):
    """The embedding and the tied decoder stay under the trainer's autocast; the LSTMs and the hidden state they
    carry from batch to batch do not."""
    torch.manual_seed(0)
    model = small(nlayers=3)
    hidden = model.init_hidden(3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for _ in range(2):  # the second forward starts from the first one's carried state
            output, hidden, raw_last = model(tokens(), hidden)
            logits = model.decoder(output)
    assert [call[0] for call in lstm_kernel.calls] == [False] * 6 and {d for _, ds in lstm_kernel.calls for d in ds} \
        == {torch.float32}
    assert {t.dtype for state in hidden for t in state} == {output.dtype, raw_last.dtype} == {torch.float32}
    assert logits.dtype == torch.bfloat16
