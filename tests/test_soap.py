"""SOAP against pytorch_optimizer's SOAP (4.1.0), side by side on the same gradients.

Tolerances. In float32 every step matches to 1e-5 relative per tensor. In float64 the two match to
1e-10 until the first power iteration of the bases, and over whole runs when the bases are only built
once (precondition_frequency larger than the run). pytorch_optimizer computes the QR of the power
iteration in float32 whatever the parameter's dtype, minima in the parameter's dtype, so after a power
iteration the float64 runs differ by that float32 QR's rounding: unit roundoff 6e-8 in the bases, which
enter each step linearly and scaled by the learning rate; observed at most 3e-8 relative over 120 steps
(normalize_gradient with a refresh every 5 steps). Those runs are held to 1e-6.

Shapes. Where a statistic S_a has a repeated eigenvalue (rank-deficient at the first step: a vector of
length n > 2 under precondition_1d, an m x n matrix with n > m + 1), any orthonormal basis of that
eigenspace is an eigenbasis and numpy's LAPACK and torch's pick different ones, so the runs diverge
legitimately; the parity shapes (2,), (7,), (4, 5), (2, 3, 4) have no such repeated eigenvalue.
"""
import copy, importlib.util, os, sys
import numpy as np
import pytest
import torch
from pytorch_optimizer import SOAP as ReferenceSOAP
from minima.nn import Parameter
from minima.optim.soap import SOAP, soap_update

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'reference'))
from optim_checks import (SHAPES, rel_err, one_torch_thread, gradients as varying_gradients, check_bad_hyperparameter, check_resume,
                          rosenbrock as rosen, rosenbrock_grad as rosen_grad)

SHAPES_1D = [(2,), (4, 5), (2, 3, 4)]        # precondition_1d: a vector of length 2 has a 1-dim null space at the start

def gradients(steps, dtype, shapes, seed=1):
    "Scales over two decades, offset by 0.3."
    return varying_gradients(steps, dtype, shapes, seed, decades=1, offset=0.3)

def side_by_side(kwargs, dtype, shapes=SHAPES, steps=120):
    "Both optimizers on the same gradients; returns the worst relative error after each step, and both runs."
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    tp = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    mp = [Parameter(a.copy()) for a in init]
    topt, mopt = ReferenceSOAP(tp, **kwargs), SOAP(mp, **kwargs)
    errors = []
    for gs in gradients(steps, dtype, shapes):
        for p, g in zip(tp, gs): p.grad = torch.tensor(g.copy())   # the reference negates in place under maximize
        for p, g in zip(mp, gs): p.grad = g.copy()
        topt.step(); mopt.step()
        errors.append(max(rel_err(a.data, b.detach().numpy()) for a, b in zip(mp, tp)))
    return np.array(errors), (tp, topt), (mp, mopt)

OPTIONS = [
    dict(),
    dict(lr=0.01, betas=(0.9, 0.99), shampoo_beta=0.8, eps=1e-6, weight_decay=0.1),
    dict(correct_bias=False, weight_decay=0.0),
    dict(maximize=True),
    dict(max_precondition_dim=4),                 # the axes of length 5 and 7 are not rotated
    dict(normalize_gradient=True),
]

def ids(cases): return ['-'.join(f'{k}={v}' for k, v in c.items()) or 'defaults' for c in cases]

@pytest.mark.parametrize('kwargs', OPTIONS + [dict(precondition_1d=True)], ids=ids(OPTIONS + [dict(precondition_1d=True)]))
def test_float64_bases_built_once(kwargs):
    "precondition_frequency beyond the run: only the first eigendecomposition; 1e-10 over 120 steps."
    shapes = SHAPES_1D if kwargs.get('precondition_1d') else SHAPES
    errors, (tp, topt), (mp, mopt) = side_by_side({**kwargs, 'precondition_frequency': 1000}, 'float64', shapes)
    assert errors.max() <= 1e-10, errors.max()
    for a, b in zip(mp, tp):
        s, t = mopt.state[a], topt.state[b]
        for k in ('exp_avg', 'exp_avg_sq'): assert rel_err(s[k], t[k].numpy()) <= 1e-10, k
        rotated = [i for i, G in enumerate(t['GG']) if len(G)]
        assert sorted(k for k in s if k.startswith('GG_')) == [f'GG_{i}' for i in rotated]
        for i in rotated:
            assert rel_err(s[f'GG_{i}'], t['GG'][i].numpy()) <= 1e-10
            assert rel_err(np.abs(s[f'Q_{i}']), np.abs(t['Q'][i].numpy())) <= 1e-8   # eigenvectors up to their sign

POWER = [(k, 5) for k in OPTIONS + [dict(precondition_1d=True)]] + [(dict(), 1), (dict(), 10)]

