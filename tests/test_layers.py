"""minima.nn layers against torch.nn in float64: a torch layer's state dict loaded into the minima layer
gives torch's outputs and the same gradients of the input and of every weight (relative error <= 1e-10);
buffers, train/eval and the Module API as torch has them."""
import numpy as np
import pytest

import minima
from minima import nn
from minima.autograd import Tensor

torch = pytest.importorskip('torch')
TOL = 1e-10


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300) if b.size else 0.0


def copy_from_torch(mi, th):
    "Load torch's state dict into the minima module (through the public API)."
    missing, unexpected = mi.load_state_dict({k: v.detach().numpy().copy() for k, v in th.state_dict().items()})
    assert not missing and not unexpected


def check_same(mi, th, *inputs, out=lambda y: y, seed=0, train=True):
    """Copy torch's weights into `mi`, run both on `inputs` (float arrays get gradients), backpropagate one
    random upstream gradient, compare the outputs, the input gradients and each parameter's gradient."""
    copy_from_torch(mi, th)
    mi.train(train); th.train(train)
    mx = [Tensor(a.copy(), requires_grad=a.dtype.kind == 'f') for a in inputs]
    tx = [torch.tensor(a, requires_grad=a.dtype.kind == 'f') for a in inputs]
    ym, yt = out(mi(*mx)), out(th(*tx))
    assert rel_err(ym.data, yt.detach().numpy()) <= TOL
    up = np.random.default_rng(seed).normal(size=ym.shape)
    ym.backward(up); yt.backward(torch.from_numpy(up))
    for m, t in zip(mx, tx):
        if t.requires_grad: assert rel_err(m.grad, t.grad.numpy()) <= TOL
    tp = dict(th.named_parameters())
    assert [n for n, _ in mi.named_parameters()] == list(tp)
    for n, p in mi.named_parameters():
        assert rel_err(p.grad, tp[n].grad.numpy()) <= TOL, n
    for n, b in th.named_buffers():
        assert rel_err(dict(mi.named_buffers())[n].data, b.numpy()) <= TOL, n


def conv_cases(n, seed):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        k = tuple(int(v) for v in rng.integers(1, 4, 2))
        yield dict(cin=int(rng.integers(1, 4)), cout=int(rng.integers(1, 5)), k=k, stride=tuple(int(v) for v in rng.integers(1, 3, 2)),
                   padding=tuple(int(v) for v in rng.integers(0, 3, 2)), dilation=tuple(int(v) for v in rng.integers(1, 3, 2)),
                   bias=bool(rng.integers(0, 2)))


@pytest.mark.parametrize('c', list(conv_cases(12, 20)), ids=str)
def test_conv2d(c):
    mi = nn.Conv2d(c['cin'], c['cout'], c['k'], c['stride'], c['padding'], c['dilation'], bias=c['bias'], dtype=np.float64)
    th = torch.nn.Conv2d(c['cin'], c['cout'], c['k'], c['stride'], c['padding'], c['dilation'], bias=c['bias'], dtype=torch.float64)
    x = np.random.default_rng(1).normal(size=(2, c['cin'], 9, 8))
    check_same(mi, th, x)


def test_conv2d_init_matches_torch_distribution():
    minima.manual_seed(0)
    w = nn.Conv2d(16, 32, 3).weight.data
    bound = 1 / np.sqrt(16 * 9)
    assert w.shape == (32, 16, 3, 3) and np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound


def test_pools():
    x = np.random.default_rng(2).normal(size=(2, 3, 7, 6))
    check_same(nn.MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1), x)
    check_same(nn.MaxPool2d((2, 3), dilation=(2, 1)), torch.nn.MaxPool2d((2, 3), dilation=(2, 1)), x)
    check_same(nn.AvgPool2d(3, 2, 1, count_include_pad=False), torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False), x)
    check_same(nn.AvgPool2d(2), torch.nn.AvgPool2d(2), x)


