"""minima.nn.functional against torch.nn.functional in float64: outputs and the gradients of every
input (relative error <= 1e-10) over seeded random shapes, strides, paddings and dilations."""
import numpy as np
import pytest

from minima.autograd import Tensor
import minima.autograd as ag
import minima.nn.functional as F

torch = pytest.importorskip('torch')
TF = torch.nn.functional
TOL = 1e-10


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300) if b.size else 0.0


def compare(mi_fn, th_fn, *arrays, grad_of=None, seed=0):
    """Run both functions on copies of `arrays` (float arrays get gradients), backpropagate the same
    random upstream gradient, and check the outputs and every input gradient."""
    grad_of = [a.dtype.kind == 'f' for a in arrays] if grad_of is None else grad_of
    mi = [Tensor(a.copy(), requires_grad=g) for a, g in zip(arrays, grad_of)]
    th = [torch.tensor(a, requires_grad=bool(g)) for a, g in zip(arrays, grad_of)]
    ym, yt = mi_fn(*mi), th_fn(*th)
    assert rel_err(ym.data, yt.detach().numpy()) <= TOL
    up = np.random.default_rng(seed).normal(size=ym.shape)
    ym.backward(up); yt.backward(torch.from_numpy(up))
    for m, t, g in zip(mi, th, grad_of):
        if g: assert rel_err(m.grad, t.grad.numpy()) <= TOL
    return ym


def conv_cases(n, seed):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        k = tuple(rng.integers(1, 4, 2)); s = tuple(rng.integers(1, 3, 2)); d = tuple(rng.integers(1, 3, 2))
        p = tuple(int(rng.integers(0, 3)) for _ in range(2))
        h, w = (int(rng.integers(d[i] * (k[i] - 1) + 1, 9)) for i in range(2))
        yield dict(N=int(rng.integers(1, 4)), C=int(rng.integers(1, 4)), O=int(rng.integers(1, 5)), H=h, W=w, k=k, s=s, p=p, d=d)


@pytest.mark.parametrize('case', list(conv_cases(25, 0)), ids=str)
def test_conv2d(case):
    c = case
    rng = np.random.default_rng(1)
    x = rng.normal(size=(c['N'], c['C'], c['H'], c['W']))
    w = rng.normal(size=(c['O'], c['C']) + c['k'])
    b = rng.normal(size=c['O'])
    kw = dict(stride=c['s'], padding=c['p'], dilation=c['d'])
    compare(lambda x, w, b: F.conv2d(x, w, b, **kw), lambda x, w, b: TF.conv2d(x, w, b, **kw), x, w, b)
    compare(lambda x, w: F.conv2d(x, w, **kw), lambda x, w: TF.conv2d(x, w, **kw), x, w)


@pytest.mark.parametrize('padding', ['same', 'valid'])
def test_conv2d_string_padding_and_unbatched(padding):
    rng = np.random.default_rng(2)
    x, w = rng.normal(size=(3, 7, 6)), rng.normal(size=(2, 3, 4, 3))
    compare(lambda x, w: F.conv2d(x, w, padding=padding, dilation=(1, 2)), lambda x, w: TF.conv2d(x, w, padding=padding, dilation=(1, 2)), x, w)


def pool_cases(n, seed):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        k = tuple(int(v) for v in rng.integers(1, 4, 2)); s = tuple(int(v) for v in rng.integers(1, 4, 2))
        p = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
        yield dict(k=k, s=s, p=p, H=int(rng.integers(k[0], 9)), W=int(rng.integers(k[1], 9)))


@pytest.mark.parametrize('case', list(pool_cases(20, 3)), ids=str)
def test_pools(case):
    c = case
    x = np.random.default_rng(4).normal(size=(2, 3, c['H'], c['W']))
    kw = dict(kernel_size=c['k'], stride=c['s'], padding=c['p'])
    compare(lambda x: F.max_pool2d(x, **kw), lambda x: TF.max_pool2d(x, **kw), x)
    ym, im = F.max_pool2d(Tensor(x), return_indices=True, **kw)
    yt, it = TF.max_pool2d(torch.tensor(x), return_indices=True, **kw)
    np.testing.assert_array_equal(im.data, it.numpy())
    for cip in (True, False):
        compare(lambda x: F.avg_pool2d(x, count_include_pad=cip, **kw), lambda x: TF.avg_pool2d(x, count_include_pad=cip, **kw), x)
    compare(lambda x: F.avg_pool2d(x, divisor_override=3, **kw), lambda x: TF.avg_pool2d(x, divisor_override=3, **kw), x)


