"""The `cnn` and `charlm` problems: registered for compare, seeded, their losses fall, bits per character is
what it claims, a missing text file is a clear error, and both models equal the same model in torch (float64)."""
import math

import numpy as np
import pytest
import torch

from minima import init, optim
from minima.autograd import Tensor
from minima.compare import Trial, run_trial
from minima.problems import PROBLEMS, digits
from minima.problems_nets import (CharTransformer, DigitsCNN, VOCAB, VOCAB_SIZE, OTHER, TEXT_ENV, bits_per_char,
                                  char_data, charlm, charlm_text, cnn, decode, encode, generate, next_char_loss)
from minima.bench_models import torch_twin


def test_registered():
    assert PROBLEMS['cnn'] is cnn and PROBLEMS['charlm'] is charlm
    assert cnn.uses_root and not charlm.uses_root
    assert cnn.metric_name == 'accuracy' and charlm.metric_name == 'bits/char' and not charlm.higher_is_better


def test_cnn_data_is_the_mlp_digits():
    (x, y), (xv, yv) = cnn.data()
    (x0, y0), (xv0, yv0) = digits()
    np.testing.assert_array_equal(y, y0); np.testing.assert_array_equal(yv, yv0)
    assert x.shape == x0.shape == (1438, 64) and x.dtype == np.float32
    np.testing.assert_allclose(x, (x0 - x0.mean()) / x0.std(), rtol=1e-5, atol=1e-5)


def train(problem, steps, lr, batch=32):
    train_arrays, val = problem.data()
    init.manual_seed(0)
    model = problem.model(train_arrays)
    opt = optim.Adam(model.parameters(), lr=lr)
    order = np.random.default_rng(0).permutation(len(train_arrays[0]))
    losses = []
    for i in range(steps):
        b = order[i * batch:(i + 1) * batch]
        opt.zero_grad()
        loss = problem.loss(model, *(Tensor(a[b]) for a in train_arrays))
        loss.backward(); opt.step()
        losses.append(loss.item())
    return model, losses, val


def test_cnn_loss_falls_and_accuracy_rises():
    model, losses, val = train(cnn, 30, 3e-3)
    before = 1 / 10
    assert np.mean(losses[-5:]) < 0.6 * losses[0], losses
    _, accuracy = cnn.evaluate(model, val)
    assert accuracy > 3 * before, accuracy


def test_charlm_loss_falls():
    model, losses, val = train(charlm, 8, 3e-3)
    assert losses[0] > math.log(VOCAB_SIZE) - 0.5                       # about a uniform guess at first
    assert np.mean(losses[-3:]) < losses[0] - 1.0, losses              # then more than a nat better
    assert charlm.metric(model, *val) < losses[0] / math.log(2)


def test_same_seed_same_model():
    for problem in (cnn, charlm):
        train_arrays, _ = problem.data()
        init.manual_seed(3); a = problem.model(train_arrays)
        init.manual_seed(3); b = problem.model(train_arrays)
        init.manual_seed(4); c = problem.model(train_arrays)
        pa, pb, pc = (dict(m.named_parameters()) for m in (a, b, c))
        assert all(np.array_equal(pa[k].data, pb[k].data) for k in pa)
        assert not all(np.array_equal(pa[k].data, pc[k].data) for k in pa)


def test_bits_per_char_by_hand():
    init.manual_seed(1)
    model = CharTransformer(context=8, width=8, heads=2, layers=1).to(np.float64)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, VOCAB_SIZE, (3, 8)), rng.integers(0, VOCAB_SIZE, (3, 8))
    logits = model(x).data.reshape(-1, VOCAB_SIZE)
    log_p = logits - logits.max(1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(1, keepdims=True))
    nats = -log_p[np.arange(24), y.reshape(-1)].mean()
    assert abs(bits_per_char(model, x, y) - nats / math.log(2)) < 1e-12
    assert abs(next_char_loss(model, Tensor(x), Tensor(y)).item() - nats) < 1e-12
    model.head.weight.data[...] = 0; model.head.bias.data[...] = 0     # uniform prediction: log2(98) bits
    assert abs(bits_per_char(model, x, y) - math.log2(98)) < 1e-12


def test_vocabulary():
    assert VOCAB_SIZE == 98 and len(set(VOCAB)) == 97
    text = 'x = "é"\n\tif a:\x00'
    tokens = encode(text)
    assert tokens.dtype == np.int64 and len(tokens) == len(text)
    assert decode(tokens) == text.replace('é', '\ufffd').replace('\x00', '\ufffd')
    assert (tokens == OTHER).sum() == 2