@pytest.mark.parametrize('cls,shape', [('BatchNorm1d', (6, 3)), ('BatchNorm1d', (4, 3, 5)), ('BatchNorm2d', (3, 3, 4, 5))])
@pytest.mark.parametrize('momentum', [0.1, None])
@pytest.mark.parametrize('affine', [True, False])
def test_batch_norm_train_then_eval(cls, shape, momentum, affine):
    mi = getattr(nn, cls)(3, momentum=momentum, affine=affine, dtype=np.float64)
    th = getattr(torch.nn, cls)(3, momentum=momentum, affine=affine, dtype=torch.float64)
    if affine:
        with torch.no_grad(): th.weight.uniform_(0.5, 2); th.bias.normal_()
    rng = np.random.default_rng(3)
    for step in range(3):       # running statistics accumulate over steps, compared after each
        x = rng.normal(size=shape) * 2 + 1
        if step == 0: check_same(mi, th, x)
        else:
            mi(Tensor(x)); th(torch.tensor(x))
            for n, b in th.named_buffers(): assert rel_err(dict(mi.named_buffers())[n].data, b.numpy()) <= TOL
    x = rng.normal(size=shape)
    check_same(mi, th, x, train=False)        # evaluation: the running statistics
    assert int(mi.num_batches_tracked.data) == int(th.num_batches_tracked) == 3


def test_batch_norm_without_running_stats():
    mi, th = nn.BatchNorm2d(2, track_running_stats=False, dtype=np.float64), torch.nn.BatchNorm2d(2, track_running_stats=False, dtype=torch.float64)
    x = np.random.default_rng(4).normal(size=(2, 2, 3, 3))
    check_same(mi, th, x, train=False)
    assert list(mi.buffers()) == [] and set(mi.state_dict()) == set(th.state_dict())


@pytest.mark.parametrize('shape,norm,bias', [((4, 6), 6, True), ((2, 3, 5), (3, 5), True), ((2, 3, 4), 4, False)])
def test_layer_norm(shape, norm, bias):
    th = torch.nn.LayerNorm(norm, eps=1e-4, bias=bias, dtype=torch.float64)
    with torch.no_grad():
        th.weight.normal_()
        if bias: th.bias.normal_()
    check_same(nn.LayerNorm(norm, eps=1e-4, bias=bias, dtype=np.float64), th, np.random.default_rng(5).normal(size=shape))


def test_embedding():
    idx = np.random.default_rng(6).integers(0, 10, (3, 7))
    check_same(nn.Embedding(10, 4, dtype=np.float64), torch.nn.Embedding(10, 4, dtype=torch.float64), idx)
    check_same(nn.Embedding(10, 4, padding_idx=3, dtype=np.float64), torch.nn.Embedding(10, 4, padding_idx=3, dtype=torch.float64), idx)
    minima.manual_seed(0)
    w = nn.Embedding(1000, 50, padding_idx=-1).weight.data
    assert abs(w[:-1].std() - 1) < 0.02 and (w[-1] == 0).all()


@pytest.mark.parametrize('layer', ['GELU', 'GELU-tanh', 'Softmax', 'LogSoftmax'])
def test_activations(layer):
    make = {'GELU': lambda m: m.GELU(), 'GELU-tanh': lambda m: m.GELU(approximate='tanh'),
            'Softmax': lambda m: m.Softmax(dim=1), 'LogSoftmax': lambda m: m.LogSoftmax(dim=-1)}[layer]
    check_same(make(nn), make(torch.nn), np.random.default_rng(7).normal(size=(3, 5, 4)) * 2)


def mha_pair(E, H, bias=True, batch_first=False, dropout=0.0):
    th = torch.nn.MultiheadAttention(E, H, dropout=dropout, bias=bias, batch_first=batch_first, dtype=torch.float64)
    if bias:
        with torch.no_grad(): th.in_proj_bias.normal_(); th.out_proj.bias.normal_()
    return nn.MultiheadAttention(E, H, dropout=dropout, bias=bias, batch_first=batch_first, dtype=np.float64), th


