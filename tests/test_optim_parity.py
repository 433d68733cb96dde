"""Parity of minima's optimizers with torch.optim 2.13, two ways.

(a) stored: tests/reference/optim_trajectories.npz holds torch's trajectories (written by
    tests/reference/make_reference.py); minima replays the same gradients and must follow them.
(b) live: torch and minima run side by side on the same gradients, for every combination of the
    options of every algorithm.
Both sides always see identical gradients (a fixed sequence that does not depend on the parameters).
Errors are measured per parameter tensor, relative to the tensor's largest magnitude:
max|minima - torch| / max|torch| <= 1e-10 in float64 and <= 1e-5 in float32, after every step
(live) or every 10th step (stored), and for every state buffer at the end.
"""
import itertools, json, os, sys
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'reference'))
import make_reference as ref
from optim_checks import RTOL, rel_err, run_with_torch
from minima.nn import Parameter
from minima.optim.engine import CHUNK_SIZE
from minima.optim.sgd import SGD, sgd_update
from minima.optim.adaptive import Adagrad, AdaGrad, RMSprop, RMSProp, Adadelta, adagrad_update, rmsprop_update, adadelta_update
from minima.optim.adam import Adam, AdamW, Adamax, NAdam, RAdam, adam_update, adamax_update, nadam_update, radam_update

CLASSES = dict(SGD=SGD, Adagrad=Adagrad, AdaGrad=AdaGrad, RMSprop=RMSprop, RMSProp=RMSProp, Adadelta=Adadelta,
               Adam=Adam, AdamW=AdamW, Adamax=Adamax, NAdam=NAdam, RAdam=RAdam)
DTYPES = ['float64', 'float32']

def assert_close_tensors(mine, theirs, rtol, what, shapes=ref.SHAPES):
    for i, (a, b) in enumerate(zip(ref.split(mine, shapes), ref.split(theirs, shapes))):
        err = rel_err(a, b)
        assert err <= rtol, f'{what}, tensor {i}: relative error {err:.3g} > {rtol:g}'

def make_minima(name, kwargs, init, shapes):
    params = [Parameter(a.copy()) for a in ref.split(init, shapes)]
    return params, CLASSES[name](params, **kwargs)

def minima_state(opt, params):
    "minima's final state in the layout of make_reference.torch_state."
    out = {}
    for key, v in opt.state[params[0]].items():
        if key == 'step': continue
        out[key] = np.concatenate([np.asarray(opt.state[p][key], dtype=np.float64 if key == 'mu_product' else None).reshape(-1)
                                   for p in params])
    return out

def buffer_factors(mname, mkw):
    "The seed's moving-average momentum buffer is (1 - mu) times PyTorch's (04b_optim_sgd derives it)."
    if mname == 'SGD' and mkw.get('momentum_from_zero') and mkw.get('momentum', 0) != 0:
        return {'momentum_buffer': 1 - mkw['momentum']}
    return {}

def assert_same_state(mine, theirs, rtol, what, shapes=ref.SHAPES, factors={}):
    assert sorted(mine) == sorted(theirs), f'{what}: minima keeps {sorted(mine)}, torch keeps {sorted(theirs)}'
    theirs = {k: v * factors.get(k, 1) for k, v in theirs.items()}
    for k in mine:
        if k == 'mu_product':
            # a float64 number in minima; torch keeps it in its default dtype, float32 in the float32
            # runs (set to match the parameters), where it only agrees to float32 accumulated rounding
            if theirs[k].dtype != np.float64: continue
            err = rel_err(mine[k], theirs[k])
            assert err <= rtol, f'{what}: mu_product relative error {err:.3g}'
        else: assert_close_tensors(mine[k], theirs[k], rtol, f'{what}, buffer {k}', shapes)

