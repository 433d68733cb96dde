"""The engine against the core's reference loop, and the kinds the engine must never touch.

Every elementwise optimizer, with every option set of the torch parity grid, steps bit for bit the
same through the engine (flat arrays, chunks, two threads, lent scratch memory) and through the
core's plain loop, in float32 and float64, on one parameter larger than a chunk, on many small
parameters, and on parameters of mixed dtypes with some gradients missing. A per-tensor update is
always handed one whole parameter, however large."""
import numpy as np
import pytest

import minima.optim as optim
from minima.nn import Parameter
from minima.optim import Optimizer, Real
from minima.optim import engine
from test_optim_parity import LIVE, CLASSES

LAYOUTS = {
    'one large': [(engine.CHUNK_SIZE + 4099,)],
    'many small': [(7,), (3, 5), (100,), (2, 2, 2), (1,), (64, 9), (300,), (5,)] * 3,
    'mixed dtypes': [(40, 3), (17,), (9,), (2, 2)],
}
CLASSES = {**CLASSES, **{n: getattr(optim, n) for n in ('Lion', 'ADOPT', 'AdEMAMix', 'Rprop', 'ASGD', 'SGDScheduleFree', 'AdamWScheduleFree')}}
BEYOND_TORCH_PARITY_GRID = [   # the elementwise optimizers whose reference is not in the torch parity grid, with their options
    ('Lion', ()), ('Lion', (('maximize', True), ('weight_decay', 0.1))),
    ('ADOPT', ()), ('ADOPT', (('decoupled_weight_decay', True), ('weight_decay', 0.01))),
    ('AdEMAMix', ()), ('AdEMAMix', (('t_alpha_beta3', 2), ('weight_decay', 0.01))),
    ('Rprop', ()), ('Rprop', (('maximize', True),)),
    ('ASGD', ()), ('ASGD', (('t0', 1.0), ('weight_decay', 0.01))),
    ('SGDScheduleFree', ()), ('SGDScheduleFree', (('warmup_steps', 2), ('weight_decay', 0.01))),
    ('AdamWScheduleFree', ()), ('AdamWScheduleFree', (('warmup_steps', 2), ('weight_decay', 0.01))),
]
MINIMA_CASES = sorted({(c[2], tuple(sorted(c[3].items()))) for c in LIVE}) + BEYOND_TORCH_PARITY_GRID