@pytest.mark.parametrize('batch_first', [False, True])
@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('mask', [None, 'causal-bool', 'float', 'per-head', 'padding'])
def test_multihead_self_attention(batch_first, bias, mask):
    E, H, L, N = 8, 2, 5, 3
    rng = np.random.default_rng(8)
    mi, th = mha_pair(E, H, bias, batch_first)
    x = rng.normal(size=(N, L, E) if batch_first else (L, N, E))
    kw = {}
    if mask == 'causal-bool': kw['attn_mask'] = np.triu(np.ones((L, L), bool), 1)
    elif mask == 'float': kw['attn_mask'] = rng.normal(size=(L, L))
    elif mask == 'per-head': kw['attn_mask'] = rng.normal(size=(N * H, L, L))
    elif mask == 'padding': kw['key_padding_mask'] = np.array([[False] * L, [False] * 3 + [True] * 2, [False, True] * 2 + [False]])
    tkw = {k: torch.from_numpy(v) for k, v in kw.items()}
    for i, weights in enumerate((False, True)):       # the output, then the averaged attention weights
        copy_from_torch(mi, th)
        xm, xt = Tensor(x.copy(), requires_grad=True), torch.tensor(x, requires_grad=True)
        ym = mi(xm, xm, xm, **kw)[i]; yt = th(xt, xt, xt, **tkw)[i]
        assert rel_err(ym.data, yt.detach().numpy()) <= TOL
        up = rng.normal(size=ym.shape)
        ym.backward(up); yt.backward(torch.from_numpy(up))
        assert rel_err(xm.grad, xt.grad.numpy()) <= TOL
        for n, p in th.named_parameters():
            g = dict(mi.named_parameters())[n].grad
            if p.grad is None: assert g is None, n                       # out_proj does not reach the weights
            else: assert rel_err(g, p.grad.numpy()) <= TOL, n
        mi.zero_grad(); th.zero_grad()


def test_multihead_attention_cross_unbatched_and_per_head_weights():
    E, H = 6, 3
    rng = np.random.default_rng(9)
    mi, th = mha_pair(E, H)
    copy_from_torch(mi, th)
    q, k, v = rng.normal(size=(4, 2, E)), rng.normal(size=(7, 2, E)), rng.normal(size=(7, 2, E))   # (L, N, E), (S, N, E)
    args = [Tensor(a.copy(), requires_grad=True) for a in (q, k, v)]
    targs = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    (ym, wm), (yt, wt) = mi(*args, average_attn_weights=False), th(*targs, average_attn_weights=False)
    assert rel_err(ym.data, yt.detach().numpy()) <= TOL and rel_err(wm.data, wt.detach().numpy()) <= TOL
    up = rng.normal(size=ym.shape)
    ym.backward(up); yt.backward(torch.from_numpy(up))
    for a, t in zip(args, targs): assert rel_err(a.grad, t.grad.numpy()) <= TOL
    x = rng.normal(size=(5, E))                                        # unbatched (L, E)
    (ym, wm), (yt, wt) = mi(Tensor(x), Tensor(x), Tensor(x)), th(*[torch.tensor(x)] * 3)
    assert rel_err(ym.data, yt.detach().numpy()) <= TOL and rel_err(wm.data, wt.detach().numpy()) <= TOL
    assert mi(Tensor(x), Tensor(x), Tensor(x), need_weights=False)[1] is None


def test_multihead_attention_is_causal_equals_the_causal_mask():
    mi, th = mha_pair(8, 4, batch_first=True)
    copy_from_torch(mi, th)
    x = np.random.default_rng(10).normal(size=(2, 6, 8))
    mask = torch.nn.Transformer.generate_square_subsequent_mask(6, dtype=torch.float64)
    yt = th(*[torch.tensor(x)] * 3, attn_mask=mask, is_causal=True)[0]
    ym = mi(*[Tensor(x)] * 3, is_causal=True)[0]
    assert rel_err(ym.data, yt.detach().numpy()) <= TOL


def test_mha_init_and_layout():
    minima.manual_seed(0)
    m = nn.MultiheadAttention(16, 4)
    assert [(n, p.shape) for n, p in m.named_parameters()] == [('in_proj_weight', (48, 16)), ('in_proj_bias', (48,)),
                                                              ('out_proj.weight', (16, 16)), ('out_proj.bias', (16,))]
    assert (m.in_proj_bias.data == 0).all() and (m.out_proj.bias.data == 0).all()
    assert np.abs(m.in_proj_weight.data).max() <= np.sqrt(6 / (16 + 48))
    assert m.in_proj_weight.dtype == np.float32


