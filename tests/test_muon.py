"""minima's Muon against torch.optim.Muon 2.13, run live on the same gradients.

torch computes the Newton–Schulz iteration in bfloat16; minima in the parameter's dtype. Two comparisons:
(a) torch's own code with its one bfloat16 cast (`grad.bfloat16()` in `_zeropower_via_newtonschulz`) replaced by
    a copy in the input's dtype, against minima: float64 <= 1e-10, float32 <= 1e-5 relative, every step, 100 steps;
(b) torch as shipped against minima as shipped, one step at a time: the bfloat16 tolerance derived in `test_as_shipped`.
Gradients come from tests/reference/make_reference.py (per-value scales from 1e-3 to 10, sign changes, zeros).
"""
import contextlib, os, sys
import numpy as np
import pytest

torch = pytest.importorskip('torch')
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'reference'))
import make_reference as ref
from optim_db_errors import check_error_input, optim_db_inputs, optim_db_error_inputs, check_signature_is_torchs
from optim_checks import RTOL, rel_err, run_with_torch, rosenbrock as rosen, rosenbrock_grad as grad
from minima.nn import Parameter
import minima.optim.muon as muon_module
from minima.optim.muon import Muon, zeropower_via_newton_schulz, adjusted_lr

SHAPES = [(4, 5), (7, 3), (6, 6), (1, 5)]   # wide, tall (transposed inside, lr adjusted), square, a row
STEPS = 100
ABC = (3.4445, -4.7750, 2.0315)

@contextlib.contextmanager
def torch_newton_schulz_in_input_dtype():
    "torch's own Muon, with the bfloat16 cast of the Newton–Schulz input replaced by a copy in the input's dtype."
    original = torch.Tensor.bfloat16
    torch.Tensor.bfloat16 = lambda self, *args, **kwargs: self.clone()
    try: yield
    finally: torch.Tensor.bfloat16 = original

def for_minima(kwargs):
    "torch kwargs as minima takes them: a 1-element tensor lr becomes its float (minima's hyperparameters are numbers)."
    return {k: float(v) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}

def pair(dtype, kwargs, shapes=SHAPES, seed=1):
    init, grads = ref.make_inputs(np.dtype(dtype).type, shapes, STEPS, seed=seed)
    params = [Parameter(a.copy()) for a in ref.split(init, shapes)]
    tparams = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in ref.split(init, shapes)]
    return params, Muon(params, **for_minima(kwargs)), tparams, torch.optim.Muon(tparams, **kwargs), grads

def feed(params, tparams, g, shapes=SHAPES):
    for p, tp, gi in zip(params, tparams, ref.split(g, shapes)):
        p.grad, tp.grad = gi.copy(), torch.from_numpy(gi.copy())

def run_side_by_side(kwargs, dtype):
    rtol = RTOL[dtype]
    init, grads = ref.make_inputs(np.dtype(dtype).type, SHAPES, STEPS, seed=1)
    params, opt, tparams, topt = run_with_torch(lambda ps: Muon(ps, **for_minima(kwargs)), lambda ps: torch.optim.Muon(ps, **kwargs),
                                                init, grads, dtype, SHAPES)
    for p, tp in zip(params, tparams):
        err = rel_err(opt.state[p]['momentum_buffer'], topt.state[tp]['momentum_buffer'].numpy())
        assert err <= rtol, f'momentum buffer: relative error {err:.3g}'
        assert opt.state[p]['step'] == STEPS

def optim_db_configs(): return [(o.desc, o.kwargs) for o in optim_db_inputs('Muon')]

GRID = [dict(lr=0.02, nesterov=n, adjust_lr_fn=f, weight_decay=wd)
        for n in (True, False) for f in (None, 'original', 'match_rms_adamw') for wd in (0.0, 0.1)]
GRID += [dict(lr=0.02, momentum=0.0), dict(lr=0.02, momentum=0.5, nesterov=False, ns_steps=0),
         dict(lr=0.02, eps=50.0), dict(lr=0.02, ns_steps=8, ns_coefficients=(1.5, -0.5, 0.0))]
CASES = [(f'db:{desc}', kw) for desc, kw in optim_db_configs()] + [(f'grid{i}', kw) for i, kw in enumerate(GRID)]

def test_optim_db_configs_are_all_here():
    descs = {c[0] for c in CASES if c[0].startswith('db:')}
    assert descs == {'db:default', 'db:non-default lr', 'db:Tensor lr', 'db:non-default weight_decay',
                     'db:non-default momentum', 'db:passing alternative ns_steps', 'db:passing alternative ns_coefficients'}

