"""LAMB and LARS against pytorch_optimizer 4.1 (Lamb, LARS), live, in float64 (and float32).

The reference Lamb runs with adam_debias=True (no bias correction at all: minima's
bias_correction=False); its default divides the whole step by 1 - beta1^t after the ratio.

Both sides get the same gradients: a fixed random sequence whose scale changes from step to step
over four orders of magnitude, on a vector, a matrix and a 3-D tensor. The vector is excluded
from layer adaptation the way the reference excludes it (every tensor with fewer than two
dimensions). Errors are relative to the tensor's largest magnitude: <= 1e-10 in float64,
<= 1e-5 in float32.
"""
import inspect, os, sys
import numpy as np, pytest
import pytorch_optimizer
from minima import nn
from minima.nn import Parameter
from minima.optim.lamb import LAMB, LARS, param_groups_layer_adaptation

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'reference'))
from optim_checks import (SHAPES, gradients, run_side_by_side as run_on_parameters, check_bad_hyperparameter, feeding, check_resume,
                          quadratic_problem, rosenbrock, rosenbrock_grad)

def run_side_by_side(make_ref, make_mine, **kw):
    "optim_checks.run_side_by_side with make_mine given the parameters named (p0.weight, p1.weight, ...), as layer adaptation takes them."
    return run_on_parameters(make_ref, lambda ps: make_mine([(f'p{i}.weight', p) for i, p in enumerate(ps)]), **kw)

# ---------------------------------------------------------------- LARS
LARS_CASES = [dict(), dict(lr=0.5), dict(lr=0.5, weight_decay=0.01), dict(lr=0.5, momentum=0.0), dict(lr=0.5, dampening=0.3),
              dict(lr=0.5, nesterov=True, weight_decay=1e-3), dict(lr=0.1, trust_coefficient=0.02), dict(lr=0.5, maximize=True)]

@pytest.mark.parametrize('kw', LARS_CASES)
def test_lars_parity(kw):
    wd = kw.get('weight_decay', 0.0); rest = {k: v for k, v in kw.items() if k != 'weight_decay'}
    run_side_by_side(lambda p: pytorch_optimizer.LARS(p, **kw), lambda named: LARS(param_groups_layer_adaptation(named, weight_decay=wd), **rest),
                     state_keys=('momentum_buffer',) if kw.get('momentum', 0.9) != 0 else ())   # no momentum: the reference keeps no buffer

def test_lars_parity_float32():
    run_side_by_side(lambda p: pytorch_optimizer.LARS(p, lr=0.5, weight_decay=0.01),
                     lambda named: LARS(param_groups_layer_adaptation(named, weight_decay=0.01), lr=0.5), dtype=np.float32)

def test_lars_defaults():
    ref = inspect.signature(pytorch_optimizer.LARS).parameters
    d = LARS([Parameter(np.zeros(1))]).defaults
    for k in ('lr', 'weight_decay', 'momentum', 'dampening', 'trust_coefficient', 'nesterov'): assert d[k] == ref[k].default, k

# ---------------------------------------------------------------- LAMB
LAMB_CASES = [dict(), dict(lr=1e-2), dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-4), dict(lr=1e-2, weight_decay=0.1),
              dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True), dict(lr=1e-2, maximize=True, weight_decay=0.01)]

def lamb_reference(params, decoupled_weight_decay=False, max_weight_norm=10.0, **kw):
    class Reference(pytorch_optimizer.Lamb): clamp = float('inf') if max_weight_norm is None else max_weight_norm
    return Reference(params, weight_decouple=decoupled_weight_decay, adam_debias=True, grad_averaging=True, adam=False, rectify=False, pre_norm=False, **kw)

@pytest.mark.parametrize('kw', LAMB_CASES)
def test_lamb_parity(kw):
    run_side_by_side(lambda p: lamb_reference(p, **kw), lambda named: LAMB([p for _, p in named], bias_correction=False, **kw),
                     state_keys=('exp_avg', 'exp_avg_sq'))