def test_dropout_in_attention_only_in_training():
    mi = nn.MultiheadAttention(4, 2, dropout=0.5, batch_first=True)
    x = Tensor(np.random.default_rng(11).normal(size=(1, 3, 4)).astype(np.float32))
    minima.manual_seed(0); a = mi(x, x, x)[1].data
    mi.eval(); b = mi(x, x, x)[1].data; c = mi(x, x, x)[1].data
    np.testing.assert_array_equal(b, c)
    assert not np.allclose(a, b)


def test_small_cnn_and_transformer_block_match_torch():
    "Layers composed: a CNN and a pre-norm causal transformer block, all weights copied from torch."
    class Block(nn.Module):
        def __init__(self, m, E=8, H=2, V=11):
            self.emb, self.ln = m.Embedding(V, E, dtype=DT[m]), m.LayerNorm(E, dtype=DT[m])
            self.attn = m.MultiheadAttention(E, H, batch_first=True, dtype=DT[m])
            self.mlp = m.Sequential(m.Linear(E, 4 * E, dtype=DT[m]), m.GELU(), m.Linear(4 * E, V, dtype=DT[m]))
    DT = {nn: np.float64, torch.nn: torch.float64}
    class MiBlock(Block, nn.Module):
        def __init__(self): Block.__init__(self, nn)
        def forward(self, idx):
            h = self.emb(idx); a = self.ln(h)
            h = h + self.attn(a, a, a, is_causal=True, need_weights=False)[0]
            return self.mlp(h)
    class ThBlock(torch.nn.Module):
        def __init__(self):
            super().__init__(); Block.__init__(self, torch.nn)
        def forward(self, idx):
            h = self.emb(idx); a = self.ln(h)
            mask = torch.nn.Transformer.generate_square_subsequent_mask(idx.shape[1], dtype=torch.float64)
            h = h + self.attn(a, a, a, attn_mask=mask, is_causal=True, need_weights=False)[0]
            return self.mlp(h)
    idx = np.random.default_rng(12).integers(0, 11, (2, 5))
    check_same(MiBlock(), ThBlock(), idx)
    make = lambda m, d: m.Sequential(m.Conv2d(1, 4, 3, padding=1, dtype=d), m.ReLU(), m.BatchNorm2d(4, dtype=d), m.MaxPool2d(2),
                                     m.Conv2d(4, 6, 3, stride=2, padding=1, dtype=d), m.GELU(), m.AvgPool2d(2), m.Flatten(), m.Linear(6, 3, dtype=d))
    check_same(make(nn, np.float64), make(torch.nn, torch.float64), np.random.default_rng(13).normal(size=(4, 1, 8, 8)))


# ---------------------------------------------------------------- Module API
def test_buffers_state_dict_and_load():
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    names = [n for n, _ in m.named_buffers()]
    assert names == ['1.running_mean', '1.running_var', '1.num_batches_tracked']
    th = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    assert set(m.state_dict()) == set(th.state_dict())
    m.train()(Tensor(np.random.default_rng(0).normal(size=(4, 1, 5, 5)).astype(np.float32)))
    sd = m.state_dict()
    m2 = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    rm = m2[1].running_mean.data
    m2.load_state_dict(sd)
    assert m2[1].running_mean.data is rm                                 # loaded in place
    np.testing.assert_array_equal(rm, m[1].running_mean.data)
    assert int(m2[1].num_batches_tracked.data) == 1
    sd['1.running_var'] = np.ones(3, np.float32)
    with pytest.raises(ValueError, match=r"1.running_var: shape \(3,\) given, buffer has \(2,\)"):
        m2.load_state_dict(sd)


def test_non_persistent_buffer_and_register_buffer_errors():
    m = nn.Module()
    m.register_buffer('scratch', Tensor(np.zeros(2)), persistent=False)
    m.register_buffer('kept', Tensor(np.ones(1)))
    assert [n for n, _ in m.named_buffers()] == ['scratch', 'kept'] and list(m.state_dict()) == ['kept']
    with pytest.raises(TypeError, match="buffer 'x'"): m.register_buffer('x', np.zeros(2))
    with pytest.raises(KeyError): m.register_buffer('a.b', Tensor(np.zeros(2)))