def test_user_text_file(tmp_path, monkeypatch):
    text = ''.join(f'line {i}: the quick brown fox\n' for i in range(200))
    f = tmp_path / 'corpus.txt'; f.write_text(text, encoding='utf-8')
    (x, y), (xv, yv) = char_data(str(f))
    assert x.shape[1] == 64 and decode(x[0]) == text[:64] and decode(y[0]) == text[1:65]
    assert len(x) == int(0.9 * len(text)) // 64 and len(xv) >= 1
    monkeypatch.setenv(TEXT_ENV, str(f))                               # compare's workers read the variable
    assert charlm_text() == text
    np.testing.assert_array_equal(charlm.data()[0][0], x)


def test_missing_text_file(tmp_path, monkeypatch):
    missing = str(tmp_path / 'nope.txt')
    with pytest.raises(FileNotFoundError, match=r"charlm: text file '.*nope.txt' not found") as e: char_data(missing)
    assert '\n' not in str(e.value)
    monkeypatch.setenv(TEXT_ENV, missing)
    with pytest.raises(FileNotFoundError, match='not found'): charlm.data()
    record = run_trial(Trial('charlm', 'adam', 1e-3, 0, steps=1))   # compare records it as a failed trial
    assert record['status'] == 'failed' and record['error'].startswith('FileNotFoundError: charlm: text file')


def test_text_too_short(tmp_path):
    f = tmp_path / 'short.txt'; f.write_text('print(1)\n' * 10)
    with pytest.raises(ValueError, match='needs at least'): char_data(str(f))


def test_compare_runs_both():
    for name in ('cnn', 'charlm'):
        record = run_trial(Trial(name, 'adam', 3e-3, 0, steps=3))
        assert record['status'] == 'ok', record['error']
        assert len(record['losses']) == 3 and record['metric'] is not None and math.isfinite(record['val_loss'])


def test_generate():
    init.manual_seed(0)
    model = CharTransformer(context=8, width=8, heads=2, layers=1)
    sample = generate(model, 'def f(x):', length=20, seed=2)   # a prompt longer than the context is cut
    assert len(sample) == 20 and sample == generate(model, 'def f(x):', length=20, seed=2)
    with pytest.raises(ValueError, match='prompt'): generate(model, '')
    with pytest.raises(ValueError, match='temperature'): generate(model, 'a', temperature=0)


def relative_error(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


@pytest.mark.parametrize('make, batch', [
    (lambda: DigitsCNN(), lambda rng: (rng.normal(size=(5, 64)), rng.integers(0, 10, 5))),
    (lambda: DigitsCNN(side=12, classes=4, channels=(3, 5)), lambda rng: (rng.normal(size=(3, 144)), rng.integers(0, 4, 3))),
    (lambda: CharTransformer(), lambda rng: (rng.integers(0, 98, (3, 64)), rng.integers(0, 98, (3, 64)))),
    (lambda: CharTransformer(context=16, width=24, heads=3, layers=3), lambda rng: (rng.integers(0, 98, (2, 11)), rng.integers(0, 98, (2, 11)))),
], ids=['cnn', 'cnn-12px', 'charlm', 'charlm-3-blocks-short'])
def test_forward_and_gradients_equal_torch(make, batch):
    init.manual_seed(0)
    model = make().to(np.float64)
    twin = torch_twin(model)
    x, y = batch(np.random.default_rng(0))
    logits = model(Tensor(x))
    loss = next_char_loss(model, Tensor(x), Tensor(y))
    loss.backward()
    t_logits = twin(torch.from_numpy(x))
    t_loss = torch.nn.functional.cross_entropy(t_logits.reshape(-1, t_logits.shape[-1]), torch.from_numpy(y).reshape(-1))
    t_loss.backward()
    assert logits.data.dtype == np.float64 and t_logits.dtype == torch.float64
    assert relative_error(logits.data, t_logits.detach().numpy()) <= 1e-10
    assert abs(loss.item() - t_loss.item()) <= 1e-10 * abs(t_loss.item())
    t_params = dict(twin.named_parameters())
    assert set(t_params) == {k for k, _ in model.named_parameters()}
    for name, p in model.named_parameters():
        assert relative_error(p.grad, t_params[name].grad.numpy()) <= 1e-10, name
