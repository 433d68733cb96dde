"""Property tests (hypothesis): checkpoints round-trip any tree exactly; optimizers never crash on in-range input,
keep finite input finite, and agree bit for bit with their pure update functions."""
import math, os, tempfile

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck
from hypothesis.extra import numpy as hnp

from minima.checkpoint import save, load
from test_checkpoint import same

SETTINGS = dict(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])

# ---- checkpoints ----------------------------------------------------------------------------------------------

DTYPES = [np.bool_, np.int8, np.int64, np.uint32, np.float16, np.float32, np.float64, np.complex128]
arrays = st.sampled_from(DTYPES).flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)))
scalars = st.sampled_from([np.float32, np.float64, np.int64, np.uint8]).flatmap(
    lambda dt: hnp.from_dtype(np.dtype(dt)).map(dt))
atoms = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
         | st.text(max_size=8) | arrays | scalars)
keys = st.integers(-5, 5) | st.text(max_size=4)
trees = st.recursive(atoms, lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=4).map(tuple)
                     | st.dictionaries(keys, inner, max_size=4), max_leaves=20)


@settings(**SETTINGS)
@given(trees)
def test_checkpoint_round_trip_is_exact(tree):
    with tempfile.TemporaryDirectory() as d:
        save(tree, os.path.join(d, 'c'))
        same(tree, load(os.path.join(d, 'c')))


# ---- optimizers ---------------------------------------------------------------------------------------------------

from minima.nn import Parameter
from minima.optim import sgd, adaptive, adam
from minima.optim.base import Optimizer, Real, Pair, Flag, Optional, Constant
from minima.optim.engine import CHUNK_SIZE

OPTIMIZERS = {n: getattr(m, n) for m in (sgd, adaptive, adam) for n in m.__all__
              if isinstance(getattr(m, n), type) and issubclass(getattr(m, n), Optimizer)}
CAP = 2.0  # upper end for settings whose range is unbounded (lr, weight_decay, lr_decay, ...)


def real_in(spec, name):
    "Floats in the interval of a `Real` spec, ends included where the spec includes them; eps is kept > 0."
    low, high, low_closed, high_closed = spec.bounds
    lo, hi = low, min(high, CAP)
    if name == 'eps': lo = max(lo, 1e-10)
    values = st.floats(lo, hi, exclude_min=not low_closed and lo == low,
                       exclude_max=not high_closed and hi == high)
    ends = [v for v, ok in ((lo, low_closed or lo > low), (hi, high_closed or hi < high)) if ok]
    return st.sampled_from(ends) | values if ends else values


def setting(spec, name):
    if isinstance(spec, Real): return real_in(spec, name)
    if isinstance(spec, Pair): return st.tuples(real_in(spec.spec, name), real_in(spec.spec, name))
    if isinstance(spec, Flag): return st.booleans()
    if isinstance(spec, Optional): return st.none() | setting(spec.spec, name)
    raise AssertionError(f'no strategy for {name}: {spec!r}')


@st.composite
def configs(draw, names=tuple(OPTIMIZERS)):
    "An optimizer class and in-range settings for it (SGD's Nesterov gets the momentum and dampening it needs)."
    name = draw(st.sampled_from(names))
    cls = OPTIMIZERS[name]
    kw = {k: draw(setting(spec, k)) for k, spec in cls.hyperparameters.items() if not isinstance(spec, Constant)}
    if kw.get('nesterov'):
        kw['momentum'] = draw(st.floats(0.01, 0.99)); kw['dampening'] = 0.0
    kw['clip_norm'] = draw(st.none() | st.floats(1e-3, 10.0))
    return name, kw


SHAPES = [(1,), (7,), (2, 3), (4, 1, 5), (CHUNK_SIZE + 5,), (130, 130)]  # the last two are updated in chunks


@st.composite
def runs(draw):
    "A parameter (shape, dtype, values) and a sequence of finite gradients of varied scales."
    shape = draw(st.sampled_from(SHAPES))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**32 - 1))
    scales = draw(st.lists(st.sampled_from([0.0, 1e-30, 1e-6, 1.0, 1e3]), min_size=1, max_size=5))
    rng = np.random.default_rng(seed)
    param = np.asarray(rng.standard_normal(shape) * draw(st.sampled_from([0.0, 1.0, 100.0])), dtype)
    grads = [np.asarray(rng.standard_normal(shape) * s, dtype) for s in scales]
    return param, grads


def run_class(name, kw, param, grads):
    p = Parameter(param.copy())
    opt = OPTIMIZERS[name]([p], **kw)
    for g in grads:
        p.grad = g.copy()
        opt.step()
        assert np.array_equal(p.grad, g, equal_nan=True)  # the gradient is never written
    return p, opt


