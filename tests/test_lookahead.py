"""Lookahead against pytorch_optimizer 4.1's Lookahead, live, in float64: minima's Lookahead around a minima
optimizer, theirs around the corresponding reference (torch.optim's Adam, AdamW, SGD; lion_pytorch's Lion;
pytorch_optimizer's Lamb), the same gradients (a fixed random
sequence with varying scale) on a vector, a matrix and a 3-D tensor. Errors are relative to the tensor's
largest magnitude: <= 1e-10 in float64.
"""
import copy, inspect, os, sys
import numpy as np, pytest, torch
import lion_pytorch, pytorch_optimizer
from minima.nn import Parameter
from minima.optim import SGD, Adam, AdamW
from minima.optim.lookahead import Lookahead, lookahead_update
from minima.optim.lion import Lion
from minima.optim.lamb import LAMB

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'reference'))
from optim_checks import (SHAPES, tolerance, rel_err, gradients as varying_gradients, run_side_by_side, check_bad_hyperparameter, feeding,
                          check_resume, quadratic_problem, rosenbrock, rosenbrock_grad, minimize)

RTOL = tolerance(np.float64)
def lamb_reference(params, **kw): return pytorch_optimizer.Lamb(params, weight_decouple=False, adam_debias=True, **kw)
def lamb_minima(params, **kw): return LAMB(params, bias_correction=False, **kw)
INNER = {'Adam': (Adam, torch.optim.Adam), 'AdamW': (AdamW, torch.optim.AdamW), 'SGD': (SGD, torch.optim.SGD),
         'Lion': (Lion, lion_pytorch.Lion), 'LAMB': (lamb_minima, lamb_reference)}

def gradients(steps, seed=0):
    "Scales over two decades (10^-1 to 10), no zeros."
    return varying_gradients(steps, seed=seed, decades=1)

@pytest.mark.parametrize('inner, inner_kw, la_kw', [('Adam', dict(lr=1e-2), dict()), ('Adam', dict(lr=1e-2), dict(k=3, alpha=0.8)),
                                                    ('AdamW', dict(lr=1e-2, weight_decay=0.1), dict(k=1, alpha=0.3)),
                                                    ('SGD', dict(lr=1e-2, momentum=0.9), dict(k=7, alpha=0.5)),
                                                    ('SGD', dict(lr=1e-2, momentum=0.9, nesterov=True), dict(k=4, alpha=0.99)),
                                                    ('Adam', dict(lr=1e-2), dict(k=5, alpha=0.05)),
                                                    ('Lion', dict(lr=1e-3, weight_decay=0.1), dict(k=4, alpha=0.6)),   # elementwise, on the engine
                                                    ('LAMB', dict(lr=1e-2, weight_decay=0.01), dict(k=3, alpha=0.5))])  # per-tensor
def test_parity(inner, inner_kw, la_kw):
    mcls, tcls = INNER[inner]
    theirs, mine, tparams, mparams = run_side_by_side(lambda p: pytorch_optimizer.Lookahead(tcls(p, **inner_kw), **la_kw),
                                                      lambda p: Lookahead(mcls(p, **inner_kw), **la_kw), grads=gradients(150))
    for i, (tp, mp) in enumerate(zip(tparams, mparams)):
        assert rel_err(mine.state[mparams[0]]['slow_params'][i], theirs.state[tp]['slow_params'].numpy()) <= RTOL

def test_defaults_and_signature():
    ref = inspect.signature(pytorch_optimizer.Lookahead).parameters
    w = Parameter(np.zeros(2)); la = Lookahead(SGD([w]))
    assert (la.defaults['k'], la.defaults['alpha']) == (ref['k'].default, ref['alpha'].default)
    assert str(inspect.signature(Lookahead)) == '(optimizer, k=5, alpha=0.5)'

def test_slow_weights_start_before_the_first_step():
    w = Parameter(np.array([2.0, -1.0])); la = Lookahead(SGD([w], lr=0.5), k=2, alpha=0.5)
    assert np.array_equal(la.state[w]['slow_params'][0], [2.0, -1.0]) and la.state[w]['slow_params'][0] is not w.data
    w.grad = np.array([1.0, 1.0]); la.step()
    assert np.array_equal(la.state[w]['slow_params'][0], [2.0, -1.0]) and np.array_equal(w.data, [1.5, -1.5])

