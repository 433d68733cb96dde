"""Lion against lion_pytorch (and pytorch_optimizer's Lion), live, in float64 and float32.

Both sides get the same gradients: a fixed random sequence whose scale changes from step to step
(so the sign is tested on small and large values, and on exact zeros), on a vector, a matrix and
a 3-D tensor. Errors are relative to the tensor's largest magnitude: <= 1e-10 in float64,
<= 1e-5 in float32.
"""
import os, sys
import numpy as np, pytest
import lion_pytorch, pytorch_optimizer
from minima.nn import Parameter
from minima.optim.lion import Lion, lion_update

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'reference'))
from optim_checks import (SHAPES, gradients, run_side_by_side, check_bad_hyperparameter,
                          check_engine_matches_the_plain_loop, feeding, check_resume, quadratic_problem, rosenbrock,
                          rosenbrock_grad, minimize)

@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('kw', [dict(), dict(lr=1e-2), dict(lr=3e-3, weight_decay=0.5), dict(lr=1e-3, betas=(0.95, 0.98), weight_decay=0.1),
                                dict(lr=1e-2, betas=(0.0, 0.5)), dict(lr=1e-2, betas=(1.0, 1.0))])
def test_parity_lion_pytorch(kw, dtype):
    run_side_by_side(lambda p: lion_pytorch.Lion(p, **kw), lambda p: Lion(p, **kw), dtype, state_keys=('exp_avg',))

@pytest.mark.parametrize('kw', [dict(lr=1e-2, weight_decay=0.3), dict(lr=1e-2, maximize=True), dict(lr=1e-3, weight_decay=0.1, maximize=True)])
def test_parity_pytorch_optimizer(kw):
    run_side_by_side(lambda p: pytorch_optimizer.Lion(p, **kw), lambda p: Lion(p, **kw))

def test_engine_matches_the_plain_loop():
    "Lion is elementwise: the engine gives the plain per-tensor loop's bits, also across chunk borders."
    check_engine_matches_the_plain_loop(Lion, lr=1e-2, weight_decay=0.1)


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
    opt = check_bad_hyperparameter(Lion, kw, exc, name, warmup=(1.0,), last=-2.0)
    assert opt.state[opt.param_groups[0]['params'][0]]['step'] == 1

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
    init = [np.random.default_rng(6).standard_normal(s) for s in SHAPES]
    *_, opt2, _ = check_resume(lambda p: Lion(p, lr=1e-2, weight_decay=0.1), init, feeding(gradients(40, seed=5, zeros=True)),
                               make_again=lambda p: Lion(p, lr=1.0))
    assert opt2.param_groups[0]['lr'] == 1e-2

def test_update_function_without_autograd():
    "lion_update on plain arrays: a constant gradient moves every coordinate by exactly γ per step."
    w, state = np.zeros(3), {'exp_avg': np.zeros(3)}
    for t in range(1, 6): lion_update(w, np.array([2.0, -1e-9, 0.0]), state, step=t, lr=0.1, betas=(0.9, 0.99), weight_decay=0.0, maximize=False)
    assert np.allclose(w, [-0.5, 0.5, 0.0], rtol=0, atol=1e-15)