def run(name, kw, layout, dtype, use_engine, steps=3):
    rng = np.random.default_rng(0)
    shapes = LAYOUTS[layout]
    dtypes = [np.float32 if (layout == 'mixed dtypes' and i % 2) else dtype for i in range(len(shapes))]
    ps = [Parameter(rng.standard_normal(s).astype(d)) for s, d in zip(shapes, dtypes)]
    opt = CLASSES[name](ps, **kw)
    opt.engine = use_engine
    if hasattr(opt, 'train'): opt.train()   # Schedule-Free steps only in training mode
    for t in range(steps):
        for i, p in enumerate(ps):
            p.grad = None if layout == 'mixed dtypes' and (i + t) % 3 == 0 else rng.standard_normal(p.data.shape).astype(p.data.dtype)
        opt.step()
    assert opt._engine_runs() == use_engine
    return [p.data.tobytes() for p in ps], [{k: (v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in opt.state[p].items()}
                                            if p in opt.state else None for p in ps]

@pytest.mark.parametrize('layout', list(LAYOUTS))
@pytest.mark.parametrize('dtype', [np.float64, np.float32], ids=['float64', 'float32'])
@pytest.mark.parametrize('case', MINIMA_CASES, ids=[f"{n}({','.join(f'{k}={v}' for k, v in kw)})" for n, kw in MINIMA_CASES])
def test_engine_is_bit_identical_to_the_reference_loop(case, dtype, layout):
    name, kw = case
    assert run(name, dict(kw), layout, dtype, True) == run(name, dict(kw), layout, dtype, False)

def test_every_elementwise_optimizer_is_covered():
    classes = {getattr(optim, n) for n in optim.__all__ if isinstance(getattr(optim, n), type)
               and issubclass(getattr(optim, n), Optimizer) and getattr(optim, n).update is not None and getattr(optim, n).kind == 'elementwise'}
    assert classes == {CLASSES[n] for n, _ in MINIMA_CASES}

def test_the_switches():
    p = Parameter(np.ones(3))
    assert optim.SGD([p])._engine_runs()
    try:
        engine.Engine.enabled = False
        assert not optim.SGD([Parameter(np.ones(3))])._engine_runs()
    finally: engine.Engine.enabled = True
    class Plain(optim.SGD): engine = False
    assert not Plain([Parameter(np.ones(3))])._engine_runs()

# ---------------------------------------------------------------- planned steps over chunk boundaries
@pytest.mark.parametrize('clip_norm', [None, 5.0])
@pytest.mark.parametrize('reorder', [False, True], ids=['layout order', 'reordered'])
def test_planned_steps_across_chunks_are_bit_identical_to_the_reference_loop(clip_norm, reorder):
    "Hundreds of parameters whose run spans several chunks (gradients cut at chunk edges), repeated steps through the engine's plan, clip_norm rescaling some of them."
    sizes = [1, engine.CHUNK_SIZE // 3, 7, engine.CHUNK_SIZE + 5, *range(100, 400), engine.CHUNK_SIZE // 2 + 1]
    def run(use_engine):
        rng = np.random.default_rng(1)
        ps = [Parameter(rng.standard_normal(n).astype(np.float32)) for n in sizes]
        opt = optim.Adam(ps, lr=0.01, clip_norm=clip_norm)
        opt.engine = use_engine
        for t in range(5):
            if reorder and t == 2: opt.param_groups[0]['params'].reverse()   # a plan whose order is not the layout's
            for p in ps: p.grad = (rng.standard_normal(p.data.shape) * rng.uniform(0.01, 20)).astype(np.float32)
            opt.step()
        planned = use_engine and bool(opt._engine.plans)
        return [p.data.tobytes() for p in ps] + [opt.state[p][k].tobytes() for p in ps for k in ('exp_avg', 'exp_avg_sq')], planned
    (fast, planned), (plain, _) = run(True), run(False)
    assert planned and fast == plain

# ---------------------------------------------------------------- a per-tensor update sees whole parameters
def trust_ratio(param, grad, state, *, step, lr, trust):
    state['seen'].append(param.shape)
    ratio = trust * np.linalg.norm(param) / np.linalg.norm(grad)
    param -= lr * ratio * grad

class TrustRatio(Optimizer):
    kind = 'tensor'
    update = staticmethod(trust_ratio)
    hyperparameters = dict(lr=Real('[0, inf)', default=0.1), trust=Real('(0, inf)', default=0.01))
    def init_state(self, param, group): return {'seen': []}

def test_a_per_tensor_update_is_never_split_and_matches_a_hand_written_loop():
    rng = np.random.default_rng(0)
    shapes = [(3,), (2 * engine.CHUNK_SIZE + 11,), (40, 7), (1,), (engine.CHUNK_SIZE, 2), (5, 5)]
    ps = [Parameter(rng.standard_normal(s)) for s in shapes]
    expected = [p.data.copy() for p in ps]
    opt = TrustRatio(ps, lr=0.1, trust=0.02)
    for _ in range(3):
        grads = [rng.standard_normal(s) for s in shapes]
        for p, g in zip(ps, grads): p.grad = g
        opt.step()
        for theta, g in zip(expected, grads):   # the hand-written loop
            theta -= 0.1 * 0.02 * np.linalg.norm(theta) / np.linalg.norm(g) * g
    for p, e, s in zip(ps, expected, shapes):
        np.testing.assert_allclose(p.data, e, rtol=0, atol=1e-12 * np.abs(e).max())
        assert opt.state[p]['seen'] == [s] * 3   # always the whole parameter, in its own shape
    assert opt._engine is None and not any(np.shares_memory(a.data, b.data) for i, a in enumerate(ps) for b in ps[i + 1:])
