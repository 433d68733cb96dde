"""Checks every optimizer's tests run the same way: the error measure, the fixed gradient sequences, a minima optimizer
stepped beside a reference one, refused hyperparameters that change nothing, bit-identical resume, and the two
test problems (a convex quadratic and Rosenbrock). Imported by the tests as `optim_checks` (tests/reference on sys.path)."""
import copy
import numpy as np
import pytest
import torch
from minima.nn import Parameter

SHAPES = [(7,), (4, 5), (2, 3, 4)]              # a vector, a matrix and a 3-D tensor
RTOL = {'float64': 1e-10, 'float32': 1e-5}      # the project's bar, relative to the tensor's largest magnitude

def tolerance(dtype): return RTOL[np.dtype(dtype).name]

def rel_err(a, b):
    "max|a - b| relative to the largest magnitude of b."
    scale = np.max(np.abs(b))
    return np.max(np.abs(a - b)) / scale if scale > 0 else np.max(np.abs(a))

@pytest.fixture(autouse=True, scope='module')
def one_torch_thread():
    """Imported into a test module: its references' small tensor operations run on one torch thread, many times faster
    than on two contended ones."""
    before = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

# ---------------------------------------------------------------- gradients and the side-by-side run
def gradients(steps, dtype=np.float64, shapes=SHAPES, seed=0, decades=2, offset=0.0, zeros=False):
    """A fixed sequence of gradients, one list per step, independent of the parameters: standard normal values times
    a scale drawn per tensor and step from 10^-decades to 10^decades, plus `offset`; `zeros`: the vector's entry
    t mod 7 is exactly 0 at step t."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(steps):
        gs = [rng.standard_normal(s) * 10.0 ** rng.uniform(-decades, decades) for s in shapes]
        if offset: gs = [g + offset for g in gs]
        gs = [g.astype(dtype) for g in gs]
        if zeros: gs[0][t % 7] = 0.0
        out.append(gs)
    return out

def run_side_by_side(make_ref, make_mine, dtype=np.float64, steps=150, seed=0, shapes=SHAPES, init_scale=1.0,
                     grads=None, zeros=True, state_keys=()):
    """Step `make_ref(torch parameters)` and `make_mine(minima parameters)` on the same gradients (`grads`, or
    `gradients(steps, dtype, shapes, seed, zeros=zeros)`) from the same start: the parameters must agree after
    every step and the state buffers `state_keys` at the end, to `tolerance(dtype)`. Returns both optimizers and
    both parameter lists."""
    rtol = tolerance(dtype)
    rng = np.random.default_rng(seed + 1)
    init = [(init_scale * rng.standard_normal(s)).astype(dtype) for s in shapes]
    tparams = [torch.nn.Parameter(torch.tensor(a.copy())) for a in init]
    mparams = [Parameter(a.copy()) for a in init]
    topt, mopt = make_ref(tparams), make_mine(mparams)
    for t, gs in enumerate(gradients(steps, dtype, shapes, seed, zeros=zeros) if grads is None else grads):
        for tp, mp, g in zip(tparams, mparams, gs):
            tp.grad = torch.tensor(g.copy()); mp.grad = g.copy()
        topt.step(); mopt.step()
        for i, (tp, mp) in enumerate(zip(tparams, mparams)):
            err = rel_err(mp.data, tp.detach().numpy())
            assert err <= rtol, f'step {t + 1}, tensor {i}: relative error {err:.3g}'
    for tp, mp in zip(tparams, mparams):
        for k in state_keys:
            assert rel_err(mopt.state[mp][k], topt.state[tp][k].numpy()) <= rtol, k
    return topt, mopt, tparams, mparams

def run_with_torch(make_mine, make_torch, init, grads, dtype, shapes, what=''):
    """minima's optimizer `make_mine(params)` and torch's `make_torch(tparams)` (made and stepped with torch's default
    dtype set to `dtype`) on the flat start `init` and flat gradients `grads` split by `shapes` (tests/reference/
    make_reference.py's layout): every parameter keeps its dtype and agrees with torch's after every step."""
    import make_reference as ref
    rtol = tolerance(dtype)
    params = [Parameter(a.copy()) for a in ref.split(init, shapes)]
    opt = make_mine(params)
    with ref.torch_default_dtype(np.dtype(dtype).type):
        tparams = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in ref.split(init, shapes)]
        topt = make_torch(tparams)
        for t in range(1, len(grads) + 1):
            for p, tp, g in zip(params, tparams, ref.split(grads[t - 1], shapes)):
                p.grad, tp.grad = g.copy(), torch.from_numpy(g.copy())
            opt.step(); topt.step()
            for i, (p, tp) in enumerate(zip(params, tparams)):
                assert p.data.dtype == np.dtype(dtype)
                err = rel_err(p.data, tp.detach().numpy())
                assert err <= rtol, f'{what}step {t}, tensor {i} {p.data.shape}: relative error {err:.3g} > {rtol:g}'
    return params, opt, tparams, topt

# ---------------------------------------------------------------- refused hyperparameters, resume
def assert_same(a, b, where='state'):
    "Two state_dict parts hold the same values: dicts key by key, lists item by item, arrays bit for bit."
    if isinstance(a, dict):
        assert sorted(a, key=str) == sorted(b, key=str), where
        for k in a: assert_same(a[k], b[k], f'{where}[{k!r}]')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)): assert_same(x, y, f'{where}[{i}]')
    elif isinstance(a, np.ndarray): assert np.array_equal(a, b), where
    else: assert a == b, where

def _gradient(g, data): return g(data) if callable(g) else np.full(data.shape, g, dtype=float)

def check_bad_hyperparameter(make, kw, exc, name, init=np.ones(3), warmup=(1.0, -0.5), last=2.0, lr=0.1):
    """`make([w], **kw)` raises `exc` naming `name`; an optimizer `make([w], lr=lr)` (no lr: None) that took the
    `warmup` steps and then has its group edited to `kw` raises the same at the next step (gradient `last`, None: the
    last one again) and changes nothing: the parameter and the whole state_dict but the edited groups. A gradient is a
    number or an array (filled to the parameter's shape) or a function of the parameter's data."""
    w = Parameter(np.array(init, dtype=float))
    with pytest.raises(exc, match=name): make([w], **kw)
    opt = make([w]) if lr is None else make([w], lr=lr)
    for g in warmup:
        w.grad = _gradient(g, w.data); opt.step()
    before, saved = w.data.copy(), copy.deepcopy(opt.state_dict())
    opt.param_groups[0].update(kw)
    if last is not None: w.grad = _gradient(last, w.data)
    with pytest.raises(exc, match=name): opt.step()
    assert np.array_equal(w.data, before)
    after = opt.state_dict()
    assert_same({k: v for k, v in after.items() if k != 'param_groups'}, {k: v for k, v in saved.items() if k != 'param_groups'})
    return opt

def check_engine_matches_the_plain_loop(cls, **kw):
    """For an elementwise optimizer: minima's engine (flat chunks across parameters) gives the plain per-tensor loop's bits,
    also across chunk borders (a parameter over two chunks long beside two small ones, 4 steps)."""
    from minima.optim.engine import CHUNK_SIZE
    shapes = [(2 * CHUNK_SIZE // 100 + 7, 100), (7,), (3, 4)]
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(4)]
    class Plain(cls): engine = False
    results = []
    for c in (cls, Plain):
        ps = [Parameter(a.copy()) for a in init]; opt = c(ps, **kw)
        for gs in grads:
            for p, g in zip(ps, gs): p.grad = g
            opt.step()
        results.append(ps)
    for a, b in zip(*results): assert np.array_equal(a.data, b.data)

def feeding(grads):
    "A `train(opt, params, start, stop)` that feeds the fixed per-step gradient lists grads[start:stop]."
    def train(opt, params, start, stop):
        for gs in grads[start:stop]:
            for p, g in zip(params, gs): p.grad = g.copy()
            opt.step()
    return train

def check_resume(make, init, train, total=40, split=17, make_again=None):
    """A run of `total` steps, and one stopped after `split`, its state_dict (a deep copy) loaded into a fresh optimizer
    (`make_again`, else `make`) over copies of the parameters and continued to `total`: the same parameters, bit for
    bit. Returns (uninterrupted optimizer, its parameters, saved state_dict, resumed optimizer, its parameters)."""
    full = [Parameter(a.copy()) for a in init]; ofull = make(full); train(ofull, full, 0, total)
    first = [Parameter(a.copy()) for a in init]; o1 = make(first); train(o1, first, 0, split)
    saved = copy.deepcopy(o1.state_dict())
    second = [Parameter(p.data.copy()) for p in first]; o2 = (make_again or make)(second); o2.load_state_dict(saved)
    train(o2, second, split, total)
    for a, b in zip(full, second): assert np.array_equal(a.data, b.data)
    return ofull, full, saved, o2, second

# ---------------------------------------------------------------- test problems
def quadratic_problem():
    "f(x) = ½xᵀAx − bᵀx (6-dimensional, A positive definite) shifted to 0 at its minimum, and its gradient."
    rng = np.random.default_rng(3)
    Q = rng.standard_normal((6, 6)); A = Q @ Q.T + 0.5 * np.eye(6); b = rng.standard_normal(6)
    x_star = np.linalg.solve(A, b)
    return (lambda x: 0.5 * x @ A @ x - b @ x - (0.5 * x_star @ A @ x_star - b @ x_star)), (lambda x: A @ x - b)

def rosenbrock(x): return (1 - x[0])**2 + 100 * (x[1] - x[0]**2)**2
def rosenbrock_grad(x): return np.array([-2 * (1 - x[0]) - 400 * x[0] * (x[1] - x[0]**2), 200 * (x[1] - x[0]**2)])

def descend(make_opt, grad, x0, steps):
    "`steps` steps of `make_opt([x])` on the gradient `grad` from x0: the final x."
    x = Parameter(np.array(x0, dtype=float)); opt = make_opt([x])
    for _ in range(steps): x.grad = grad(x.data); opt.step()
    return x.data

def minimize(make_opt, f, grad, x0, steps): return f(descend(make_opt, grad, x0, steps))
