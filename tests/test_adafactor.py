"""minima's Adafactor against torch.optim.Adafactor 2.13, run live on the same gradients.

Every step, every parameter: float64 <= 1e-10 and float32 <= 1e-5 relative to the tensor's largest magnitude, over
100 steps, on a matrix, a vector, a 3-D tensor (factored over its last two dimensions, the first batched), a column
and a 0-d parameter; the state buffers (row/column statistics, the vector's average) at the end.
Gradients come from tests/reference/make_reference.py (per-value scales from 1e-3 to 10, sign changes, zeros).
"""
import os, sys
import numpy as np
import pytest

torch = pytest.importorskip('torch')
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'reference'))
import make_reference as ref
from optim_db_errors import check_error_input, optim_db_inputs, optim_db_error_inputs, check_signature_is_torchs
from optim_checks import RTOL, rel_err, run_with_torch, rosenbrock as rosen, rosenbrock_grad as grad
from minima.nn import Parameter
from minima.optim.adafactor import Adafactor

SHAPES = [(4, 5), (7,), (2, 3, 4), (6, 1), ()]
STEPS = 100

def for_minima(kwargs):
    "torch kwargs as minima takes them: no `foreach` (minima has one implementation), a tensor lr as its float."
    return {k: float(v) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items() if k != 'foreach'}

def run_side_by_side(kwargs, dtype, init=None, steps=STEPS):
    start, grads = ref.make_inputs(np.dtype(dtype).type, SHAPES, steps, seed=1)
    init = start if init is None else init.astype(dtype)
    params, opt, tparams, topt = run_with_torch(lambda ps: Adafactor(ps, **for_minima(kwargs)), lambda ps: torch.optim.Adafactor(ps, **kwargs),
                                                init, grads, dtype, SHAPES)
    for p, tp in zip(params, tparams):
        theirs = {k: v.numpy() for k, v in topt.state[tp].items() if k != 'step'}
        mine = {k: v for k, v in opt.state[p].items() if k != 'step'}
        assert sorted(mine) == sorted(theirs)
        for k in mine:
            assert mine[k].shape == theirs[k].shape and mine[k].dtype == theirs[k].dtype, k
            assert rel_err(mine[k], theirs[k]) <= RTOL[dtype], k
        assert opt.state[p]['step'] == steps == topt.state[tp]['step'].item()

def optim_db_configs(): return [(o.desc, o.kwargs) for o in optim_db_inputs('Adafactor')]

DB = optim_db_configs()
GRID = [dict(lr=0.5), dict(lr=0.05, eps=(1e-12, 1e-3)), dict(eps=(1e-3, 0.1)), dict(eps=(None, 0.0), weight_decay=0.5),
        dict(d=1e9), dict(beta2_decay=0.0), dict(beta2_decay=-0.3, d=2.0, maximize=True, weight_decay=0.01)]
CASES = ([(f'db:{desc}', kw) for desc, kw in DB] + [(f'db:{desc}:foreach', {**kw, 'foreach': True}) for desc, kw in DB]
         + [(f'grid{i}', kw) for i, kw in enumerate(GRID)])

def test_optim_db_configs_are_all_here():
    assert {d for d, _ in DB} == {'default', 'nonzero weight_decay', 'maximize', 'non-default beta2_decay',
                                  'non-default clipping threshold d'}

@pytest.mark.parametrize('dtype', ['float64', 'float32'])
@pytest.mark.parametrize('case', CASES, ids=[c[0] for c in CASES])
def test_parity_with_torch(case, dtype):
    run_side_by_side(case[1], dtype)

@pytest.mark.parametrize('dtype', ['float64', 'float32'])
def test_parameters_that_start_at_zero(dtype):
    "RMS(θ) = 0 at the start: the first step is ε₂ρ (with ε₂ = 0, nothing ever moves); both agree."
    zeros = np.zeros(sum(int(np.prod(s)) for s in SHAPES))
    run_side_by_side(dict(), dtype, init=zeros, steps=50)
    run_side_by_side(dict(eps=(None, 0.0)), dtype, init=zeros, steps=5)

def test_state_shapes():
    opt = Adafactor([Parameter(np.ones((2, 3, 4, 5))), Parameter(np.ones(3)), Parameter(np.array(1.0))])
    for p in (g for g in opt.param_groups[0]['params']): p.grad = np.ones_like(p.data)
    opt.step()
    shapes = [{k: v.shape for k, v in opt.state[p].items() if k != 'step'} for p in opt.param_groups[0]['params']]
    assert shapes == [{'row_var': (2, 3, 4, 1), 'col_var': (2, 3, 1, 5)}, {'variance': (3,)}, {'variance': ()}]

# ---------------------------------------------------------------- signature and errors
def test_signature_and_defaults_are_torchs():
    check_signature_is_torchs(Adafactor, torch.optim.Adafactor, leave_out=('foreach',))

@pytest.mark.parametrize('error', optim_db_error_inputs('Adafactor'), ids=lambda e: e.optimizer_error_input.desc)
def test_optim_db_error_inputs(error):
    check_error_input(Adafactor, error)

