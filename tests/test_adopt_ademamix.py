"""ADOPT and AdEMAMix against pytorch_optimizer 4.1, live, in float64 (and float32).

Both sides get the same gradients: a fixed random sequence whose scale changes from step to step
over four orders of magnitude, with exact zeros (for ADOPT a zero first gradient leaves v₀ = 0, so
the ε floor and the clipping are exercised), on a vector, a matrix and a 3-D tensor. Errors are
relative to the tensor's largest magnitude: <= 1e-10 in float64, <= 1e-5 in float32.
"""
import inspect, os, sys
import numpy as np, pytest
import pytorch_optimizer
from minima.nn import Parameter
from minima.optim.adopt import ADOPT, AdEMAMix, ademamix_alpha, ademamix_beta3

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'reference'))
from optim_checks import (SHAPES, gradients, run_side_by_side, check_bad_hyperparameter,
                          check_engine_matches_the_plain_loop, feeding, check_resume, quadratic_problem, rosenbrock,
                          rosenbrock_grad, minimize)

# ---------------------------------------------------------------- ADOPT
ADOPT_CASES = [dict(), dict(lr=1e-2), dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-4), dict(lr=1e-2, clip_exponent=None),
               dict(lr=1e-2, clip_exponent=0.5), dict(lr=1e-2, weight_decay=0.1), dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True),
               dict(lr=1e-2, maximize=True), dict(lr=1e-2, betas=(0.0, 0.0))]

def adopt_reference(params, clip_exponent=0.25, decoupled_weight_decay=False, **kw):
    clip = None if clip_exponent is None else (lambda t: t ** clip_exponent)
    return pytorch_optimizer.ADOPT(params, clip_lambda=clip, weight_decouple=decoupled_weight_decay, **kw)

@pytest.mark.parametrize('kw', ADOPT_CASES)
def test_adopt_parity(kw):
    run_side_by_side(lambda p: adopt_reference(p, **kw), lambda p: ADOPT(p, **kw), state_keys=('exp_avg', 'exp_avg_sq'))

@pytest.mark.parametrize('kw', [dict(lr=1e-2), dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True)])
def test_adopt_parity_float32(kw):
    run_side_by_side(lambda p: adopt_reference(p, **kw), lambda p: ADOPT(p, **kw), dtype=np.float32)

def test_adopt_defaults():
    ref = inspect.signature(pytorch_optimizer.ADOPT).parameters
    d = ADOPT([Parameter(np.zeros(1))]).defaults
    assert (d['lr'], d['betas'], d['eps'], d['weight_decay']) == (ref['lr'].default, ref['betas'].default, ref['eps'].default, ref['weight_decay'].default)
    assert d['clip_exponent'] == 0.25 and ref['clip_lambda'].default(16) == 16 ** 0.25
    assert str(inspect.signature(ADOPT)) == ("(params, lr=0.001, betas=(0.9, 0.9999), eps=1e-06, weight_decay=0.0, clip_exponent=0.25, *, "
                                             "maximize=False, decoupled_weight_decay=False, nonfinite='apply', clip_norm=None)")

def test_adopt_first_step_only_sets_v():
    w = Parameter(np.array([1.0, -2.0])); opt = ADOPT([w], lr=0.5)
    w.grad = np.array([3.0, 0.5]); opt.step()
    assert np.array_equal(w.data, [1.0, -2.0]) and np.array_equal(opt.state[w]['exp_avg_sq'], [9.0, 0.25])
    assert np.array_equal(opt.state[w]['exp_avg'], [0.0, 0.0])

# ---------------------------------------------------------------- AdEMAMix
AdEMAMIX_CASES = [dict(), dict(lr=1e-2), dict(lr=1e-2, alpha=2.0, betas=(0.8, 0.99, 0.999)), dict(lr=1e-2, t_alpha_beta3=40),
                  dict(lr=1e-2, t_alpha_beta3=500, alpha=8.0), dict(lr=1e-2, eps=1e-3), dict(lr=1e-2, weight_decay=0.1),
                  dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=False), dict(lr=1e-2, maximize=True, t_alpha_beta3=60)]

def ademamix_reference(params, decoupled_weight_decay=True, **kw):
    return pytorch_optimizer.AdEMAMix(params, weight_decouple=decoupled_weight_decay, **kw)

@pytest.mark.parametrize('kw', AdEMAMIX_CASES)
def test_ademamix_parity(kw):
    run_side_by_side(lambda p: ademamix_reference(p, **kw), lambda p: AdEMAMix(p, **kw), state_keys=('exp_avg', 'exp_avg_sq', 'exp_avg_slow'))

@pytest.mark.parametrize('kw', [dict(lr=1e-2, t_alpha_beta3=40)])
def test_ademamix_parity_float32(kw):
    run_side_by_side(lambda p: ademamix_reference(p, **kw), lambda p: AdEMAMix(p, **kw), dtype=np.float32)