@pytest.mark.parametrize('kw', [dict(lr=1e-2, max_weight_norm=2.0), dict(lr=1e-2, max_weight_norm=None), dict(lr=1e-2)])
def test_lamb_parity_weight_norm_bound(kw):
    "Weights of norm about 25-35: the bound c (10 by default) is active; None removes it."
    run_side_by_side(lambda p: lamb_reference(p, **kw), lambda named: LAMB([p for _, p in named], bias_correction=False, **kw), init_scale=6.0)

def test_lamb_parity_excluded_tensors():
    "The excluded vector takes Adam's step (the reference's adam=True) and no decay."
    def ref(p): return pytorch_optimizer.Lamb([{'params': p[1:]}, {'params': p[:1], 'weight_decay': 0.0, 'adam': True}], lr=1e-2, weight_decay=0.1,
                                              weight_decouple=False, adam_debias=True)
    run_side_by_side(ref, lambda named: LAMB(param_groups_layer_adaptation(named, weight_decay=0.1), lr=1e-2, bias_correction=False))

def test_lamb_bias_correction_cancels_in_the_ratio():
    "With ε = λ = 0 the bias corrections are scalars the ratio removes: the paper's LAMB equals the reference's uncorrected one."
    run_side_by_side(lambda p: lamb_reference(p, lr=1e-2, eps=0.0), lambda named: LAMB([p for _, p in named], lr=1e-2, eps=0.0), zeros=False)

def test_lamb_bias_correction_differs_with_decay():
    "...and with λ > 0 they differ, so bias_correction is not a no-op."
    with pytest.raises(AssertionError, match='relative error'):
        run_side_by_side(lambda p: lamb_reference(p, lr=1e-2, weight_decay=0.1), lambda named: LAMB([p for _, p in named], lr=1e-2, weight_decay=0.1), steps=5)

def test_lamb_parity_float32():
    run_side_by_side(lambda p: lamb_reference(p, lr=1e-2, weight_decay=0.1), lambda named: LAMB([p for _, p in named], lr=1e-2, weight_decay=0.1, bias_correction=False),
                     dtype=np.float32)

def test_lamb_trust_ratio_state_and_edge_cases():
    w, z = Parameter(np.array([[3.0, 4.0]])), Parameter(np.zeros((1, 2)))
    opt = LAMB([{'params': [w], 'eps': 0.0}, {'params': [z]}], lr=0.1)
    w.grad = np.array([[1.0, -1.0]]); z.grad = np.array([[2.0, 0.0]]); opt.step()
    assert opt.state[w]['trust_ratio'] == pytest.approx(5 / np.sqrt(2), rel=1e-14)
    # zero weights: ratio 1, Adam's step
    assert opt.state[z]['trust_ratio'] == 1.0 and np.allclose(z.data, [[-0.1 * 2 / (2 + 1e-6), 0.0]], rtol=0, atol=1e-15)
    before = w.data.copy(); w.grad = np.zeros((1, 2)); z.grad = None
    opt2 = LAMB([w], lr=0.1); opt2.step()          # zero update: ratio 1, nothing moves
    assert opt2.state[w]['trust_ratio'] == 1.0 and np.array_equal(w.data, before)

def test_param_groups_layer_adaptation():
    model = nn.Sequential(nn.Linear(3, 4, dtype=np.float64), nn.LayerNorm(4, dtype=np.float64), nn.Linear(4, 1, dtype=np.float64))
    groups = param_groups_layer_adaptation(model, weight_decay=0.01)
    names = [[n for n, _ in g['params']] for g in groups]
    assert all(n.endswith('weight') and '1.' not in n for n in names[0]) and len(names[0]) == 2
    assert groups[1]['layer_adaptation'] is False and groups[1]['weight_decay'] == 0.0 and len(names[1]) == 4
    opt = LAMB(groups, lr=0.1, weight_decay=0.5)
    assert [g['weight_decay'] for g in opt.param_groups] == [0.01, 0.0] and [g['layer_adaptation'] for g in opt.param_groups] == [True, False]