@pytest.mark.parametrize('kwargs,frequency', POWER, ids=[f'{i}-every-{f}' for i, f in zip(ids([k for k, _ in POWER]), [f for _, f in POWER])])
def test_float64_with_power_iterations(kwargs, frequency):
    "1e-10 until the first power iteration, 1e-6 after (the reference's float32 QR, see the module docstring)."
    shapes = SHAPES_1D if kwargs.get('precondition_1d') else SHAPES
    errors, _, _ = side_by_side({**kwargs, 'precondition_frequency': frequency}, 'float64', shapes)
    assert errors[:frequency + 1].max() <= 1e-10, errors[:frequency + 1].max()   # call t = frequency + 1 is the last before a QR is used
    assert errors.max() <= 1e-6, errors.max()

@pytest.mark.parametrize('kwargs', OPTIONS + [dict(precondition_1d=True), dict(precondition_frequency=3)],
                         ids=ids(OPTIONS + [dict(precondition_1d=True), dict(precondition_frequency=3)]))
def test_float32(kwargs):
    shapes = SHAPES_1D if kwargs.get('precondition_1d') else SHAPES
    errors, _, _ = side_by_side(kwargs, 'float32', shapes)
    assert errors.max() <= 1e-5, errors.max()

def test_defaults_are_the_references():
    import inspect
    theirs = inspect.signature(ReferenceSOAP).parameters
    ours = inspect.signature(SOAP).parameters
    for k in ('lr', 'betas', 'weight_decay', 'precondition_frequency', 'max_precondition_dim', 'precondition_1d',
              'correct_bias', 'normalize_gradient', 'eps', 'maximize', 'shampoo_beta'):
        assert ours[k].default == theirs[k].default, k

def test_first_step_only_builds_the_bases():
    p = Parameter(np.ones((3, 2))); opt = SOAP([p]); p.grad = np.arange(6.0).reshape(3, 2); opt.step()
    assert np.array_equal(p.data, np.ones((3, 2)))
    st = opt.state[p]
    for a in (0, 1):
        Q = st[f'Q_{a}']
        assert np.allclose(Q.T @ Q, np.eye(len(Q)), atol=1e-12)
        lam = np.diag(Q.T @ st[f'GG_{a}'] @ Q)
        assert np.allclose(st[f'GG_{a}'] @ Q, Q * lam, atol=1e-12) and np.all(np.diff(lam) <= 1e-12)   # eigenvectors, largest first

BAD = [('lr', -1.0, ValueError), ('betas', (1.0, 0.9), ValueError), ('betas', (0.9, -0.1), ValueError),
       ('shampoo_beta', -0.1, ValueError), ('shampoo_beta', 1.0, ValueError), ('eps', -1.0, ValueError),
       ('weight_decay', -1.0, ValueError), ('precondition_frequency', 0, ValueError), ('max_precondition_dim', 0, ValueError),
       ('precondition_frequency', 2.5, TypeError), ('precondition_1d', 'yes', TypeError)]

@pytest.mark.parametrize('arg,value,kind', BAD)
def test_bad_hyperparameters(arg, value, kind):
    G = np.arange(6.0).reshape(2, 3)
    check_bad_hyperparameter(SOAP, {arg: value}, kind, arg, init=np.ones((2, 3)), warmup=(G, G), last=None)

@pytest.mark.parametrize('arg,value', [('lr', -1.0), ('betas', (1.0, 0.9)), ('shampoo_beta', -0.1), ('eps', -1.0),
                                       ('weight_decay', -1.0), ('precondition_frequency', 0), ('max_precondition_dim', 0)])
def test_refuses_what_the_reference_refuses(arg, value):
    with pytest.raises(Exception): ReferenceSOAP([torch.zeros(2, requires_grad=True)], **{arg: value})
    with pytest.raises(ValueError, match=arg): SOAP([Parameter(np.zeros(2))], **{arg: value})

def train(opt, params, steps, start=0):
    for t in range(start, start + steps):
        for q in params: q.grad = (q.data - 0.5) + 0.2 * np.sin(t + np.arange(q.data.size).reshape(q.data.shape))
        opt.step()

def test_checkpoint_resume_is_bit_identical():
    "Save after 7 calls (one power iteration done at 6), continue to 30 (more at 11, 16, ...), compare with an uninterrupted run."
    kwargs = dict(lr=0.01, precondition_frequency=5, precondition_1d=True)
    init = [np.linspace(-1, 1, int(np.prod(s))).reshape(s) for s in SHAPES]
    oa, a, _, oc, c = check_resume(lambda p: SOAP(p, **kwargs), init, lambda opt, ps, start, stop: train(opt, ps, stop - start, start),
                                   total=30, split=7)
    for x, y in zip(a, c):
        for k, v in oa.state[x].items(): assert np.array_equal(v, oc.state[y][k]), k

