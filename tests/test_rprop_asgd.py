"""Rprop and ASGD against torch.optim 2.13, SparseAdam's refusal.

Parity: torch and minima run side by side on the same fixed gradients (tests/reference/make_reference.py's
generator: three parameters (4, 5), (7,), (2, 3, 2), per-value scales over four decades, sign changes, exact
zeros) for 120 steps; every parameter is compared after every step, and the state at the end, relative to
the tensor's largest magnitude: <= 1e-10 in float64, <= 1e-5 in float32 (torch's default dtype set to the
run's dtype, as torch keeps ASGD's eta and mu in it). The configurations are every `optim_inputs_func` entry
of torch's own optim_db for Rprop and ASGD, plus option combinations torch's list lacks (ASGD's averaging
only starts after t0 steps, so a small t0 is added).
"""
import os, sys, warnings
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'reference'))
import make_reference as ref
from optim_db_errors import optim_db_configs, optim_db_error_inputs as optim_db_errors
from optim_checks import RTOL, rel_err, run_with_torch, check_bad_hyperparameter, descend, rosenbrock, rosenbrock_grad
from minima.nn import Parameter
from minima.optim.engine import CHUNK_SIZE, Engine
from minima.optim.rprop import Rprop, ASGD, SparseAdam, rprop_update, asgd_update

torch = pytest.importorskip('torch')
CLASSES = {'Rprop': Rprop, 'ASGD': ASGD}

EXTRA = {'Rprop': [dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.2), maximize=True), dict(lr=0.5, step_sizes=(0.0, 1.0))],
         'ASGD': [dict(lr=0.02, t0=10), dict(lr=0.02, lambd=0.1, alpha=0.5, t0=5, weight_decay=0.1, maximize=True),
                  dict(lr=0.05, lambd=0.0, t0=0)]}

def cases():
    out = []
    for name in CLASSES:
        for kw in optim_db_configs(name) + EXTRA[name]:
            out.append((name, kw))
    return out

def run_side_by_side(name, kw, dtype, shapes=ref.SHAPES, steps=120):
    init, grads = ref.make_inputs(np.dtype(dtype).type, shapes, steps, seed=3)
    params, opt, tparams, topt = run_with_torch(lambda ps: CLASSES[name](ps, **kw), lambda ps: getattr(torch.optim, name)(ps, foreach=False, **kw),
                                                init, grads, dtype, shapes, what=f'{name} {kw} ')
    for p, tp in zip(params, tparams):
        mine, theirs = opt.state[p], topt.state[tp]
        assert sorted(mine) == sorted(theirs)
        for k, v in theirs.items():
            v = v.detach().numpy()
            assert rel_err(np.asarray(mine[k], dtype=np.float64), v.astype(np.float64)) <= RTOL[dtype], f'{name} {kw} state {k}'
    return params, opt

@pytest.mark.parametrize('dtype', ['float64', 'float32'])
@pytest.mark.parametrize('case', cases(), ids=lambda c: f"{c[0]}({','.join(f'{k}={v}' for k, v in c[1].items())})")
def test_parity_with_torch(case, dtype):
    run_side_by_side(*case, dtype)

def test_optim_db_configurations_are_all_covered():
    assert len(optim_db_configs('Rprop')) == 5 and len(optim_db_configs('ASGD')) == 7
    assert all(not any(isinstance(v, torch.Tensor) for v in kw.values()) for n in CLASSES for kw in optim_db_configs(n))

def test_asgd_average_is_the_mean_of_the_iterates_after_t0():
    "With t0 = 10, ax after step t is the plain mean of the iterates of steps 12..t (μ set after step t acts at step t + 1)."
    rng = np.random.default_rng(0)
    p = Parameter(rng.standard_normal(6)); opt = ASGD([p], lr=0.05, lambd=0.0, t0=10)
    iterates = []
    for t in range(1, 41):
        p.grad = rng.standard_normal(6); opt.step(); iterates.append(p.data.copy())
    np.testing.assert_allclose(opt.state[p]['ax'], np.mean(iterates[11:], axis=0), rtol=1e-12, atol=1e-14)