# ---------------------------------------------------------------- (a) stored reference trajectories
@pytest.fixture(scope='module')
def stored():
    with np.load(ref.PATH, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    return data, json.loads(str(data['meta']))

def test_stored_reference_matches_the_cases(stored):
    data, meta = stored
    assert meta['torch'].startswith('2.13')
    assert [c['id'] for c in meta['cases']] == [c[0] for c in ref.CASES]
    assert meta['steps'] >= 100
    covered = {c['torch'] for c in meta['cases']}
    assert covered == {'SGD', 'Adagrad', 'RMSprop', 'Adadelta', 'Adam', 'AdamW', 'Adamax', 'NAdam', 'RAdam'}

@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('case', [c[0] for c in ref.CASES])
def test_stored_trajectory(stored, case, dtype):
    data, meta = stored
    spec = next(c for c in meta['cases'] if c['id'] == case)
    _, tname, tkw, mname, mkw = next(c for c in ref.CASES if c[0] == case)   # the minima call as the code states it today
    assert (tname, tkw) == (spec['torch'], {k: tuple(v) if isinstance(v, list) else v for k, v in spec['torch_kwargs'].items()})
    init, grads = data[f'init|{dtype}'], data[f'grads|{dtype}']
    assert init.dtype == np.dtype(dtype) and len(grads) == meta['steps']
    params, opt = make_minima(mname, mkw, init, ref.SHAPES)
    snaps, every = data[f'{case}|{dtype}|params'], meta['every']
    k = 0
    for t in range(1, len(grads) + 1):
        for p, g in zip(params, ref.split(grads[t - 1], ref.SHAPES)): p.grad = g.copy()
        opt.step()
        if t % every == 0 or t == len(grads):
            mine = np.concatenate([p.data.reshape(-1) for p in params])
            assert mine.dtype == np.dtype(dtype)
            assert_close_tensors(mine, snaps[k], RTOL[dtype], f'{case} {dtype} step {t}'); k += 1
    assert k == len(snaps)
    prefix = f'{case}|{dtype}|state|'
    theirs = {key[len(prefix):]: data[key] for key in data if key.startswith(prefix)}
    assert_same_state(minima_state(opt, params), theirs, RTOL[dtype], f'{case} {dtype} final state',
                      factors=buffer_factors(mname, mkw))
    assert all(opt.state[p]['step'] == meta['steps'] for p in params)

# ---------------------------------------------------------------- (b) live, every option combination
def grid(**axes):
    keys = list(axes)
    return [dict(zip(keys, vals)) for vals in itertools.product(*axes.values())]

def live_cases():
    cases = []
    for o in grid(momentum=[0.0, 0.9], dampening=[0.0, 0.3], nesterov=[False, True], weight_decay=[0.0, 0.1], maximize=[False, True]):
        if o['nesterov'] and (o['momentum'] == 0 or o['dampening'] != 0): continue
        cases.append(('SGD', dict(lr=0.05, **o), 'SGD', dict(lr=0.05, **o)))
    for mu in (0.5, 0.9):   # the seed's moving-average momentum is PyTorch's with lr scaled by (1 - mu)
        cases.append(('SGD', dict(lr=0.05 * (1 - mu), momentum=mu), 'SGD', dict(lr=0.05, momentum=mu, dampening=mu, momentum_from_zero=True)))
    for o in grid(lr_decay=[0.0, 0.01], initial_accumulator_value=[0.0, 0.5], weight_decay=[0.0, 0.1], maximize=[False, True]):
        cases.append(('Adagrad', dict(lr=0.1, **o), 'Adagrad', dict(lr=0.1, **o)))
    for o in grid(lr_decay=[0.0, 0.01], initial_accumulator_value=[0.0, 0.5], eps=[1e-7, 1e-3]):
        cases.append(('Adagrad', dict(lr=0.1, **o), 'AdaGrad', dict(lr=0.1, **o)))
    for o in grid(momentum=[0.0, 0.5], centered=[False, True], weight_decay=[0.0, 0.1], maximize=[False, True]):
        cases.append(('RMSprop', dict(lr=0.01, alpha=0.9, **o), 'RMSprop', dict(lr=0.01, alpha=0.9, **o)))
    for o in grid(alpha=[0.99, 0.9], momentum=[0.0, 0.5], centered=[False, True]):
        rho = o.pop('alpha')
        cases.append(('RMSprop', dict(lr=0.01, alpha=rho, eps=1e-7, **o), 'RMSProp', dict(lr=0.01, alpha=rho, eps=1e-7, **o)))
    for o in grid(rho=[0.9, 0.5], weight_decay=[0.0, 0.1], maximize=[False, True]):
        cases.append(('Adadelta', o, 'Adadelta', o))
    for o in grid(amsgrad=[False, True], weight_decay=[0.0, 0.1], decoupled_weight_decay=[False, True], maximize=[False, True]):
        cases.append(('Adam', dict(lr=0.01, **o), 'Adam', dict(lr=0.01, **o)))
    for o in grid(amsgrad=[False, True], weight_decay=[0.01, 0.1], maximize=[False, True]):
        cases.append(('AdamW', dict(lr=0.01, **o), 'AdamW', dict(lr=0.01, **o)))
    for o in grid(weight_decay=[0.0, 0.1], maximize=[False, True], betas=[(0.9, 0.999), (0.8, 0.99)]):
        cases.append(('Adamax', dict(lr=0.01, **o), 'Adamax', dict(lr=0.01, **o)))
    for o in grid(weight_decay=[0.0, 0.1], decoupled_weight_decay=[False, True], maximize=[False, True], momentum_decay=[4e-3, 0.02]):
        cases.append(('NAdam', dict(lr=0.01, **o), 'NAdam', dict(lr=0.01, **o)))
    for o in grid(weight_decay=[0.0, 0.1], decoupled_weight_decay=[False, True], maximize=[False, True]):
        cases.append(('RAdam', dict(lr=0.01, **o), 'RAdam', dict(lr=0.01, **o)))
    return cases

LIVE = live_cases()

def case_id(c):
    return f"{c[0]}->{c[2]}(" + ','.join(f'{k}={v}' for k, v in c[3].items()) + ')'

def run_side_by_side(tname, tkw, mname, mkw, dtype, shapes=ref.SHAPES, steps=ref.STEPS):
    init, grads = ref.make_inputs(np.dtype(dtype).type, shapes, steps, seed=1)
    params, opt, tparams, topt = run_with_torch(lambda ps: CLASSES[mname](ps, **mkw), lambda ps: ref.torch_optimizer(tname, tkw, ps),
                                                init, grads, dtype, shapes)
    with ref.torch_default_dtype(np.dtype(dtype).type):
        assert_same_state(minima_state(opt, params), ref.torch_state(topt, tparams), RTOL[dtype], 'final state', shapes,
                          buffer_factors(mname, mkw))

def test_live_cases_cover_every_algorithm():
    assert {c[0] for c in LIVE} == {'SGD', 'Adagrad', 'RMSprop', 'Adadelta', 'Adam', 'AdamW', 'Adamax', 'NAdam', 'RAdam'}
    assert {c[2] for c in LIVE} == set(CLASSES)
    assert len(LIVE) > 120

@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('case', LIVE, ids=case_id)
def test_live_parity(case, dtype):
    pytest.importorskip('torch')
    run_side_by_side(*case, dtype)

# ---------------------------------------------------------------- chunked execution
# A parameter larger than the base's chunk size is updated chunk by chunk: the result must still
# match torch, and must be bit-identical to one call of the pure function on the whole array
# (NAdam's mu_product must be multiplied once per step, not once per chunk).
BIG = [(2 * CHUNK_SIZE // 100 + 7, 100)]
ALL_OPTIONS = {
    'SGD': (dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01, maximize=True), sgd_update, ['momentum_buffer']),
    'SGD-nesterov': (dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01), sgd_update, ['momentum_buffer']),
    'Adagrad': (dict(lr=0.1, lr_decay=0.01, weight_decay=0.05, initial_accumulator_value=0.1), adagrad_update, ['sum']),
    'RMSprop': (dict(lr=0.01, alpha=0.9, weight_decay=0.1, momentum=0.5, centered=True), rmsprop_update, ['square_avg', 'momentum_buffer', 'grad_avg']),
    'Adadelta': (dict(lr=0.5, weight_decay=0.1, maximize=True), adadelta_update, ['square_avg', 'acc_delta']),
    'Adam': (dict(lr=0.01, weight_decay=0.1, amsgrad=True), adam_update, ['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq']),
    'AdamW': (dict(lr=0.01, weight_decay=0.1), adam_update, ['exp_avg', 'exp_avg_sq']),
    'Adamax': (dict(lr=0.01, weight_decay=0.1), adamax_update, ['exp_avg', 'exp_inf']),
    'NAdam': (dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True), nadam_update, ['exp_avg', 'exp_avg_sq']),
    'RAdam': (dict(lr=0.01, weight_decay=0.1), radam_update, ['exp_avg', 'exp_avg_sq']),
}