def test_max_pool_dilation_and_ties():
    x = np.random.default_rng(5).normal(size=(2, 2, 9, 8))
    compare(lambda x: F.max_pool2d(x, 3, 2, 1, dilation=2), lambda x: TF.max_pool2d(x, 3, 2, 1, dilation=2), x)
    ties = np.round(np.random.default_rng(6).normal(size=(1, 2, 6, 6)))       # many equal maxima
    compare(lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2), ties)


@pytest.mark.parametrize('shape', [(5, 3), (4, 3, 6), (3, 2, 4, 5)])
@pytest.mark.parametrize('training', [True, False])
def test_batch_norm(shape, training):
    rng = np.random.default_rng(7)
    x = rng.normal(size=shape) * 3 + 1
    C = shape[1]
    w, b = rng.normal(size=C), rng.normal(size=C)
    rm_m, rv_m = rng.normal(size=C), rng.uniform(0.5, 2, C)
    rm_t, rv_t = torch.tensor(rm_m), torch.tensor(rv_m)
    rm_m, rv_m = rm_m.copy(), rv_m.copy()
    compare(lambda x, w, b: F.batch_norm(x, rm_m, rv_m, w, b, training=training, momentum=0.3, eps=1e-3),
            lambda x, w, b: TF.batch_norm(x, rm_t, rv_t, w, b, training=training, momentum=0.3, eps=1e-3), x, w, b)
    assert rel_err(rm_m, rm_t.numpy()) <= TOL and rel_err(rv_m, rv_t.numpy()) <= TOL


@pytest.mark.parametrize('shape,norm', [((4, 6), (6,)), ((2, 3, 5), (5,)), ((2, 3, 4, 5), (4, 5))])
def test_layer_norm(shape, norm):
    rng = np.random.default_rng(8)
    x, w, b = rng.normal(size=shape) * 2, rng.normal(size=norm), rng.normal(size=norm)
    compare(lambda x, w, b: F.layer_norm(x, norm, w, b, eps=1e-4), lambda x, w, b: TF.layer_norm(x, norm, w, b, eps=1e-4), x, w, b)
    compare(lambda x: F.layer_norm(x, norm), lambda x: TF.layer_norm(x, norm), x)


@pytest.mark.parametrize('padding_idx', [None, 2])
def test_embedding(padding_idx):
    rng = np.random.default_rng(9)
    idx, w = rng.integers(0, 7, (4, 5)), rng.normal(size=(7, 3))
    compare(lambda i, w: F.embedding(i, w, padding_idx=padding_idx), lambda i, w: TF.embedding(i, w, padding_idx=padding_idx), idx, w)


@pytest.mark.parametrize('approximate', ['none', 'tanh'])
def test_gelu(approximate):
    x = np.random.default_rng(10).normal(size=(6, 7)) * 3
    compare(lambda x: F.gelu(x, approximate=approximate), lambda x: TF.gelu(x, approximate=approximate), x)


@pytest.mark.parametrize('dim', [0, 1, -1])
def test_softmax_and_log_softmax(dim):
    x = np.random.default_rng(11).normal(size=(3, 4, 5)) * 4
    compare(lambda x: F.softmax(x, dim=dim), lambda x: TF.softmax(x, dim=dim), x)
    compare(lambda x: F.log_softmax(x, dim=dim), lambda x: TF.log_softmax(x, dim=dim), x)


def test_elementwise_and_shape_ops():
    rng = np.random.default_rng(12)
    x, y = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    pos = np.abs(x) + 0.1
    compare(ag.sqrt, torch.sqrt, pos)
    compare(ag.erf, torch.erf, x)
    compare(lambda a: a.var(1), lambda a: a.var(1), x)
    compare(lambda a: a.var(), lambda a: a.var(), x)
    mask = x > 0.3
    compare(lambda a: a.masked_fill(mask, -2.0), lambda a: a.masked_fill(torch.from_numpy(mask), -2.0), x)
    compare(lambda a, b: ag.where(mask, a, b), lambda a, b: torch.where(torch.from_numpy(mask), a, b), x, y)
    compare(lambda a, b: ag.cat([a, b, a], dim=1), lambda a, b: torch.cat([a, b, a], dim=1), x, y)
    compare(lambda a, b: ag.stack([a, b], dim=-1), lambda a, b: torch.stack([a, b], dim=-1), x, y)
    compare(lambda a: ag.cat(a.split([1, 3], dim=1)[::-1], 1), lambda a: torch.cat(a.split([1, 3], dim=1)[::-1], 1), x)
    compare(lambda a: ag.cat(a.chunk(2, dim=0), 1), lambda a: torch.cat(a.chunk(2, dim=0), 1), x[:2])
    compare(lambda a: a.transpose(0, 1).unsqueeze(1).flatten(1), lambda a: a.transpose(0, 1).unsqueeze(1).flatten(1), x)
    z = rng.normal(size=(2, 3, 4, 5))
    compare(lambda a: a.transpose(1, 3) * 2, lambda a: a.transpose(1, 3) * 2, z)
    compare(lambda a: a.permute(2, 0, 3, 1), lambda a: a.permute(2, 0, 3, 1), z)
    compare(lambda a: a.sum(dim=(1, 2), keepdim=True), lambda a: a.sum(dim=(1, 2), keepdim=True), z)
    compare(lambda a: a.mean(dim=-1), lambda a: a.mean(dim=-1), z)


