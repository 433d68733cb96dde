"""Lion against lion_pytorch (and pytorch_optimizer's Lion), live, in float64 and float32.

Both sides get the same gradients: a fixed random sequence whose scale changes from step to step
(so the sign is tested on small and large values, and on exact zeros), on a vector, a matrix and
a 3-D tensor. Errors are relative to the tensor's largest magnitude: <= 1e-10 in float64,
<= 1e-5 in float32.
"""
import copy
import numpy as np, pytest, torch
import lion_pytorch, pytorch_optimizer
from minima.nn import Parameter
from minima.optim.lion import Lion, lion_update

SHAPES = [(7,), (4, 5), (2, 3, 4)]
RTOL = {np.float64: 1e-10, np.float32: 1e-5}

def rel_err(a, b):
    scale = np.max(np.abs(b))
    return np.max(np.abs(a - b)) / scale if scale > 0 else np.max(np.abs(a))

def gradients(steps, dtype, seed=0):
    "A fixed sequence of gradients per step, scale varying over four orders of magnitude, some exact zeros."
    rng = np.random.default_rng(seed)
    out = []
    for t in range(steps):
        gs = [(rng.standard_normal(s) * 10.0 ** rng.uniform(-2, 2)).astype(dtype) for s in SHAPES]
        gs[0][t % 7] = 0.0
        out.append(gs)
    return out

def run_side_by_side(make_ref, make_mine, dtype=np.float64, steps=150, seed=0):
    "Step both optimizers on the same gradients; assert the parameters agree after every step."
    rng = np.random.default_rng(seed + 1)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    tparams = [torch.nn.Parameter(torch.tensor(a.copy())) for a in init]
    mparams = [Parameter(a.copy()) for a in init]
    topt, mopt = make_ref(tparams), make_mine(mparams)
    for t, gs in enumerate(gradients(steps, dtype, seed)):
        for tp, mp, g in zip(tparams, mparams, gs):
            tp.grad = torch.tensor(g.copy()); mp.grad = g.copy()
        topt.step(); mopt.step()
        for i, (tp, mp) in enumerate(zip(tparams, mparams)):
            err = rel_err(mp.data, tp.detach().numpy())
            assert err <= RTOL[dtype], f'step {t + 1}, tensor {i}: relative error {err:.3g}'
    return topt, mopt, tparams, mparams

@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('kw', [dict(), dict(lr=1e-2), dict(lr=3e-3, weight_decay=0.5), dict(lr=1e-3, betas=(0.95, 0.98), weight_decay=0.1),
                                dict(lr=1e-2, betas=(0.0, 0.5)), dict(lr=1e-2, betas=(1.0, 1.0))])
def test_parity_lion_pytorch(kw, dtype):
    topt, mopt, tparams, mparams = run_side_by_side(lambda p: lion_pytorch.Lion(p, **kw), lambda p: Lion(p, **kw), dtype)
    for tp, mp in zip(tparams, mparams):
        assert rel_err(mopt.state[mp]['exp_avg'], topt.state[tp]['exp_avg'].numpy()) <= RTOL[dtype]

@pytest.mark.parametrize('kw', [dict(lr=1e-2, weight_decay=0.3), dict(lr=1e-2, maximize=True), dict(lr=1e-3, weight_decay=0.1, maximize=True)])
def test_parity_pytorch_optimizer(kw):
    run_side_by_side(lambda p: pytorch_optimizer.Lion(p, **kw), lambda p: Lion(p, **kw))