def test_torch_patch_removes_only_the_bfloat16_cast():
    "Under the patch torch's iteration runs in float64 and equals minima's; without it, torch's result is bfloat16."
    M = np.random.default_rng(3).standard_normal((5, 8))
    with torch_newton_schulz_in_input_dtype():
        patched = muon_module_torch()._zeropower_via_newtonschulz(torch.from_numpy(M), ABC, 5, 1e-7)
    assert patched.dtype == torch.float64
    assert rel_err(zeropower_via_newton_schulz(M, ABC, 5, 1e-7), patched.numpy()) <= 1e-12
    shipped = muon_module_torch()._zeropower_via_newtonschulz(torch.from_numpy(M), ABC, 5, 1e-7)
    assert shipped.dtype == torch.bfloat16

def muon_module_torch():
    import torch.optim._muon as m
    return m

@pytest.mark.parametrize('dtype', ['float64', 'float32'])
@pytest.mark.parametrize('case', CASES, ids=[c[0] for c in CASES])
def test_parity_with_torch_algorithm(case, dtype):
    with torch_newton_schulz_in_input_dtype():
        run_side_by_side(case[1], dtype)

BF16_UNIT_ROUNDOFF = 2.0 ** -8
BF16_TOLERANCE = 64 * BF16_UNIT_ROUNDOFF

def one_step_errors(kwargs, dtype, steps=STEPS):
    """For every step, minima and torch start from torch's parameters (and hold the same momentum, as the gradients do
    not depend on the parameters): the largest difference of the two steps, relative to gamma' max|O_torch|."""
    params, opt, tparams, topt, grads = pair(dtype, kwargs)
    lr, wd = float(kwargs.get('lr', 1e-3)), kwargs.get('weight_decay', 0.1)
    worst = 0.0
    for t in range(1, steps + 1):
        for p, tp in zip(params, tparams): p.data[...] = tp.detach().numpy()
        feed(params, tparams, grads[t - 1])
        before = [p.data.copy() for p in params]
        opt.step(); topt.step()
        for p, tp, b in zip(params, tparams, before):
            step_torch = tp.detach().numpy() - b
            gamma = adjusted_lr(lr, kwargs.get('adjust_lr_fn'), b.shape)
            O_torch = -(step_torch + lr * wd * b) / gamma
            worst = max(worst, np.abs((p.data - b) - step_torch).max() / (gamma * np.abs(O_torch).max()))
    return worst

# every optim_db configuration and both lr adjustments in float32, the defaults in float64 too: torch's bfloat16 matrix
# products are slow on CPU (milliseconds for 6x6), so these run 50 steps and carry the slow mark
AS_SHIPPED = [(c, 'float32') for c in CASES[:7] + [CASES[7 + 4], CASES[7 + 8]]] + [(CASES[0], 'float64')]

@pytest.mark.slow
@pytest.mark.parametrize('case, dtype', AS_SHIPPED, ids=[f'{c[0]}-{d}' for c, d in AS_SHIPPED])
def test_as_shipped(case, dtype):
    """minima as shipped (Newton–Schulz in the parameter's dtype) against torch as shipped (in bfloat16), one step at a time.

    torch's orthogonalised update O is computed from a bfloat16 input through about 16 rounded results (the cast, the
    norm, the division and three per iteration), each off by at most the unit roundoff u = 2^-8 relative; the
    iteration's polynomial amplifies an error by its slope, at most a = 3.4 near zero, so the first-order bound is
    about 16 * 4 * u = 64u = 0.25 of max|O|. Each step may differ by at most gamma' * 64u * max|O_torch|
    (observed: about 0.11)."""
    worst = one_step_errors(case[1], dtype, steps=50)
    assert 2 ** -12 < worst <= BF16_TOLERANCE, worst   # and they really differ: not a comparison of equal numbers

# ---------------------------------------------------------------- signature and errors
def test_signature_and_defaults_are_torchs():
    check_signature_is_torchs(Muon, torch.optim.Muon)

@pytest.mark.parametrize('error', optim_db_error_inputs('Muon'), ids=lambda e: e.optimizer_error_input.desc)
def test_optim_db_error_inputs(error):
    check_error_input(Muon, error)

@pytest.mark.parametrize('kwargs, name', [(dict(lr=-1e-3), 'lr'), (dict(momentum=-0.1), 'momentum'),
                                          (dict(weight_decay=-0.1), 'weight_decay'), (dict(ns_steps=100), 'ns_steps'),
                                          (dict(adjust_lr_fn='spectral'), 'adjust_lr_fn')])