@pytest.mark.parametrize('causal', [False, True])
@pytest.mark.parametrize('mask', [None, 'bool', 'float'])
def test_scaled_dot_product_attention(causal, mask):
    if causal and mask is not None: return
    rng = np.random.default_rng(13)
    q, k, v = rng.normal(size=(2, 3, 5, 4)), rng.normal(size=(2, 3, 5, 4)), rng.normal(size=(2, 3, 5, 6))
    m = {None: None, 'bool': rng.random((5, 5)) > 0.3, 'float': rng.normal(size=(2, 1, 5, 5))}[mask]
    if mask == 'bool': m[:, 0] = True                              # every query sees at least one key
    tm = None if m is None else torch.from_numpy(m)
    for scale in (None, 0.3):
        compare(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=causal, scale=scale),
                lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, attn_mask=tm, is_causal=causal, scale=scale), q, k, v)


def test_linear_and_losses():
    rng = np.random.default_rng(14)
    x, w, b = rng.normal(size=(5, 4)), rng.normal(size=(3, 4)), rng.normal(size=3)
    compare(F.linear, TF.linear, x, w, b)
    logits, labels = rng.normal(size=(6, 5)) * 3, rng.integers(0, 5, 6)
    cw = rng.uniform(0.5, 2, 5)
    labels_ignored = labels.copy(); labels_ignored[[1, 4]] = -100
    for red in ('mean', 'sum', 'none'):
        for ls in (0.0, 0.15):
            compare(lambda z: F.cross_entropy(z, labels, reduction=red, label_smoothing=ls),
                    lambda z: TF.cross_entropy(z, torch.from_numpy(labels), reduction=red, label_smoothing=ls), logits)
            compare(lambda z: F.cross_entropy(z, labels_ignored, weight=cw, reduction=red, label_smoothing=ls),
                    lambda z: TF.cross_entropy(z, torch.from_numpy(labels_ignored), weight=torch.from_numpy(cw), reduction=red, label_smoothing=ls), logits)
        probs = rng.dirichlet(np.ones(5), 6)
        compare(lambda z: F.cross_entropy(z, probs, reduction=red, label_smoothing=0.1),
                lambda z: TF.cross_entropy(z, torch.from_numpy(probs), reduction=red, label_smoothing=0.1), logits)
        compare(lambda a, b: F.mse_loss(a, b, reduction=red), lambda a, b: TF.mse_loss(a, b, reduction=red), x, x[::-1].copy())
    spatial, sl = rng.normal(size=(2, 4, 3, 3)), rng.integers(0, 4, (2, 3, 3))     # (N, C, d1, d2)
    compare(lambda z: F.cross_entropy(z, sl), lambda z: TF.cross_entropy(z, torch.from_numpy(sl)), spatial)
    compare(lambda z: F.cross_entropy(z, sl[0, 0, 0]), lambda z: TF.cross_entropy(z, torch.tensor(sl[0, 0, 0])), logits[0])
    compare(lambda z: F.nll_loss(F.log_softmax(z, 1), labels), lambda z: TF.nll_loss(TF.log_softmax(z, 1), torch.from_numpy(labels)), logits)


def test_float32_stays_float32():
    x = Tensor(np.ones((1, 2, 5, 5), np.float32), requires_grad=True)
    w = Tensor(np.ones((3, 2, 3, 3), np.float32), requires_grad=True)
    y = F.gelu(F.avg_pool2d(F.max_pool2d(F.conv2d(x, w, padding=1), 2, 1), 2))
    y.sum().backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32 and w.grad.dtype == np.float32