@pytest.mark.parametrize('kwargs, name, kind', [
    (dict(lr=-1e-3), 'lr', ValueError), (dict(beta2_decay=0.5), 'beta2_decay', ValueError),
    (dict(eps=(-1.0, 1e-3)), 'eps', ValueError), (dict(eps=(None, -1e-3)), 'eps', ValueError),
    (dict(eps=(None, None)), 'eps', TypeError), (dict(d=0.5), 'd', ValueError), (dict(weight_decay=-0.1), 'weight_decay', ValueError)])
def test_bad_hyperparameters_raise_torchs_kind(kwargs, name, kind):
    with pytest.raises(kind): torch.optim.Adafactor([torch.nn.Parameter(torch.ones(2))], **kwargs)
    with pytest.raises(kind, match=name): Adafactor([Parameter(np.ones(2))], **kwargs)

def test_errors_change_nothing():
    a, b = Parameter(np.ones((2, 3))), Parameter(np.ones(4))
    opt = Adafactor([a, b])
    for p in (a, b): p.grad = np.full(p.data.shape, 0.5)
    opt.step()
    before = [a.data.copy(), b.data.copy(), opt.state[a]['row_var'].copy()]
    opt.param_groups[0]['eps'] = (None, -1.0)
    with pytest.raises(ValueError, match='eps'): opt.step()
    opt.param_groups[0]['eps'] = (None, 1e-3)
    b.data = np.ones(4, dtype=np.complex128)
    with pytest.raises(RuntimeError, match='complex'): opt.step()
    assert np.array_equal(a.data, before[0]) and np.array_equal(opt.state[a]['row_var'], before[2])
    assert opt.state[a]['step'] == 1

# ---------------------------------------------------------------- checkpoints
def test_state_dict_round_trip_and_bit_identical_resume():
    init, grads = ref.make_inputs(np.float64, SHAPES, 60, seed=2)
    kw = dict(lr=0.05, weight_decay=0.01)
    def train(opt, params, gs):
        for g in gs:
            for p, gi in zip(params, ref.split(g, SHAPES)): p.grad = gi.copy()
            opt.step()
    straight = [Parameter(a.copy()) for a in ref.split(init, SHAPES)]
    train(Adafactor(straight, **kw), straight, grads)
    first = [Parameter(a.copy()) for a in ref.split(init, SHAPES)]
    opt = Adafactor(first, **kw); train(opt, first, grads[:25])
    saved = opt.state_dict()
    opt.load_state_dict(saved)
    again = opt.state_dict()
    assert saved['param_groups'] == again['param_groups']
    for i in saved['state']:
        assert saved['state'][i].keys() == again['state'][i].keys()
        assert all(np.array_equal(saved['state'][i][k], again['state'][i][k]) for k in saved['state'][i])
    resumed = [Parameter(p.data.copy()) for p in first]
    opt2 = Adafactor(resumed, lr=0.9)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]['lr'] == 0.05 and opt2.state[resumed[2]]['row_var'].shape == (2, 3, 1)
    train(opt2, resumed, grads[25:])
    for p, q in zip(resumed, straight): assert np.array_equal(p.data, q.data)

def test_load_refuses_a_state_of_the_wrong_shape():
    p = Parameter(np.ones((3, 4))); opt = Adafactor([p]); p.grad = np.ones((3, 4)); opt.step()
    saved = opt.state_dict()
    saved['state'][0]['row_var'] = np.zeros((4, 1))
    with pytest.raises(ValueError): Adafactor([Parameter(np.ones((3, 4)))]).load_state_dict(saved)

# ---------------------------------------------------------------- convergence
def test_converges_on_a_convex_quadratic():
    "f(W) = ||A W - B||^2 / 2 from a random start, lr 0.05, 600 steps: excess loss relative to the start observed 4.8e-4, bound 2e-3."
    rng = np.random.default_rng(0)
    A = rng.standard_normal((10, 8)) / 3 + np.eye(10, 8); B = rng.standard_normal((10, 4))
    W = Parameter(rng.standard_normal((8, 4))); opt = Adafactor([W], lr=0.05)
    best = np.linalg.lstsq(A, B, rcond=None)[0]
    f = lambda W: 0.5 * np.sum((A @ W - B) ** 2) - 0.5 * np.sum((A @ best - B) ** 2)
    start = f(W.data)
    for t in range(600):
        W.grad = A.T @ (A @ W.data - B); opt.step()
    assert f(W.data) < 2e-3 * start, f(W.data) / start

def test_converges_on_rosenbrock():
    "Rosenbrock from (-1.5, 2) (loss 12.5) as a vector (unfactored), lr 0.01, 3000 steps: final loss observed 0.040, bound 0.1."
    x = Parameter(np.array([-1.5, 2.0])); opt = Adafactor([x], lr=0.01)
    for t in range(3000):
        x.grad = grad(x.data); opt.step()
    assert rosen(x.data) < 0.1, rosen(x.data)