def test_engine_matches_the_plain_loop():
    "Lion is elementwise: the engine (flat chunks across parameters) gives the plain per-tensor loop's bits, also across chunk borders."
    from minima.optim.engine import CHUNK_SIZE
    shapes = [(2 * CHUNK_SIZE // 100 + 7, 100), (7,), (3, 4)]
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(4)]
    class Plain(Lion): engine = False
    results = []
    for cls in (Lion, Plain):
        ps = [Parameter(a.copy()) for a in init]; opt = cls(ps, lr=1e-2, weight_decay=0.1)
        for gs in grads:
            for p, g in zip(ps, gs): p.grad = g
            opt.step()
        results.append(ps)
    for a, b in zip(*results): assert np.array_equal(a.data, b.data)

def test_defaults_and_signature():
    import inspect
    assert str(inspect.signature(Lion)) == "(params, lr=0.0001, betas=(0.9, 0.99), weight_decay=0.0, *, maximize=False, nonfinite='apply', clip_norm=None)"
    ref = inspect.signature(lion_pytorch.Lion).parameters
    assert Lion([Parameter(np.zeros(1))]).defaults['lr'] == ref['lr'].default
    assert Lion([Parameter(np.zeros(1))]).defaults['betas'] == ref['betas'].default

@pytest.mark.parametrize('kw, exc, name', [(dict(lr=-1e-3), ValueError, 'lr'), (dict(lr='a'), TypeError, 'lr'),
                                           (dict(betas=(0.9, 1.01)), ValueError, 'betas'), (dict(betas=(-0.1, 0.9)), ValueError, 'betas'),
                                           (dict(betas=(0.9,)), TypeError, 'betas'), (dict(weight_decay=-0.1), ValueError, 'weight_decay')])
def test_bad_hyperparameters(kw, exc, name):
    w = Parameter(np.ones(3))
    with pytest.raises(exc, match=name): Lion([w], **kw)
    opt = Lion([w], lr=0.1)
    w.grad = np.ones(3); opt.step()
    before, state = w.data.copy(), copy.deepcopy(opt.state[w])
    opt.param_groups[0].update(kw)
    w.grad = np.full(3, -2.0)
    with pytest.raises(exc, match=name): opt.step()
    assert np.array_equal(w.data, before) and np.array_equal(opt.state[w]['exp_avg'], state['exp_avg']) and opt.state[w]['step'] == 1

def quadratic_problem():
    rng = np.random.default_rng(3)
    Q = rng.standard_normal((6, 6)); A = Q @ Q.T + 0.5 * np.eye(6); b = rng.standard_normal(6)
    x_star = np.linalg.solve(A, b)
    f = lambda x: 0.5 * x @ A @ x - b @ x - (0.5 * x_star @ A @ x_star - b @ x_star)
    return f, lambda x: A @ x - b

def rosenbrock(x): return (1 - x[0])**2 + 100 * (x[1] - x[0]**2)**2
def rosenbrock_grad(x): return np.array([-2 * (1 - x[0]) - 400 * x[0] * (x[1] - x[0]**2), 200 * (x[1] - x[0]**2)])

def minimize(make_opt, f, grad, x0, steps):
    x = Parameter(np.array(x0, dtype=float)); opt = make_opt([x])
    for _ in range(steps): x.grad = grad(x.data); opt.step()
    return f(x.data)

def test_converges_on_quadratic():
    f, grad = quadratic_problem()
    # a sign method with constant rate ends on a γ-scale cycle: the rate decays by hand over three stages
    x = Parameter(np.zeros(6)); opt = Lion([x], lr=1e-2)
    for lr in (1e-2, 1e-3, 1e-4):
        opt.param_groups[0]['lr'] = lr
        for _ in range(1000): x.grad = grad(x.data); opt.step()
    assert f(x.data) < 2e-6   # observed 2.0e-7

def test_converges_on_rosenbrock():
    assert minimize(lambda p: Lion(p, lr=3e-3, betas=(0.95, 0.98)), rosenbrock, rosenbrock_grad, (-1.5, 2.0), 3000) < 1e-4   # observed 4.0e-6

def test_resume_is_bit_identical():
    gs = gradients(40, np.float64, seed=5)
    init = [np.random.default_rng(6).standard_normal(s) for s in SHAPES]
    def train(params, opt, seq):
        for g in seq:
            for p, gi in zip(params, g): p.grad = gi.copy()
            opt.step()
    full = [Parameter(a.copy()) for a in init]; train(full, Lion(full, lr=1e-2, weight_decay=0.1), gs)
    first = [Parameter(a.copy()) for a in init]; opt = Lion(first, lr=1e-2, weight_decay=0.1); train(first, opt, gs[:17])
    sd = copy.deepcopy(opt.state_dict())
    second = [Parameter(p.data.copy()) for p in first]; opt2 = Lion(second, lr=1.0); opt2.load_state_dict(sd)
    assert opt2.param_groups[0]['lr'] == 1e-2
    train(second, opt2, gs[17:])
    for a, b in zip(full, second): assert np.array_equal(a.data, b.data)

def test_update_function_without_autograd():
    "lion_update on plain arrays: a constant gradient moves every coordinate by exactly γ per step."
    w, state = np.zeros(3), {'exp_avg': np.zeros(3)}
    for t in range(1, 6): lion_update(w, np.array([2.0, -1e-9, 0.0]), state, step=t, lr=0.1, betas=(0.9, 0.99), weight_decay=0.0, maximize=False)
    assert np.allclose(w, [-0.5, 0.5, 0.0], rtol=0, atol=1e-15)