# ---------------------------------------------------------------- both
BAD = [(LARS, dict(lr=-1.0), ValueError, 'lr'), (LARS, dict(momentum=1.0), ValueError, 'momentum'), (LARS, dict(dampening=1.5), ValueError, 'dampening'),
       (LARS, dict(weight_decay=-1e-4), ValueError, 'weight_decay'), (LARS, dict(trust_coefficient=-1.0), ValueError, 'trust_coefficient'),
       (LARS, dict(nesterov='yes'), TypeError, 'nesterov'), (LARS, dict(layer_adaptation=None), TypeError, 'layer_adaptation'),
       (LAMB, dict(lr=-1.0), ValueError, 'lr'), (LAMB, dict(betas=(1.0, 0.999)), ValueError, 'betas'), (LAMB, dict(betas=(0.9, 0.99, 0.9)), TypeError, 'betas'),
       (LAMB, dict(eps=-1.0), ValueError, 'eps'), (LAMB, dict(weight_decay=-0.1), ValueError, 'weight_decay'),
       (LAMB, dict(max_weight_norm=0.0), ValueError, 'max_weight_norm'), (LAMB, dict(bias_correction=0), TypeError, 'bias_correction')]

@pytest.mark.parametrize('cls, kw, exc, name', BAD)
def test_bad_hyperparameters(cls, kw, exc, name):
    check_bad_hyperparameter(cls, kw, exc, name, init=np.ones((2, 3)))

def minimize_staged(make_opt, f, grad, x0, lrs, steps_each=1000):
    "A trust-ratio step has length about γ‖θ‖ (LAMB) or γη‖θ‖ (LARS), not shrinking near the minimum: the rate decays by hand."
    x = Parameter(np.array(x0, dtype=float)); opt = make_opt([x])
    for lr in lrs:
        opt.param_groups[0]['lr'] = lr
        for _ in range(steps_each): x.grad = grad(x.data); opt.step()
    return f(x.data)

# the whole problem is one tensor, so the trust ratio acts on all of it; bounds several times above the observed values
@pytest.mark.parametrize('make, lrs, bound', [(lambda p: LAMB(p), (1e-2, 1e-3, 1e-4), 2e-6),                          # observed 1.8e-7
                                              (lambda p: LARS(p, trust_coefficient=0.01), (1.0, 0.1, 0.01), 2e-6)])  # observed 2.5e-7
def test_converges_on_quadratic(make, lrs, bound):
    f, grad = quadratic_problem()
    assert minimize_staged(make, f, grad, np.ones(6), lrs) < bound

@pytest.mark.parametrize('make, lrs, bound', [(lambda p: LAMB(p), (1e-2,) * 3, 5e-3),                                # observed 1.2e-3
                                              (lambda p: LARS(p, trust_coefficient=0.01), (1.0, 0.1, 0.01), 1e-5)])  # observed 9.7e-7
def test_converges_on_rosenbrock(make, lrs, bound):
    assert minimize_staged(make, rosenbrock, rosenbrock_grad, (-1.5, 2.0), lrs) < bound

@pytest.mark.parametrize('cls, kw', [(LARS, dict(lr=0.5, weight_decay=0.01)), (LAMB, dict(lr=1e-2, weight_decay=0.1))])
def test_resume_is_bit_identical(cls, kw):
    def make(params): return cls(param_groups_layer_adaptation([(f'p{i}', p) for i, p in enumerate(params)], weight_decay=kw['weight_decay']), lr=kw['lr'])
    init = [np.random.default_rng(6).standard_normal(s) for s in SHAPES]
    check_resume(make, init, feeding(gradients(40, seed=5, zeros=True)))