@pytest.mark.parametrize('call,kind,words', [
    (lambda: F.conv2d(Tensor(np.ones((1, 2, 4, 4))), Tensor(np.ones((1, 3, 2, 2)))), RuntimeError, 'to have 3 channels'),
    (lambda: F.conv2d(Tensor(np.ones((1, 1, 2, 2))), Tensor(np.ones((1, 1, 3, 3)))), RuntimeError, 'smaller than the dilated kernel'),
    (lambda: F.conv2d(Tensor(np.ones((1, 1, 4, 4))), Tensor(np.ones((1, 1, 3, 3))), groups=2), NotImplementedError, 'groups'),
    (lambda: F.conv2d(Tensor(np.ones((1, 1, 4, 4))), Tensor(np.ones((1, 1, 3, 3))), padding='same', stride=2), RuntimeError, 'strided'),
    (lambda: F.conv2d(Tensor(np.ones((1, 1, 4, 4))), Tensor(np.ones((1, 1, 3, 3))), padding='full'), ValueError, 'padding string'),
    (lambda: F.conv2d(Tensor(np.ones((4, 4))), Tensor(np.ones((1, 1, 3, 3)))), RuntimeError, '3D (C, H, W) or 4D'),
    (lambda: F.max_pool2d(Tensor(np.ones((1, 1, 4, 4))), 2, padding=2), RuntimeError, 'pad should be at most half'),
    (lambda: F.max_pool2d(Tensor(np.ones((1, 1, 4, 4))), 2, ceil_mode=True), NotImplementedError, 'ceil_mode'),
    (lambda: F.avg_pool2d(Tensor(np.ones((1, 1, 4, 4))), 0), RuntimeError, 'kernel_size must be positive'),
    (lambda: F.embedding(np.array([7]), Tensor(np.ones((3, 2)))), IndexError, 'index out of range'),
    (lambda: F.embedding(np.array([0.5]), Tensor(np.ones((3, 2)))), RuntimeError, 'integer dtype'),
    (lambda: F.layer_norm(Tensor(np.ones((2, 3))), (4,)), RuntimeError, 'normalized_shape=[4]'),
    (lambda: F.gelu(Tensor(np.ones(2)), approximate='fast'), RuntimeError, 'none or tanh'),
    (lambda: F.softmax(Tensor(np.ones((2, 3))), dim=4), IndexError, 'Dimension out of range'),
    (lambda: F.dropout(Tensor(np.ones(2)), p=1.5), ValueError, 'between 0 and 1'),
    (lambda: F.cross_entropy(Tensor(np.ones((2, 3))), np.array([0, 3])), IndexError, 'Target 3 is out of bounds'),
    (lambda: F.cross_entropy(Tensor(np.ones((2, 3))), np.array([0, 1]), reduction='avg'), ValueError, 'reduction'),
    (lambda: F.cross_entropy(Tensor(np.ones((2, 3))), np.array([0, 1]), label_smoothing=2.0), RuntimeError, 'label_smoothing'),
    (lambda: F.scaled_dot_product_attention(*[Tensor(np.ones((2, 3)))] * 3, attn_mask=np.ones((2, 2), bool), is_causal=True), RuntimeError, 'attn_mask'),
])
def test_bad_input(call, kind, words):
    with pytest.raises(kind, match=None) as e: call()
    assert words in str(e.value)


@pytest.mark.parametrize('seed', range(4))
def test_shape_ops_and_max_over_random_shapes(seed):
    rng = np.random.default_rng(100 + seed)
    shape = tuple(int(n) for n in rng.integers(1, 5, rng.integers(2, 5)))
    x = np.round(rng.normal(size=shape), 1)                    # rounded: ties in max
    d = int(rng.integers(-len(shape), len(shape)))
    compare(lambda a: a.max(d)[0], lambda a: a.max(d)[0], x)
    compare(lambda a: a.max(dim=d, keepdim=True).values, lambda a: a.max(dim=d, keepdim=True).values, x)
    np.testing.assert_array_equal(Tensor(x).max(d).indices.data, torch.tensor(x).max(d).indices.numpy())
    np.testing.assert_array_equal(Tensor(x).argmax(dim=d).data, torch.tensor(x).argmax(dim=d).numpy())
    compare(lambda a: a.max(), lambda a: a.max(), x)            # ties share the gradient, as torch's full max
    compare(lambda a: a.softmax(d) * a.var(d, keepdim=True), lambda a: a.softmax(d) * a.var(d, keepdim=True), x)
    compare(lambda a: a.transpose(0, -1).flatten(), lambda a: a.transpose(0, -1).flatten(), x)
    compare(lambda a: ag.cat(a.chunk(2, dim=d), dim=d).unsqueeze(0).squeeze(0), lambda a: torch.cat(a.chunk(2, dim=d), dim=d).unsqueeze(0).squeeze(0), x)
    compare(lambda a: a.sqrt().erf(), lambda a: a.sqrt().erf(), np.abs(x) + 0.5)