@pytest.mark.parametrize('name', list(ALL_OPTIONS))
def test_chunked_parameter_matches_torch_and_the_pure_function(name):
    pytest.importorskip('torch')
    kw, fn, buffers = ALL_OPTIONS[name]
    assert np.prod(BIG[0]) > 2 * CHUNK_SIZE
    name = name.split('-')[0]
    run_side_by_side(name, kw, name, kw, 'float64', shapes=BIG, steps=12)
    # the class (chunked) against the pure function on the whole array, bit for bit
    init, grads = ref.make_inputs(np.float64, BIG, 12, seed=2)
    (p,), opt = make_minima(name, kw, init, BIG)
    whole = init.reshape(BIG[0]).copy()
    state = opt.init_state(whole, opt.param_groups[0])
    fkw = {k: opt.param_groups[0][k] for k in type(opt).hyperparameters}
    for t in range(1, 13):
        p.grad = grads[t - 1].reshape(BIG[0]).copy(); opt.step()
        fn(whole, grads[t - 1].reshape(BIG[0]), state, step=t, **fkw)
    np.testing.assert_array_equal(p.data, whole)
    for b in buffers: np.testing.assert_array_equal(opt.state[p][b], state[b])
    if name == 'NAdam': assert opt.state[p]['mu_product'] == state['mu_product']

# ---------------------------------------------------------------- where minima deliberately differs
def test_centered_rmsprop_stays_finite_where_torch_returns_nan():
    """A constant gradient makes v - gbar^2 a few ulps negative: torch takes its root (NaN), minima clamps it at 0.
    Here the true variance halves every step, so v - gbar^2 is computed with growing cancellation: the two
    libraries agree to 1e-10 while it is above 1e-6 g^2 (the first 20 steps), and drift apart by rounding after."""
    torch = pytest.importorskip('torch')
    p, tp = Parameter(np.zeros(1)), torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt, topt = RMSprop([p], lr=0.01, alpha=0.5, centered=True), torch.optim.RMSprop([tp], lr=0.01, alpha=0.5, centered=True, foreach=False)
    torch_nan_at = None
    for t in range(1, 101):
        p.grad, tp.grad = np.array([0.7]), torch.tensor([0.7], dtype=torch.float64)
        opt.step(); topt.step()
        if torch_nan_at is None and torch.isnan(tp).any(): torch_nan_at = t
        if t <= 20: assert rel_err(p.data, tp.detach().numpy()) <= 1e-10
        assert np.isfinite(p.data).all()
    assert torch_nan_at is not None
