"""Prodigy against pytorch_optimizer's Prodigy (4.1.0), side by side on the same gradients: float64 <= 1e-10
(torch's default dtype set to float64, since the reference keeps its sums r and ||s||_1 in it) and
float32 <= 1e-5 relative per tensor after every step, for every option the page names. The gradients
are those of a quadratic at minima's parameters plus a varying term, handed identically to both, so the
estimate d actually grows. Then validation, param groups, the closure, checkpoints and convergence."""
import os, sys
import numpy as np
import pytest
import torch
from pytorch_optimizer import Prodigy as ReferenceProdigy
from minima.nn import Parameter
from minima.autograd import Tensor
from minima.optim.prodigy import Prodigy

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'reference'))
from optim_checks import (SHAPES, RTOL, rel_err, one_torch_thread, check_bad_hyperparameter, check_resume,
                          rosenbrock as rosen, rosenbrock_grad as rosen_grad)

def quadratic_gradient(x, t, i):
    "∇ of ½ Σ a (x − 2)² with curvatures a from 0.1 to 10, plus a term that changes every step."
    a = np.geomspace(0.1, 10, x.size).reshape(x.shape)
    return (a * (x - 2) + 0.5 * np.sin(0.3 * t + i + np.arange(x.size).reshape(x.shape))).astype(x.dtype)

def side_by_side(kwargs, dtype, steps=120, shapes=SHAPES):
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    before = torch.get_default_dtype(); torch.set_default_dtype(getattr(torch, dtype))
    try:
        tp = [torch.tensor(a.copy(), requires_grad=True) for a in init]
        mp = [Parameter(a.copy()) for a in init]
        topt, mopt = ReferenceProdigy(tp, **kwargs), Prodigy(mp, **kwargs)
        for t in range(1, steps + 1):
            sign = -1 if kwargs.get('maximize') else 1                      # maximize −f: the same path
            gs = [sign * quadratic_gradient(p.data, t, i) for i, p in enumerate(mp)]
            for p, g in zip(tp, gs): p.grad = torch.tensor(g.copy())   # the reference negates in place under maximize
            for p, g in zip(mp, gs): p.grad = g.copy()
            topt.step(); mopt.step()
            for i, (a, b) in enumerate(zip(mp, tp)):
                err = rel_err(a.data, b.detach().numpy())
                assert err <= RTOL[dtype], f'{kwargs} {dtype}, step {t}, tensor {i}: relative error {err:.3g}'
    finally:
        torch.set_default_dtype(before)
    st = mopt.state[mp[0]]
    assert st['d'] == pytest.approx(topt.param_groups[0]['d'], rel=RTOL[dtype])
    assert st['d_max'] == pytest.approx(topt.param_groups[0]['d_max'], rel=RTOL[dtype])
    for i, b in enumerate(tp):
        for k in ('exp_avg', 'exp_avg_sq', 's', 'p0'):
            assert rel_err(st[k][i], topt.state[b][k].numpy()) <= RTOL[dtype], k
    return st

OPTIONS = [
    dict(),
    dict(lr=0.5, betas=(0.8, 0.99), beta3=0.9, d0=1e-4, d_coef=0.5),
    dict(growth_rate=1.02),
    dict(weight_decay=0.1),
    dict(bias_correction=True),
    dict(safeguard_warmup=True, lr=0.3),
    dict(eps=None),
    dict(maximize=True),
]

@pytest.mark.parametrize('dtype', ['float64', 'float32'])
@pytest.mark.parametrize('kwargs', OPTIONS, ids=['-'.join(f'{k}={v}' for k, v in c.items()) or 'defaults' for c in OPTIONS])
def test_parity(kwargs, dtype):
    st = side_by_side(kwargs, dtype)
    assert st['d'] > 10 * kwargs.get('d0', 1e-6)   # the estimate grew (by 1.02 per step at most with growth_rate=1.02)

def test_defaults_are_the_references():
    import inspect
    theirs, ours = inspect.signature(ReferenceProdigy).parameters, inspect.signature(Prodigy).parameters
    for k in ('lr', 'betas', 'beta3', 'd0', 'd_coef', 'growth_rate', 'weight_decay', 'bias_correction', 'safeguard_warmup', 'eps', 'maximize'):
        assert ours[k].default == theirs[k].default, k