def test_groups_hold_the_inner_parameters_and_add_param_group():
    a, b, c = Parameter(np.ones(2)), Parameter(np.ones(3)), Parameter(np.ones(4))
    inner = Adam([{'params': [a]}, {'params': [b], 'lr': 0.1}], lr=0.01)
    la = Lookahead(inner, k=3)
    assert [g['params'] for g in la.param_groups] == [g['params'] for g in inner.param_groups]
    la.add_param_group({'params': [c], 'lr': 0.5, 'k': 2})
    assert inner.param_groups[-1]['params'] == [c] and inner.param_groups[-1]['lr'] == 0.5 and 'k' not in inner.param_groups[-1]
    assert la.param_groups[-1]['k'] == 2 and 'lr' not in la.param_groups[-1]
    assert np.array_equal(la.state[c]['slow_params'][0], np.ones(4))
    with pytest.raises(TypeError):                       # the inner optimizer refuses: nothing is added to either
        la.add_param_group({'params': [Parameter(np.ones(1))], 'momentum': 0.9})
    assert len(la.param_groups) == 3 and len(inner.param_groups) == 3
    with pytest.raises(ValueError, match='k'):
        la.add_param_group({'params': [Parameter(np.ones(1))], 'k': 0})
    assert len(la.param_groups) == 3 and len(inner.param_groups) == 3

@pytest.mark.parametrize('kw, exc, name', [(dict(k=0), ValueError, 'k'), (dict(k=2.5), TypeError, 'k'), (dict(alpha=-0.1), ValueError, 'alpha'), (dict(alpha=0.0), ValueError, 'alpha'),
                                           (dict(alpha=1.5), ValueError, 'alpha'), (dict(alpha='x'), TypeError, 'alpha')])
def test_bad_hyperparameters(kw, exc, name):
    "Refused at construction and, edited into the group, at the next step: nothing changes (slow weights, step, the inner momentum)."
    def make(params, **kw): return Lookahead(SGD(params, lr=0.1, momentum=0.9), **{'k': 2, **kw})
    la = check_bad_hyperparameter(make, kw, exc, name, warmup=(1.0, -0.5, 0.3), lr=None)
    w = la.param_groups[0]['params'][0]
    assert la.state[w]['step'] == 3 and 'momentum_buffer' in la.optimizer.state[w]

def test_alpha_one_is_the_inner_optimizer():
    "The paper's α = 1 (the reference refuses it): the inner optimizer's trajectory (φ + 1·(θ − φ) rounds within an ulp of θ)."
    gs = gradients(20, seed=2)
    a, b = [Parameter(np.ones(s)) for s in SHAPES], [Parameter(np.ones(s)) for s in SHAPES]
    oa, ob = Adam(a, lr=0.1), Lookahead(Adam(b, lr=0.1), k=3, alpha=1.0)
    for g in gs:
        for p, q, gi in zip(a, b, g): p.grad = gi.copy(); q.grad = gi.copy()
        oa.step(); ob.step()
    for p, q in zip(a, b): assert rel_err(q.data, p.data) <= 1e-13

def test_refuses_a_non_optimizer():
    with pytest.raises(TypeError, match='optimizer to wrap'): Lookahead([Parameter(np.ones(2))])

def test_resume_is_bit_identical():
    init = [np.random.default_rng(6).standard_normal(s) for s in SHAPES]
    make = lambda params: Lookahead(Adam(params, lr=1e-2, amsgrad=True), k=6, alpha=0.4)
    _, _, sd, _, _ = check_resume(make, init, feeding(gradients(40, seed=5)))   # 17: mid-cycle
    assert sd['optimizer']['state'][0]['step'] == 17

def test_load_checks_the_inner_state_before_changing_either():
    p = Parameter(np.ones(3)); la = Lookahead(Adam([p], lr=0.1), k=2)
    for g in (1.0, 2.0, 3.0): p.grad = np.full(3, g); la.step()
    sd = copy.deepcopy(la.state_dict())
    q = Parameter(np.zeros(3)); lb = Lookahead(Adam([q], lr=0.1), k=2)
    bad = copy.deepcopy(sd); bad['optimizer']['state'][0]['exp_avg'] = np.zeros(4)
    with pytest.raises((ValueError, TypeError)): lb.load_state_dict(bad)
    assert np.array_equal(lb.state[q]['slow_params'][0], np.zeros(3)) and lb.state[q]['step'] == 0 and q not in lb.optimizer.state

def test_converges_on_quadratic():
    f, grad = quadratic_problem()
    assert minimize(lambda p: Lookahead(SGD(p, lr=0.05, momentum=0.9)), f, grad, np.zeros(6), 2000) < 1e-12   # observed ~1e-16 (rounding)

def test_converges_on_rosenbrock():
    assert minimize(lambda p: Lookahead(Adam(p, lr=0.1)), rosenbrock, rosenbrock_grad, (-1.5, 2.0), 1500) < 1e-5   # observed 8.9e-7

def test_update_function_alone():
    "lookahead_update on plain Parameters: nothing before the k-th step, then the interpolation."
    p = Parameter(np.array([4.0])); state = {'slow_params': [np.array([0.0])]}
    assert lookahead_update([p], state, step=1, closure=None, k=2, alpha=0.25) is None and p.data[0] == 4.0
    lookahead_update([p], state, step=2, closure=None, k=2, alpha=0.25)
    assert p.data[0] == 1.0 and state['slow_params'][0][0] == 1.0