@settings(**SETTINGS)
@given(configs(), runs())
def test_in_range_settings_never_crash_and_stay_finite(config, run):
    """Every in-range setting and gradient sequence steps without an error, and (eps > 0) a step taken from finite,
    moderate values gives finite values. "Moderate" (|x| <= 1e15) leaves room for the largest step the settings allow,
    lr/eps * |g| <= 2e10 * 2e15, so an inf or NaN cannot be a legitimate overflow; settings that make a run grow
    beyond that (alpha=1 with weight decay: RMSProp never accumulates and divides by eps) end the check."""
    name, kw = config
    param, grads = run
    p = Parameter(param.copy())
    opt = OPTIMIZERS[name]([p], **kw)
    moderate = lambda: all(np.all(np.abs(a) <= 1e15) for a in [p.data, *(v for v in opt.state.get(p, {}).values()
                                                                          if isinstance(v, np.ndarray))])
    with np.errstate(over='ignore', under='ignore'):
        for g in grads:
            if not moderate(): break
            p.grad = g.copy()
            opt.step()
            assert np.array_equal(p.grad, g)  # the gradient is never written
            assert np.isfinite(p.data).all(), (name, kw)
            for k, v in opt.state[p].items():
                if isinstance(v, np.ndarray): assert np.isfinite(v).all() and v.dtype == param.dtype, (name, kw, k)
    assert p.data.dtype == param.dtype and p.data.shape == param.shape


def reference_run(opt, param, grads):
    "The class's pure update function called directly on whole arrays, with the class's own initial state."
    group = opt.param_groups[0]
    hyper = {k: group[k] for k in type(opt).hyperparameters}
    theta = param.copy()
    state = {'step': 0, **opt.init_state(theta, group)}
    for g in grads:
        t = state['step'] = state['step'] + 1
        c = group['clip_norm']
        if c is not None and (norm := np.linalg.norm(g)) > c: g = np.divide(np.multiply(g, c), norm)
        type(opt).update(theta, g, state, step=t, **hyper)
    return theta, state


@settings(**SETTINGS)
@given(configs(), runs())
def test_class_and_pure_function_agree_bit_for_bit(config, run):
    name, kw = config
    param, grads = run
    with np.errstate(all='ignore'):
        p, opt = run_class(name, kw, param, grads)
        theta, state = reference_run(opt, param, grads)
    assert p.data.tobytes() == theta.tobytes(), name
    assert set(opt.state[p]) == set(state)
    for k, v in state.items():
        if isinstance(v, np.ndarray): assert v.tobytes() == opt.state[p][k].tobytes(), (name, k)
        else: assert v == opt.state[p][k], (name, k)


@settings(**SETTINGS)
@given(configs(), runs(), st.data())
def test_skipped_non_finite_steps_change_nothing(config, run, data):
    "With nonfinite='skip', a step whose gradient has a NaN or inf leaves everything as it was and is counted."
    name, kw = config
    param, grads = run
    bad_at = data.draw(st.integers(0, len(grads) - 1))
    bad = grads[bad_at].copy()
    bad.reshape(-1)[data.draw(st.integers(0, max(bad.size - 1, 0)))] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    with np.errstate(all='ignore'):
        p, opt = run_class(name, {**kw, 'nonfinite': 'skip'}, param, grads[:bad_at] + [bad] + grads[bad_at + 1:])
        q, ref = run_class(name, kw, param, grads[:bad_at] + grads[bad_at + 1:])
    assert opt.skipped_steps == 1 and p.data.tobytes() == q.data.tobytes()
    assert set(opt.state.get(p, {})) == set(ref.state.get(q, {}))
    for k, v in opt.state.get(p, {}).items():
        assert (v.tobytes() == ref.state[q][k].tobytes()) if isinstance(v, np.ndarray) else v == ref.state[q][k], k


# ---- scalar parameters and a numerically delicate variant ---------------------------------------------------------

@pytest.mark.parametrize('name,wd', [(n, wd) for n in OPTIMIZERS for wd in (0.0, 0.1)])
def test_scalar_parameter_steps_like_a_one_element_vector(name, wd):
    "A 0-d parameter is updated exactly as the same value held in a shape-(1,) parameter."
    out = []
    for shape in [(), (1,)]:
        p = Parameter(np.full(shape, 1.5, np.float32))
        opt = OPTIMIZERS[name]([p], weight_decay=wd)
        for g in (0.5, -0.25, 2.0):
            p.grad = np.full(shape, g, np.float32)
            opt.step()
        out.append(p.data)
    assert out[0].shape == () and out[0].tobytes() == out[1].tobytes()


@pytest.mark.parametrize('alpha', [0.0, 0.1, 0.5])
def test_centered_rmsprop_stays_finite_for_nearly_constant_gradients(alpha):
    "v - gbar**2 cancels to about zero when gradients hardly change; rounding must not make it negative (sqrt -> NaN)."
    rng = np.random.default_rng(0)
    g0 = rng.standard_normal(8).astype(np.float32)
    p = Parameter(np.zeros(8, np.float32))
    opt = adaptive.RMSprop([p], lr=1e-3, alpha=alpha, centered=True)
    with np.errstate(invalid='ignore'):
        for _ in range(60):
            p.grad = (g0 * (1 + 1e-7 * rng.standard_normal(8))).astype(np.float32)
            opt.step()
    assert np.isfinite(p.data).all()