def test_groups_have_their_own_estimate_and_the_closure_runs_once():
    "Two groups step as two single-group optimizers would; a closure is evaluated once per step."
    a, b = Parameter(np.zeros(3)), Parameter(np.ones((2, 2)))
    a1, b1 = Parameter(np.zeros(3)), Parameter(np.ones((2, 2)))
    opt = Prodigy([{'params': [a]}, {'params': [b], 'weight_decay': 0.1}])
    oa, ob = Prodigy([a1]), Prodigy([b1], weight_decay=0.1)
    calls = []
    def closure():
        calls.append(1)
        loss = ((Tensor(np.arange(3.0)) - a) ** 2).sum() + ((b - Tensor(np.full((2, 2), 3.0))) ** 2).sum()
        opt.zero_grad(); loss.backward(); return loss.item()
    for t in range(20):
        loss = opt.step(closure)
        a1.grad, b1.grad = 2 * (a1.data - np.arange(3.0)), 2 * (b1.data - 3.0); oa.step(); ob.step()
    assert len(calls) == 20 and isinstance(loss, float)
    assert np.array_equal(a.data, a1.data) and np.array_equal(b.data, b1.data)
    assert opt.state[a]['d'] == oa.state[a1]['d'] and opt.state[b]['d'] == ob.state[b1]['d'] != oa.state[a1]['d']

def test_zero_gradients_move_nothing():
    p = Parameter(np.ones(3)); opt = Prodigy([p], weight_decay=0.1)
    for _ in range(3): p.grad = np.zeros(3); opt.step()
    assert np.array_equal(p.data, np.ones(3)) and opt.state[p]['d'] == 1e-6

BAD = [('lr', -1.0, ValueError), ('betas', (1.0, 0.9), ValueError), ('beta3', 1.5, ValueError), ('d0', 0.0, ValueError),
       ('d_coef', -1.0, ValueError), ('growth_rate', 0.5, ValueError), ('weight_decay', -1.0, ValueError),
       ('eps', -1.0, ValueError), ('bias_correction', 1, TypeError), ('d0', 'small', TypeError)]

@pytest.mark.parametrize('arg,value,kind', BAD)
def test_bad_hyperparameters(arg, value, kind):
    towards_2 = lambda x: x - 2
    check_bad_hyperparameter(Prodigy, {arg: value}, kind, arg, init=np.ones((2, 3)), warmup=(towards_2, towards_2), last=None, lr=None)

@pytest.mark.parametrize('arg,value', [('lr', -1.0), ('betas', (1.0, 0.9)), ('beta3', 1.5), ('weight_decay', -1.0), ('eps', -1.0)])
def test_refuses_what_the_reference_refuses(arg, value):
    with pytest.raises(Exception): ReferenceProdigy([torch.zeros(2, requires_grad=True)], **{arg: value})
    with pytest.raises(ValueError, match=arg): Prodigy([Parameter(np.zeros(2))], **{arg: value})

def train(opt, params, steps, start=0):
    for t in range(start, start + steps):
        for i, q in enumerate(params): q.grad = quadratic_gradient(q.data, t, i)
        opt.step()

def test_checkpoint_resume_is_bit_identical():
    kwargs = dict(weight_decay=0.01, bias_correction=True, growth_rate=1.5)
    init = [np.linspace(-1, 1, int(np.prod(s))).reshape(s) for s in SHAPES]
    oa, a, _, oc, c = check_resume(lambda p: Prodigy(p, **kwargs), init, lambda opt, ps, start, stop: train(opt, ps, stop - start, start),
                                   total=40, split=15)
    sa, sc = oa.state[a[0]], oc.state[c[0]]
    assert sa['d'] == sc['d'] and sa['d_numerator'] == sc['d_numerator'] and sa['step'] == sc['step'] == 40
    for k in ('exp_avg', 'exp_avg_sq', 's', 'p0'): assert all(np.array_equal(x, y) for x, y in zip(sa[k], sc[k]))

def test_rosenbrock():
    "From (−1.5, 2) with the defaults (no learning rate chosen), 2000 steps; observed 3.1e-6."
    p = Parameter(np.array([-1.5, 2.0])); opt = Prodigy([p])
    for _ in range(2000): p.grad = rosen_grad(p.data); opt.step()
    assert rosen(p.data) < 3e-5

def test_convex_quadratic():
    "½ Σ a (θ − 3)², a from 0.1 to 10, from 0, defaults, 300 steps; observed 9.3e-12 (from 91)."
    a = np.geomspace(0.1, 10, 10); p = Parameter(np.zeros(10)); opt = Prodigy([p])
    for _ in range(300): p.grad = a * (p.data - 3); opt.step()
    assert 0.5 * np.sum(a * (p.data - 3) ** 2) < 1e-9