def test_train_eval_children_modules_apply_to():
    m = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.Dropout(), nn.BatchNorm1d(3)))
    assert m.training and not m.eval().training and all(not s.training for s in m.modules())
    assert len(list(m.children())) == 2 and len(list(m.modules())) == 5
    seen = []
    assert m.apply(lambda mod: seen.append(type(mod).__name__)) is m
    assert seen == ['Linear', 'Dropout', 'BatchNorm1d', 'Sequential', 'Sequential']       # children first, as torch
    m.to(np.float64)
    assert all(p.dtype == np.float64 for p in m.parameters())
    assert m[1][1].running_mean.dtype == np.float64 and m[1][1].num_batches_tracked.dtype == np.int64
    with pytest.raises(RuntimeError, match="device"): m.to('cuda')
    assert m.to('cpu') is m and m.to(torch.device('cpu'), np.float64) is m
    with pytest.raises(TypeError, match="floating point"): m.to(np.int32)


def test_module_list():
    ml = nn.ModuleList([nn.Linear(2, 2), nn.ReLU()])
    ml.append(nn.Linear(2, 1))
    assert len(ml) == 3 and isinstance(ml[2], nn.Linear) and [n for n, _ in ml.named_parameters()] == ['0.weight', '0.bias', '2.weight', '2.bias']
    with pytest.raises(TypeError, match="not a minima.nn.Module"): ml.append(lambda x: x)


@pytest.mark.parametrize('call,kind,words', [
    (lambda: nn.Conv2d(1, 1, 3, padding_mode='reflect'), NotImplementedError, "padding_mode='reflect'"),
    (lambda: nn.Conv2d(1, 1, 3, padding='full'), ValueError, 'padding string'),
    (lambda: nn.Conv2d(1, 1, 0), RuntimeError, 'kernel_size must be positive'),
    (lambda: nn.BatchNorm2d(3)(Tensor(np.ones((2, 3)))), ValueError, 'expected 4D input (got 2D input)'),
    (lambda: nn.BatchNorm1d(3)(Tensor(np.ones((2, 4)))), RuntimeError, 'expects 3 channels'),
    (lambda: nn.Embedding(3, 2, padding_idx=5), AssertionError, 'Padding_idx'),
    (lambda: nn.Embedding(3, 2, max_norm=1.0), NotImplementedError, 'max_norm'),
    (lambda: nn.GELU('fast'), RuntimeError, 'none or tanh'),
    (lambda: nn.MultiheadAttention(6, 4), AssertionError, 'divisible by num_heads'),
    (lambda: nn.MultiheadAttention(4, 2, add_bias_kv=True), NotImplementedError, 'add_bias_kv'),
    (lambda: nn.LayerNorm(3, device='cuda'), RuntimeError, "device='cuda'"),
    (lambda: nn.Dropout(1.5), ValueError, 'between 0 and 1'),
])
def test_bad_input(call, kind, words):
    with pytest.raises(kind) as e: call()
    assert words in str(e.value)


def test_weighted_loss_keeps_its_weight_as_a_buffer_like_torch():
    w = np.array([1.0, 2.0, 0.5])
    ours, theirs = nn.CrossEntropyLoss(weight=w), torch.nn.CrossEntropyLoss(weight=torch.from_numpy(w))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ['weight']
    z, y = np.random.default_rng(0).normal(size=(4, 3)), np.array([0, 2, 1, 1])
    assert rel_err(ours(Tensor(z), y).data, theirs(torch.from_numpy(z), torch.from_numpy(y)).numpy()) <= TOL
    assert list(nn.CrossEntropyLoss().state_dict()) == []


def test_register_buffer_refuses_an_existing_attribute():
    lin = nn.Linear(2, 2)
    with pytest.raises(KeyError, match="attribute 'weight' already exists"): lin.register_buffer('weight', Tensor(np.zeros(2)))
    bn = nn.BatchNorm1d(2)
    bn.register_buffer('running_mean', Tensor(np.ones(2, np.float32)))     # re-registering a buffer replaces it, as torch
    assert (bn.running_mean.data == 1).all()