def test_bad_hyperparameters_raise_torchs_kind(kwargs, name):
    "torch raises ValueError for each (ns_steps at the first step); minima at construction, naming the argument."
    p = torch.nn.Parameter(torch.ones(2, 3)); p.grad = torch.ones(2, 3)
    with pytest.raises(ValueError): torch.optim.Muon([p], **kwargs).step()
    with pytest.raises(ValueError, match=name): Muon([Parameter(np.ones((2, 3)))], **kwargs)

def test_errors_change_nothing():
    a, b = Parameter(np.ones((2, 3))), Parameter(np.ones((3, 2)))
    opt = Muon([a, b], lr=0.1)
    for p in (a, b): p.grad = np.full(p.data.shape, 0.5)
    opt.step()
    saved = opt.state_dict()
    data = [a.data.copy(), b.data.copy()]
    opt.param_groups[0]['lr'] = -1.0
    with pytest.raises(ValueError, match='lr'): opt.step()
    opt.param_groups[0]['lr'] = 0.1
    b.data = np.ones((3, 2, 1))   # replaced by a 3-D array: refused before the first parameter is touched
    with pytest.raises(ValueError, match='2D parameters'): opt.step()
    assert np.array_equal(a.data, data[0])
    assert np.array_equal(opt.state[a]['momentum_buffer'], saved['state'][0]['momentum_buffer'])
    with pytest.raises(ValueError, match='2D parameters'): opt.add_param_group({'params': [Parameter(np.ones(4))]})
    assert len(opt.param_groups) == 1

# ---------------------------------------------------------------- checkpoints
def train(opt, params, grads, steps):
    for g in grads[:steps]:
        for p, gi in zip(params, ref.split(g, SHAPES)): p.grad = gi.copy()
        opt.step()

def test_state_dict_round_trip_and_bit_identical_resume():
    init, grads = ref.make_inputs(np.float64, SHAPES, 60, seed=2)
    kw = dict(lr=0.02, adjust_lr_fn='match_rms_adamw')
    straight = [Parameter(a.copy()) for a in ref.split(init, SHAPES)]
    train(Muon(straight, **kw), straight, grads, 60)
    first = [Parameter(a.copy()) for a in ref.split(init, SHAPES)]
    opt = Muon(first, **kw); train(opt, first, grads, 25)
    saved = opt.state_dict()
    opt.load_state_dict(saved)   # round trip
    again = opt.state_dict()
    assert all(np.array_equal(saved['state'][i]['momentum_buffer'], again['state'][i]['momentum_buffer']) for i in saved['state'])
    assert saved['param_groups'] == again['param_groups']
    resumed = [Parameter(p.data.copy()) for p in first]
    opt2 = Muon(resumed, lr=0.5)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]['lr'] == 0.02 and opt2.state[resumed[0]]['step'] == 25
    train(opt2, resumed, grads[25:], 35)
    for p, q in zip(resumed, straight): assert np.array_equal(p.data, q.data)

# ---------------------------------------------------------------- convergence
def test_converges_on_a_convex_quadratic():
    "f(W) = ||A W - B||^2 / 2 (A well conditioned), excess loss relative to the start: observed 1.8e-8, bound 1e-6."
    rng = np.random.default_rng(0)
    A = rng.standard_normal((10, 8)) / 3 + np.eye(10, 8); B = rng.standard_normal((10, 4))
    W = Parameter(np.zeros((8, 4))); opt = Muon([W], lr=0.05, weight_decay=0.0)
    best = np.linalg.lstsq(A, B, rcond=None)[0]
    f = lambda W: 0.5 * np.sum((A @ W - B) ** 2) - 0.5 * np.sum((A @ best - B) ** 2)
    start = f(W.data)
    for t in range(400):
        for group in opt.param_groups: group['lr'] = 0.05 * (1 - t / 400)   # linear decay to zero
        W.grad = A.T @ (A @ W.data - B); opt.step()
    assert f(W.data) < 1e-6 * start, f(W.data) / start

def test_converges_on_rosenbrock():
    "Rosenbrock on a 1x2 matrix from (-1.5, 2), where Muon is normalised momentum SGD: final loss observed 2.2e-10, bound 1e-7."
    W = Parameter(np.array([[-1.5, 2.0]])); opt = Muon([W], lr=0.02, weight_decay=0.0)
    for t in range(3000):
        for group in opt.param_groups: group['lr'] = 0.02 * (1 - t / 3000)
        W.grad = grad(W.data[0])[None]; opt.step()
    assert rosen(W.data[0]) < 1e-7, rosen(W.data[0])