def test_load_state_dict_checks_the_matrices():
    p = Parameter(np.ones((2, 3))); opt = SOAP([p]); p.grad = np.ones((2, 3)); opt.step()
    sd = opt.state_dict(); bad = copy.deepcopy(sd); bad['state'][0]['GG_1'] = np.zeros((2, 2))
    with pytest.raises(ValueError, match='GG_1'): opt.load_state_dict(bad)
    assert opt.state[p]['GG_1'].shape == (3, 3)
    opt.load_state_dict(sd)

def test_update_function_alone():
    "The page's hand-worked step: G = diag(2, 1), β = (0.5, 0.5): the second call moves the diagonal by −γ sign(G)."
    p, G = np.zeros((2, 2)), np.diag([2.0, 1.0])
    state = SOAP([Parameter(p)]).init_state(p, dict(max_precondition_dim=10000, precondition_1d=False))
    kw = dict(lr=0.1, betas=(0.5, 0.5), shampoo_beta=None, eps=1e-8, weight_decay=0.0, precondition_frequency=10,
              max_precondition_dim=10000, precondition_1d=False, correct_bias=True, normalize_gradient=False, maximize=False)
    soap_update(p, G, state, step=1, **kw); assert np.array_equal(p, np.zeros((2, 2)))
    soap_update(p, G, state, step=2, **kw); np.testing.assert_allclose(p, -0.1 * np.eye(2), atol=1e-8)

def test_rosenbrock():
    "From (−1.5, 2), 2000 steps, rotating the 2-vector; observed 1.0e-6."
    p = Parameter(np.array([-1.5, 2.0])); opt = SOAP([p], lr=0.003, weight_decay=0.0, precondition_1d=True)
    for _ in range(2000): p.grad = rosen_grad(p.data); opt.step()
    assert rosen(p.data) < 1e-5

def test_convex_quadratic():
    "Least squares ½‖X W − Y‖² for a 4 × 3 matrix W from zero, 300 steps; observed 1.2e-4 (from 50)."
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 4)) @ np.diag([3.0, 1.0, 0.5, 0.2]); W_true = rng.standard_normal((4, 3)); Y = X @ W_true
    W = Parameter(np.zeros((4, 3))); opt = SOAP([W], lr=0.05, weight_decay=0.0)
    for _ in range(300): W.grad = X.T @ (X @ W.data - Y); opt.step()
    loss = 0.5 * np.sum((X @ W.data - Y) ** 2)
    assert loss < 1e-3, loss

AUTHORS = os.environ.get('MINIMA_SOAP_AUTHORS')   # path to soap.py from github.com/nikhilvyas/SOAP (not on PyPI, not stored here)

@pytest.mark.skipif(not AUTHORS, reason='set MINIMA_SOAP_AUTHORS to the authors\' soap.py to compare with it')
@pytest.mark.parametrize('kwargs', [dict(), dict(precondition_frequency=3, weight_decay=0.1), dict(precondition_1d=True)],
                         ids=['defaults', 'frequency-3-decay', 'precondition_1d'])
def test_float32_against_the_authors_code(kwargs):
    """The authors' SOAP computes both decompositions in float32 and keeps m rotated (the same in exact arithmetic),
    so the comparison is in float32: 1e-5 over 120 steps (observed at most 3.1e-6)."""
    spec = importlib.util.spec_from_file_location('authors_soap', AUTHORS); mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    shapes = SHAPES_1D if kwargs.get('precondition_1d') else SHAPES
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(s).astype('float32') for s in shapes]
    tp = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    mp = [Parameter(a.copy()) for a in init]
    topt, mopt = mod.SOAP(tp, **kwargs), SOAP(mp, **kwargs)
    for gs in gradients(120, 'float32', shapes):
        for p, g in zip(tp, gs): p.grad = torch.tensor(g.copy())
        for p, g in zip(mp, gs): p.grad = g.copy()
        topt.step(); mopt.step()
        for a, b in zip(mp, tp): assert rel_err(a.data, b.detach().numpy()) <= 1e-5

def test_rotated_axes_are_fixed_when_the_state_is_made():
    "Editing precondition_1d mid-run leaves existing states as they are (no half-done step)."
    v, W = Parameter(np.ones(3)), Parameter(np.ones((2, 3)))
    opt = SOAP([v, W], lr=0.1)
    for _ in range(2): v.grad, W.grad = np.arange(3.0), np.arange(6.0).reshape(2, 3); opt.step()
    opt.param_groups[0]['precondition_1d'] = True
    for _ in range(2): v.grad, W.grad = np.arange(3.0), np.arange(6.0).reshape(2, 3); opt.step()
    assert sorted(k for k in opt.state[v] if k.startswith('GG')) == [] and sorted(k for k in opt.state[W] if k.startswith('GG')) == ['GG_0', 'GG_1']
    with pytest.raises(ValueError, match='GG_0'): opt.load_state_dict(opt.state_dict())   # saved under the old settings