def test_ademamix_schedules_match_reference():
    for t in [1, 2, 10, 99, 100, 101, 1000]:
        assert ademamix_alpha(t, 5.0, 100) == pytorch_optimizer.AdEMAMix.schedule_alpha(100, t, 5.0)
        assert abs(ademamix_beta3(t, 0.9, 0.9999, 100) - pytorch_optimizer.AdEMAMix.schedule_beta3(100, t, 0.9, 0.9999)) <= 1e-15

def test_ademamix_defaults():
    ref = inspect.signature(pytorch_optimizer.AdEMAMix).parameters
    d = AdEMAMix([Parameter(np.zeros(1))]).defaults
    for k in ('lr', 'betas', 'alpha', 't_alpha_beta3', 'eps', 'weight_decay'): assert d[k] == ref[k].default, k
    assert d['decoupled_weight_decay'] is True   # the paper's decay; the reference defaults to L2

# ---------------------------------------------------------------- both
BAD = [(ADOPT, dict(lr=-1.0), ValueError, 'lr'), (ADOPT, dict(betas=(0.9, 1.0)), ValueError, 'betas'), (ADOPT, dict(betas=0.9), TypeError, 'betas'),
       (ADOPT, dict(eps=-1e-6), ValueError, 'eps'), (ADOPT, dict(weight_decay=-1.0), ValueError, 'weight_decay'),
       (ADOPT, dict(clip_exponent=0.0), ValueError, 'clip_exponent'), (ADOPT, dict(clip_exponent='x'), TypeError, 'clip_exponent'),
       (AdEMAMix, dict(lr=-1.0), ValueError, 'lr'), (AdEMAMix, dict(betas=(0.9, 0.999)), TypeError, 'betas'),
       (AdEMAMix, dict(betas=(0.9, 0.999, 1.0)), ValueError, 'betas'), (AdEMAMix, dict(alpha=-1.0), ValueError, 'alpha'),
       (AdEMAMix, dict(t_alpha_beta3=0), ValueError, 't_alpha_beta3'), (AdEMAMix, dict(t_alpha_beta3=-5.0), ValueError, 't_alpha_beta3'),
       (AdEMAMix, dict(eps=-1.0), ValueError, 'eps'), (AdEMAMix, dict(weight_decay=-0.1), ValueError, 'weight_decay'),
       (AdEMAMix, dict(decoupled_weight_decay=1), TypeError, 'decoupled_weight_decay')]

@pytest.mark.parametrize('cls, kw, exc, name', BAD)
def test_bad_hyperparameters(cls, kw, exc, name):
    check_bad_hyperparameter(cls, kw, exc, name)

# bounds: several times above the values observed (in the comments); f is 0 at the minimum up to rounding
@pytest.mark.parametrize('make, bound', [(lambda p: ADOPT(p, lr=1e-2), 1e-12),         # observed -2.2e-16 (rounding)
                                         (lambda p: AdEMAMix(p, lr=1e-2), 2e-4)])      # observed 2.7e-05: α = 5 keeps a slow memory
def test_converges_on_quadratic(make, bound):
    f, grad = quadratic_problem()
    assert minimize(make, f, grad, np.zeros(6), 3000) < bound

@pytest.mark.parametrize('make, bound', [(lambda p: ADOPT(p, lr=0.1, betas=(0.9, 0.999)), 3e-3),                           # observed 2.6e-4
                                         (lambda p: AdEMAMix(p, lr=0.02, alpha=0.5, betas=(0.9, 0.999, 0.99)), 1e-12)])  # observed 1.3e-16
def test_converges_on_rosenbrock(make, bound):
    assert minimize(make, rosenbrock, rosenbrock_grad, (-1.5, 2.0), 3000) < bound

@pytest.mark.parametrize('cls, kw', [(ADOPT, dict(lr=1e-2, weight_decay=0.1)), (AdEMAMix, dict(lr=1e-2, t_alpha_beta3=30, weight_decay=0.1))])
def test_resume_is_bit_identical(cls, kw):
    init = [np.random.default_rng(6).standard_normal(s) for s in SHAPES]
    check_resume(lambda p: cls(p, **kw), init, feeding(gradients(40, seed=5, zeros=True)), make_again=cls)

@pytest.mark.parametrize('cls, kw', [(ADOPT, dict(lr=1e-2, weight_decay=0.1)), (AdEMAMix, dict(lr=1e-2, t_alpha_beta3=3, weight_decay=0.1))])
def test_engine_matches_the_plain_loop(cls, kw):
    "Both are elementwise: the engine gives the plain per-tensor loop's bits, also across chunk borders."
    check_engine_matches_the_plain_loop(cls, **kw)