@pytest.mark.parametrize('name', list(CLASSES))
def test_a_chunked_parameter_matches_torch_and_the_pure_function(name):
    "A parameter larger than the engine's chunk is updated chunk by chunk: same result as one call of the pure function."
    kw = {'Rprop': dict(lr=0.05, etas=(0.4, 1.3)), 'ASGD': dict(lr=0.02, lambd=0.01, t0=2, weight_decay=0.1)}[name]
    fn = {'Rprop': rprop_update, 'ASGD': asgd_update}[name]
    shape = (2 * CHUNK_SIZE // 100 + 7, 100)
    rng = np.random.default_rng(1)
    p = Parameter(rng.standard_normal(shape)); opt = CLASSES[name]([p], **kw)
    ref_param, state = p.data.copy(), opt.init_state(p.data, opt.param_groups[0])
    hyper = {k: opt.param_groups[0][k] for k in ('lr', 'etas', 'step_sizes', 'maximize') if name == 'Rprop'} or \
            {k: opt.param_groups[0][k] for k in ('lr', 'lambd', 'alpha', 't0', 'weight_decay', 'maximize')}
    tp = torch.nn.Parameter(torch.from_numpy(p.data.copy()))
    with ref.torch_default_dtype(np.float64): topt = getattr(torch.optim, name)([tp], **kw)
    with ref.torch_default_dtype(np.float64):       # torch keeps ASGD's eta and mu in the default dtype
        for t in range(1, 6):
            g = rng.standard_normal(shape)
            p.grad, tp.grad = g.copy(), torch.from_numpy(g.copy())
            opt.step(); topt.step(); fn(ref_param, g, state, step=t, **hyper)
            assert np.array_equal(p.data, ref_param)
            assert rel_err(p.data, tp.detach().numpy()) <= 1e-10

# ---------------------------------------------------------------- errors
def test_every_optim_db_error_input():
    """torch's error inputs for Rprop and ASGD, translated to minima: the same exception (or warning) kind and the
    argument named. A parameter listed twice in one group warns (UserWarning), as torch; an lr array of several
    elements is a ValueError, as torch's tensor lr of several elements."""
    for name, cls in CLASSES.items():
        descs = {e.optimizer_error_input.desc for e in optim_db_errors(name)}
        p, q = Parameter(np.ones(3)), Parameter(np.ones(2))
        with pytest.raises(TypeError, match='params must be an iterable'): cls(p)
        with pytest.warns(UserWarning, match='a parameter group with duplicate parameters'): cls([p, p])
        with pytest.raises(ValueError, match='one parameter group only'): cls([{'params': [p]}, {'params': [p]}])
        with pytest.raises(ValueError, match='lr.*only with one element'): cls([p], lr=np.array([1e-3, 1e-3]))
        with pytest.raises(ValueError, match='names'): cls([('a', p), q])
        opt = cls([('a', p)])
        with pytest.raises(ValueError, match='names'): opt.add_param_group({'params': [q]})
        assert len(opt.param_groups) == 1
        if name == 'ASGD':
            assert 'weight_decay' in ' '.join(e.error_regex for e in optim_db_errors(name))
            with pytest.raises(ValueError, match='weight_decay=-0.5'): cls([p], lr=0.01, weight_decay=-0.5)
        else:
            assert any('eta' in e.error_regex for e in optim_db_errors(name))
            with pytest.raises(ValueError, match='etas'): cls([p], lr=0.01, etas=(1.0, 0.5))
        assert len(descs) == len(optim_db_errors(name))

@pytest.mark.parametrize('name,kw,exc,arg', [
    ('Rprop', dict(lr=-1e-3), ValueError, 'lr'), ('Rprop', dict(etas=(0.5, 0.9)), ValueError, 'etas'),
    ('Rprop', dict(etas=(0.0, 1.2)), ValueError, 'etas'), ('Rprop', dict(etas=0.5), TypeError, 'etas'),
    ('Rprop', dict(step_sizes=(1.0, 1e-3)), ValueError, 'step_sizes'), ('Rprop', dict(step_sizes=(-1.0, 1.0)), ValueError, 'step_sizes'),
    ('Rprop', dict(maximize=1), TypeError, 'maximize'), ('Rprop', dict(capturable=True), ValueError, 'capturable'),
    ('Rprop', dict(differentiable=True), ValueError, 'differentiable'), ('Rprop', dict(foreach='yes'), TypeError, 'foreach'),
    ('ASGD', dict(lr=-0.1), ValueError, 'lr'), ('ASGD', dict(lambd=-1.0), ValueError, 'lambd'), ('ASGD', dict(alpha=-0.5), ValueError, 'alpha'),
    ('ASGD', dict(t0=-1.0), ValueError, 't0'), ('ASGD', dict(weight_decay='0.1'), TypeError, 'weight_decay'),
    ('ASGD', dict(capturable=True), ValueError, 'capturable'), ('ASGD', dict(differentiable=True), ValueError, 'differentiable'),
])
def test_bad_hyperparameters_name_the_argument_and_change_nothing(name, kw, exc, arg):
    check_bad_hyperparameter(CLASSES[name], kw, exc, arg, init=[1.0, -2.0], warmup=([0.5, 0.25],), last=[0.5, -0.25])

def test_foreach_is_accepted_and_changes_nothing():
    a, b = Parameter(np.array([1.0, -2.0])), Parameter(np.array([1.0, -2.0]))
    oa, ob = Rprop([a], lr=0.1, foreach=True), Rprop([b], lr=0.1)
    for g in ([0.5, 0.25], [0.5, -0.25]):
        a.grad, b.grad = np.array(g), np.array(g); oa.step(); ob.step()
    assert np.array_equal(a.data, b.data)

def test_sparse_adam_refuses_and_says_what_to_use():
    p = Parameter(np.ones(3))
    with pytest.raises(NotImplementedError, match='no sparse gradients.*minima.optim.Adam'): SparseAdam([p])
    with pytest.raises(NotImplementedError): SparseAdam([p], lr=0.01, betas=(0.9, 0.99), eps=1e-8, maximize=True)

# ---------------------------------------------------------------- checkpoints
@pytest.mark.parametrize('name,kw', [('Rprop', dict(lr=0.05, maximize=True)), ('ASGD', dict(lr=0.02, t0=4, weight_decay=0.01))])
def test_state_dict_round_trip_and_bit_identical_resume(name, kw):
    cls = CLASSES[name]
    init, grads = ref.make_inputs(np.float64, ref.SHAPES, 30, seed=5)
    def fresh(): return [Parameter(a.copy()) for a in ref.split(init)]
    def run(params, opt, steps):
        for t in steps:
            for p, g in zip(params, ref.split(grads[t])): p.grad = g.copy()
            opt.step()
    full = fresh(); opt = cls(full, **kw); run(full, opt, range(30))
    first = fresh(); o1 = cls(first, **kw); run(first, o1, range(12))
    saved = o1.state_dict()
    again = cls(fresh(), **kw); again.load_state_dict(saved)      # round trip: the same dict comes back
    for i, s in saved['state'].items():
        for k, v in s.items(): assert np.array_equal(again.state_dict()['state'][i][k], v)
    resumed = [Parameter(p.data.copy()) for p in first]; o2 = cls(resumed, **kw); o2.load_state_dict(saved)
    run(first, o1, [])                                            # the saved optimizer is not used again
    run(resumed, o2, range(12, 30))
    for a, b in zip(full, resumed): assert np.array_equal(a.data, b.data)

def test_load_state_dict_refuses_a_wrong_shape_and_changes_nothing():
    p = Parameter(np.ones(3)); opt = Rprop([p]); p.grad = np.ones(3); opt.step()
    bad = opt.state_dict(); bad['state'][0]['step_size'] = np.ones(4)
    before = opt.state[p]['step_size'].copy()
    with pytest.raises(ValueError, match='step_size'): opt.load_state_dict(bad)
    assert np.array_equal(opt.state[p]['step_size'], before)

# ---------------------------------------------------------------- convergence
A = np.diag([1.0, 10.0, 100.0]); B = np.array([1.0, -2.0, 0.5])
def quad(x): return 0.5 * x @ A @ x - B @ x
def quad_grad(x): return A @ x - B
QUAD_MIN = quad(np.linalg.solve(A, B))

def test_convergence_on_a_convex_quadratic():
    # observed: Rprop 9.4e-13 above the minimum after 200 steps (0.0 with step_sizes=(0, 50)); ASGD 5.0e-9 after 2000
    assert quad(descend(lambda p: Rprop(p, lr=0.1), quad_grad, [3.0, 3.0, 3.0], 200)) - QUAD_MIN < 1e-11
    assert quad(descend(lambda p: Rprop(p, lr=0.1, step_sizes=(0.0, 50.0)), quad_grad, [3.0, 3.0, 3.0], 200)) - QUAD_MIN < 1e-20
    assert quad(descend(lambda p: ASGD(p, lr=0.015), quad_grad, [3.0, 3.0, 3.0], 2000)) - QUAD_MIN < 5e-8

def test_convergence_on_rosenbrock():
    # observed from (-1.5, 2): Rprop 1.1e-5 after 3000 steps, ASGD 5.4e-4 after 5000 steps
    assert rosenbrock(descend(lambda p: Rprop(p, lr=0.01), rosenbrock_grad, [-1.5, 2.0], 3000)) < 1e-4
    assert rosenbrock(descend(lambda p: ASGD(p, lr=1.5e-3), rosenbrock_grad, [-1.5, 2.0], 5000)) < 3e-3
