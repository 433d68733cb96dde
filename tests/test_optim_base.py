"""Tests of minima.optim.base: parameter groups, validation, atomic steps, non-finite policies,
state_dict/load_state_dict, the chunked update runner, clipping and the weight-decay group helper.

The optimizers used here are defined in this file (plain gradient descent and a velocity-buffer
variant), so the base is tested independently of the algorithms built on it."""
import collections, copy, gc, os, pickle, re, threading, time, warnings
import numpy as np
import pytest
import torch

from minima import nn
from minima.autograd import Tensor, no_grad, is_grad_enabled
from minima.nn import Parameter
from minima.optim import base, engine
from minima.optim.base import (Optimizer, Real, Flag, Pair, Rule, NonFiniteGradientError,
                               clip_grad_norm_, clip_grad_value_, param_groups_weight_decay, check_group)
from minima.optim.engine import CHUNK_SIZE


def descent_update(param, grad, state, *, step, lr, weight_decay, maximize):
    g = np.negative(grad) if maximize else grad
    if weight_decay: g = g + weight_decay * param
    np.subtract(param, lr * g, out=param)

class Descent(Optimizer):
    update = staticmethod(descent_update)
    hyperparameters = dict(lr=Real('[0, inf)', default=0.1), weight_decay=Real('[0, inf)', default=0.0), maximize=Flag(default=False))

def velocity_update(param, grad, state, *, step, lr, mu, betas, nesterov):
    v = state['velocity']
    np.multiply(v, mu, out=v); np.add(v, grad, out=v)
    if 'peak' in state: np.maximum(state['peak'], np.abs(v), out=state['peak'])
    np.subtract(param, lr * (grad + mu * v if nesterov else v), out=param)

class Velocity(Optimizer):
    "Heavy-ball descent; a 'peak' buffer when nesterov (to test setting-dependent state); betas to test Pair."
    update = staticmethod(velocity_update)
    hyperparameters = dict(lr=Real('[0, inf)', default=0.1), mu=Real('[0, 1)', default=0.9),
                           betas=Pair(Real('[0, 1)'), default=(0.9, 0.99)), nesterov=Flag(default=False))
    rules = (Rule(('nesterov', 'mu'), lambda g: not g['nesterov'] or g['mu'] > 0, 'nesterov=True needs mu > 0'),)
    def init_state(self, param, group):
        return {'velocity': np.zeros_like(param), **({'peak': np.zeros_like(param)} if group['nesterov'] else {})}


def params(*shapes, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]

def set_grads(ps, seed=1):
    rng = np.random.default_rng(seed)
    for p in ps: p.grad = rng.standard_normal(p.shape).astype(p.dtype)

def snapshot(opt, ps):
    "Deep copies of everything a step or a load could change."
    return ([p.data.copy() for p in ps], copy.deepcopy({id(p): s for p, s in opt.state.items()}),
            copy.deepcopy([{k: v for k, v in g.items() if k != 'params'} for g in opt.param_groups]),
            [list(g['params']) for g in opt.param_groups], opt.skipped_steps)

def assert_same(a, b):
    (pa, sa, ga, la, ka), (pb, sb, gb, lb, kb) = a, b
    assert all(np.array_equal(x, y, equal_nan=True) for x, y in zip(pa, pb))
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].keys() == sb[k].keys()
        for n in sa[k]: assert np.array_equal(sa[k][n], sb[k][n], equal_nan=True)
    assert ga == gb and ka == kb
    assert all(x is y for l1, l2 in zip(la, lb) for x, y in zip(l1, l2))

def trained(opt_cls=Velocity, steps=3, **kw):
    ps = params((3, 4), (4,), (2,))
    names = ['fc.weight', 'fc.bias', 'scale']
    opt = opt_cls(list(zip(names, ps)), **kw)
    for s in range(steps):
        set_grads(ps, seed=s)
        opt.step()
    return ps, opt


# ---------------------------------------------------------------- params: what is accepted and refused
def test_generator_of_params_is_read_once_and_all_parameters_train():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    opt = Descent(model.parameters(), lr=0.1)
    ps = list(model.parameters())
    assert [p for p in opt.param_groups[0]['params']] == ps
    for _ in range(2):
        before = [p.data.copy() for p in ps]
        set_grads(ps)
        opt.step()
        assert all(not np.array_equal(b, p.data) for b, p in zip(before, ps))
    assert all(opt.state[p]['step'] == 2 for p in ps)

def test_named_parameters_record_names():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    opt = Descent(model.named_parameters())
    assert opt.param_groups[0]['param_names'] == [n for n, _ in model.named_parameters()]
    assert opt.state_dict()['param_groups'][0]['param_names'] == opt.param_groups[0]['param_names']

def test_param_groups_take_own_and_default_hyperparameters():
    a, b = params((2,), (3,))
    opt = Descent([{'params': [a]}, {'params': b, 'lr': 0.5}], lr=0.1, weight_decay=0.01)
    assert opt.param_groups[0]['lr'] == 0.1 and opt.param_groups[1]['lr'] == 0.5
    assert opt.param_groups[1]['weight_decay'] == 0.01 and opt.param_groups[1]['params'] == [b]
    assert opt.defaults == dict(lr=0.1, weight_decay=0.01, maximize=False, nonfinite='apply', clip_norm=None)

@pytest.mark.parametrize('bad, exc, words', [
    (lambda a, b: {a, b}, TypeError, ['set', 'order']),
    (lambda a, b: frozenset([a]), TypeError, ['set']),
    (lambda a, b: [{'params': [a]}, {'params': [b, a]}], ValueError, ['param group 1', 'param group 0', 'one parameter group only']),
    (lambda a, b: [], ValueError, ['empty']),
    (lambda a, b: (p for p in []), ValueError, ['empty']),
    (lambda a, b: [{'params': []}], ValueError, ['empty']),
    (lambda a, b: [a, np.zeros(2)], TypeError, ['item 1', 'ndarray', 'Parameter']),
    (lambda a, b: [a, Tensor(np.zeros(2), requires_grad=True)], TypeError, ['item 1', 'Tensor']),
    (lambda a, b: a, TypeError, ['iterable']),
    (lambda a, b: {'params': [a]}, TypeError, ['iterable']),
    (lambda a, b: 3, TypeError, ['iterable']),
    (lambda a, b: [('a', a), b], ValueError, ['mix']),
    (lambda a, b: [{'params': [a], 'learning_rate': 0.1}], TypeError, ['learning_rate', 'param group 0']),
    (lambda a, b: [{'params': [a]}, b], TypeError, ['item 0', 'dict']),
    (lambda a, b: [{'lr': 0.1}], TypeError, ["'params'"]),
    (lambda a, b: [{'params': {a, b}}], TypeError, ['set']),
])
def test_bad_params_refused(bad, exc, words):
    a, b = params((2,), (3,))
    with pytest.raises(exc) as e: Descent(bad(a, b))
    for w in words: assert w in str(e.value), (w, str(e.value))

def test_add_param_group():
    a, b, c = params((2,), (3,), (1,))
    opt = Descent([a], lr=0.1)
    opt.add_param_group({'params': [b], 'lr': 0.2})
    assert opt.param_groups[1]['lr'] == 0.2 and opt.param_groups[1]['maximize'] is False
    with pytest.raises(ValueError, match='already at position 0 of param group 0'): opt.add_param_group({'params': [c, a]})
    with pytest.raises(ValueError, match=r'invalid lr=-1 in param group 2; lr must be a real number in \[0, inf\)'):
        opt.add_param_group({'params': [c], 'lr': -1})
    with pytest.raises(TypeError, match='unknown key'): opt.add_param_group({'params': [c], 'momentum': 0.9})
    assert len(opt.param_groups) == 2
    set_grads([a, b, c]); opt.step()
    assert c not in opt.state and b in opt.state


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize('kw, exc, arg, accepted', [
    (dict(lr=-0.1), ValueError, 'lr=-0.1', '[0, inf)'),
    (dict(lr=float('nan')), ValueError, 'lr=nan', '[0, inf)'),
    (dict(lr=float('inf')), ValueError, 'lr=inf', '[0, inf)'),
    (dict(lr='0.1'), TypeError, "lr='0.1'", '[0, inf)'),
    (dict(lr=True), TypeError, 'lr=True', '[0, inf)'),
    (dict(lr=None), TypeError, 'lr=None', '[0, inf)'),
    (dict(mu=1.0), ValueError, 'mu=1.0', '[0, 1)'),
    (dict(mu=-0.5), ValueError, 'mu=-0.5', '[0, 1)'),
    (dict(betas=(0.9, 1.0)), ValueError, 'betas=(0.9, 1.0)', '[0, 1)'),
    (dict(betas=0.9), TypeError, 'betas=0.9', 'pair'),
    (dict(betas=(0.9, 0.99, 0.999)), TypeError, 'betas=(0.9, 0.99, 0.999)', 'pair'),
    (dict(nesterov=1), TypeError, 'nesterov=1', 'True or False'),
    (dict(nonfinite='ignore'), ValueError, "nonfinite='ignore'", "'apply', 'skip', 'raise'"),
    (dict(clip_norm=0.0), ValueError, 'clip_norm=0.0', '(0, inf)'),
    (dict(clip_norm='1'), TypeError, "clip_norm='1'", '(0, inf)'),
])
def test_validation_names_argument_group_range_and_value(kw, exc, arg, accepted):
    a, b = params((2,), (3,))
    with pytest.raises(exc) as e: Velocity([a], **kw)
    msg = str(e.value)
    assert 'Velocity' in msg and arg in msg and 'param group 0' in msg and accepted in msg, msg
    with pytest.raises(exc) as e: Velocity([{'params': [a]}, {'params': [b], **kw}])
    assert 'param group 1' in str(e.value) and arg in str(e.value)

def test_rule_between_arguments():
    a, = params((2,))
    with pytest.raises(ValueError, match=r'invalid combination in param group 0: nesterov=True, mu=0.0; nesterov=True needs mu > 0'):
        Velocity([a], nesterov=True, mu=0.0)

def test_invalid_default_refused_even_when_every_group_overrides_it():
    a, = params((2,))
    with pytest.raises(ValueError, match='lr=-1 in the defaults'): Descent([{'params': [a], 'lr': 0.1}], lr=-1)

def test_unknown_keyword_refused():
    a, = params((2,))
    with pytest.raises(TypeError): Descent([a], learning_rate=0.1)

def test_numpy_scalars_accepted():
    a, = params((2,))
    opt = Velocity([a], lr=np.float32(0.1), mu=np.float64(0.5), betas=[0.5, 0.9], nesterov=np.bool_(True))
    assert opt.param_groups[0]['betas'] == (0.5, 0.9)

def test_edited_param_groups_are_checked_at_step_and_nothing_changes():
    ps, opt = trained()
    set_grads(ps, seed=9)
    before = snapshot(opt, ps)
    opt.param_groups[0]['lr'] = -1.0
    with pytest.raises(ValueError, match='invalid lr=-1.0 in param group 0'): opt.step()
    opt.param_groups[0]['lr'] = 0.1
    assert_same(before, snapshot(opt, ps))
    opt.param_groups[0]['betas'] = (0.9, 1.5)
    with pytest.raises(ValueError, match='betas'): opt.step()
    opt.param_groups[0]['betas'] = (0.9, 0.99)
    del opt.param_groups[0]['mu']
    with pytest.raises(ValueError, match="param group 0 has no 'mu'"): opt.step()
    opt.param_groups[0]['mu'] = 0.9
    opt.param_groups[0]['params'].append(np.zeros(2))
    with pytest.raises(TypeError, match='not a minima.nn.Parameter'): opt.step()
    opt.param_groups[0]['params'].pop()
    assert_same(before, snapshot(opt, ps))
    opt.step()
    assert opt.state[ps[0]]['step'] == 4

def test_a_parameter_in_two_groups_is_refused_also_when_edited_in():
    a, b = params((2,), (3,))
    opt = Velocity([{'params': [a]}, {'params': [b]}])
    set_grads([a, b]); opt.step()
    before = snapshot(opt, [a, b])
    opt.param_groups[1]['params'].append(a)
    with pytest.raises(ValueError, match='also appears at position 0 of param group 0; a parameter may appear in one parameter group only'):
        opt.step()
    opt.param_groups[1]['params'].pop()
    assert_same(before, snapshot(opt, [a, b]))
    with pytest.raises(ValueError, match='already at position 0 of param group 0'): opt.add_param_group({'params': [a]})
    with pytest.raises(ValueError, match='one parameter group only'): Velocity([{'params': [a]}, {'params': [b, a]}])


# ---------------------------------------------------------------- a parameter twice in one group: torch's warning, torch's steps
def _stepped_twice_per_step(cls, kw, steps=3, seed=4):
    "The parameter of a group [p, p] as it should end: the plain update applied once per occurrence, with one state."
    p, = params((5,), seed=seed)
    opt = cls([p], **kw)
    for t in range(steps):
        for _ in range(2):
            p.grad = np.random.default_rng(t).standard_normal(5); opt.step()
    return p.data, opt.state[p]

@pytest.mark.parametrize('use_engine', [True, False])
@pytest.mark.parametrize('name, kw', [('SGD', dict(lr=0.1)), ('SGD', dict(lr=0.1, momentum=0.9, nesterov=True)),
                                      ('Adam', dict(lr=0.1, amsgrad=True)), ('Adagrad', dict(lr=0.1)),
                                      ('RMSprop', dict(lr=0.01, momentum=0.5, centered=True)), ('Rprop', {}), ('ASGD', dict(lr=0.1)),
                                      ('Adafactor', {}), ('Muon', {}), ('Lion', dict(lr=0.01))])
def test_a_parameter_twice_in_a_group_warns_and_is_stepped_once_per_occurrence(name, kw, use_engine):
    from minima import optim
    cls = getattr(optim, name)
    shape, other = ((5,), (2,)) if name != 'Muon' else ((5, 1), (2, 1))
    p, q = params(shape, other, seed=4)
    with pytest.warns(UserWarning, match=r'param group 0 holds the parameter at position 0 again at position 2 \(a parameter group with duplicate parameters\)'):
        opt = cls([p, q, p], **kw)
    assert not opt._engine_runs()   # the plain loop steps a duplicate; the engine is left out
    try:
        engine.Engine.enabled = use_engine
        ref, = params(shape, seed=4)
        ref_opt = cls([ref], **kw)
        for t in range(3):
            g = np.random.default_rng(t).standard_normal(shape)
            p.grad, q.grad = g.copy(), np.ones(other)
            opt.step()
            for _ in range(2): ref.grad = g.copy(); ref_opt.step()
    finally: engine.Engine.enabled = True
    assert np.array_equal(p.data, ref.data)
    assert opt.state[p].keys() == ref_opt.state[ref].keys() and opt.state[p]['step'] == 6
    for k, v in ref_opt.state[ref].items(): assert np.array_equal(opt.state[p][k], v), k

@pytest.mark.parametrize('name, kw', [('SGD', dict(lr=0.1)), ('SGD', dict(lr=0.1, momentum=0.9)), ('Adam', dict(lr=0.1)),
                                      ('Adagrad', dict(lr=0.1)), ('RMSprop', dict(lr=0.01, momentum=0.5)), ('Rprop', {}),
                                      ('ASGD', dict(lr=0.1)), ('Adafactor', {})])
def test_a_parameter_twice_in_a_group_steps_as_in_torch(name, kw):
    """torch 2.13 (its default CPU path, foreach=False) steps a repeated parameter once per occurrence with one state.
    One exception, torch's own: SGD's momentum buffer, made lazily, is made from the gradient at both occurrences of
    the first step (the second does not see the first's), so torch's first step there is θ − 2γg with b = g; minima's
    second occurrence sees the buffer, as every later step in torch does. Compared from the second step on.
    (Muon: the same once-per-occurrence rule; torch's bfloat16 Newton–Schulz is compared in test_muon.)"""
    from minima import optim
    shape = (3, 2)
    p, = params(shape, seed=5)
    tp = torch.nn.Parameter(torch.from_numpy(p.data.copy()))
    with pytest.warns(UserWarning, match='a parameter group with duplicate parameters'): opt = getattr(optim, name)([p, p], **kw)
    with pytest.warns(UserWarning, match='a parameter group with duplicate parameters'): topt = getattr(torch.optim, name)([tp, tp], **kw)
    quirk = name == 'SGD' and kw.get('momentum')
    default = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)   # torch keeps ASGD's eta and mu in the default dtype
        for t in range(4):
            g = np.random.default_rng(t).standard_normal(shape)
            p.grad, tp.grad = g.copy(), torch.from_numpy(g.copy())
            opt.step(); topt.step()
            if quirk and t == 0:   # start both from torch's state after its first step
                p.data[...] = tp.detach().numpy(); opt.state[p]['momentum_buffer'][...] = topt.state[tp]['momentum_buffer'].numpy()
    finally: torch.set_default_dtype(default)
    np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-14)
    assert opt.state[p]['step'] == 8 and ('step' not in topt.state[tp] or int(topt.state[tp]['step']) == 8)

@pytest.mark.parametrize('line_search_fn', [None, 'strong_wolfe'])
def test_lbfgs_with_a_parameter_twice_matches_torch(line_search_fn):
    "LBFGS sees a repeated parameter twice in its flat vectors, in minima as in torch."
    from minima.optim import LBFGS
    A, c = np.array([[3.0, 0.5], [0.5, 1.0]]), np.array([1.0, -2.0])
    p, tp = Parameter(np.array([1.0, 1.0])), torch.nn.Parameter(torch.tensor([1.0, 1.0], dtype=torch.float64))
    with pytest.warns(UserWarning, match='duplicate parameters'): opt = LBFGS([p, p], max_iter=5, line_search_fn=line_search_fn)
    with pytest.warns(UserWarning, match='duplicate parameters'): topt = torch.optim.LBFGS([tp, tp], max_iter=5, line_search_fn=line_search_fn)
    def closure():
        p.grad = A @ p.data - c
        return float(0.5 * p.data @ A @ p.data - c @ p.data)
    def torch_closure():
        topt.zero_grad()
        loss = 0.5 * tp @ torch.from_numpy(A) @ tp - torch.from_numpy(c) @ tp
        loss.backward()
        return loss
    for _ in range(3): opt.step(closure); topt.step(torch_closure)
    np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12)
    assert opt.state[p]['func_evals'] == topt.state[tp]['func_evals']

def test_a_parameter_twice_in_a_group_round_trips_through_state_dict():
    a, b = params((3,), (2,))
    with pytest.warns(UserWarning): opt = Velocity([a, b, a])
    set_grads([a, b]); opt.step()
    saved = opt.state_dict()
    assert saved['param_groups'][0]['params'] == [0, 1, 0] and sorted(saved['state']) == [0, 1]
    with pytest.warns(UserWarning): again = Velocity([a, b, a])
    again.load_state_dict(saved)
    assert again.state[a]['step'] == 2 and np.array_equal(again.state[a]['velocity'], opt.state[a]['velocity'])
    with pytest.warns(UserWarning): other = Velocity([a, b, a])
    bad = copy.deepcopy(saved); bad['param_groups'][0]['params'] = [0, 1, 2]   # one parameter, two ids
    with pytest.raises(ValueError, match='ids must be distinct integers, one per parameter'): other.load_state_dict(bad)
    assert other.state == {}
    c = Parameter(np.zeros(3))
    distinct = Velocity([a, b, c])
    with pytest.raises(ValueError, match='ids must be distinct'): distinct.load_state_dict(saved)   # id 0 twice, two parameters
    assert distinct.state == {}

def test_a_duplicate_edited_into_a_group_keeps_the_engine_out_until_removed():
    from minima.optim import Adam
    a, b = params((4,), (3,))
    ra, rb = Parameter(a.data.copy()), Parameter(b.data.copy())
    opt, ref = Adam([a, b], lr=0.1), Adam([ra, rb], lr=0.1)
    ref.engine = False   # the reference: the plain loop throughout
    def step():
        for p, r in ((a, ra), (b, rb)): p.grad = np.cos(p.data); r.grad = np.cos(r.data)
        opt.step(); ref.step()
    step()
    assert opt._engine_runs()
    opt.param_groups[0]['params'].append(a); ref.param_groups[0]['params'].append(ra)
    with warnings.catch_warnings():
        warnings.simplefilter('error')   # no warning at the step: torch warns only in add_param_group
        step(); step()
    assert not opt._engine_runs() and opt.state[a]['step'] == 5 and opt.state[b]['step'] == 3
    opt.param_groups[0]['params'].pop(); ref.param_groups[0]['params'].pop()
    step(); step()
    assert opt._engine_runs()
    for p, r in ((a, ra), (b, rb)):
        assert np.array_equal(p.data, r.data)
        for k in ('exp_avg', 'exp_avg_sq'): assert np.array_equal(opt.state[p][k], ref.state[r][k])


# ---------------------------------------------------------------- a number given as a numpy array, as torch takes a 1-element tensor
def test_one_element_arrays_are_numbers_and_longer_ones_are_refused():
    a, b = params((2,), (3,))
    opt = Velocity([a], lr=np.array(0.5), mu=np.array([0.25]), betas=(np.array([0.5]), 0.9))
    assert opt.param_groups[0]['lr'] == 0.5 and type(opt.param_groups[0]['lr']) is float and opt.param_groups[0]['mu'] == 0.25
    assert opt.defaults['lr'] == 0.5 and opt.param_groups[0]['betas'] == (0.5, 0.9)
    opt.add_param_group({'params': [b], 'lr': np.array([0.125], dtype=np.float32)})
    assert opt.param_groups[1]['lr'] == 0.125
    with pytest.raises(ValueError, match=r'invalid lr=array\(\[0.1, 0.1\]\) in param group 0; lr must be a real number in \[0, inf\) '
                                         r'\(an array counts as a number only with one element; this one has 2\)'):
        Velocity([a], lr=np.array([0.1, 0.1]))
    with pytest.raises(ValueError, match='lr'): Velocity([a], lr=np.array([-0.1]))
    with pytest.raises(TypeError, match='lr'): Velocity([a], lr=np.array([True]))
    with pytest.raises(TypeError, match='lr'): Velocity([a], lr=[0.1])   # a list is not a number
    set_grads([a, b]); opt.step()
    before = snapshot(opt, [a, b])
    opt.param_groups[0]['lr'] = np.ones(3)
    with pytest.raises(ValueError, match='only with one element'): opt.step()
    opt.param_groups[0]['lr'] = 0.5
    assert_same(before, snapshot(opt, [a, b]))
    opt.param_groups[0]['lr'] = np.array(0.0)   # edited in as a 0-d array: used as its number
    x = a.data.copy(); set_grads([a, b]); opt.step()
    assert np.array_equal(a.data, x)


def test_hyperparameter_changes_take_effect():
    a, = params((2,))
    opt = Descent([a], lr=0.1)
    a.grad = np.ones(2); x0 = a.data.copy()
    opt.param_groups[0]['lr'] = 0.5
    opt.step()
    np.testing.assert_array_equal(a.data, x0 - 0.5)

def test_declared_hyperparameters_must_match_defaults():
    class Broken(Optimizer):
        update = staticmethod(descent_update)
        hyperparameters = dict(lr=Real('[0, inf)'))
    with pytest.raises(TypeError, match=r"unknown hyperparameter\(s\) \['eps'\]"): Optimizer.__init__(Broken.__new__(Broken), params((2,)), dict(lr=0.1, eps=1e-8))
    with pytest.raises(TypeError, match='unexpected keyword'): Broken(params((2,)), lr=0.1, eps=1e-8)
    class NoUpdate(Optimizer):
        hyperparameters = dict(lr=Real('[0, inf)'))
    with pytest.raises(TypeError, match='no update function'): NoUpdate(params((2,)), lr=0.1)


# ---------------------------------------------------------------- step
def test_step_in_place_grads_untouched_identity_and_values():
    ps = params((3, 4), (5,))
    opt = Descent(ps, lr=0.1, weight_decay=0.01, maximize=True, clip_norm=0.5)
    arrays = [p.data for p in ps]
    for s in range(5):
        set_grads(ps, seed=s)
        grads = [p.grad for p in ps]; copies = [g.copy() for g in grads]
        expect = []
        for p, g in zip(ps, copies):
            g = g * 0.5 / np.linalg.norm(g) if np.linalg.norm(g) > 0.5 else g
            expect.append(p.data - 0.1 * (-g + 0.01 * p.data))
        opt.step()
        for p, a, g, c, e in zip(ps, arrays, grads, copies, expect):
            assert p.data is a and p.grad is g
            np.testing.assert_array_equal(g, c)
            np.testing.assert_allclose(p.data, e, rtol=1e-13)

def test_grad_none_is_skipped_without_state():
    a, b = params((2,), (3,))
    opt = Velocity([a, b])
    a.grad = np.ones(2)
    b0 = b.data.copy()
    opt.step()
    assert a in opt.state and b not in opt.state
    np.testing.assert_array_equal(b.data, b0)
    assert list(opt.state_dict()['state']) == [0]

def test_state_holds_exactly_the_declared_buffers():
    ps, opt = trained()
    for p in ps:
        assert set(opt.state[p]) == {'step', 'velocity'}
        v = opt.state[p]['velocity']
        assert type(v) is np.ndarray and v.shape == p.shape and v.dtype == p.dtype and v.flags.c_contiguous
    ps, opt = trained(nesterov=True)
    assert set(opt.state[ps[0]]) == {'step', 'velocity', 'peak'}

@pytest.mark.parametrize('use_engine', [True, False])
def test_init_state_and_numbers_kept_in_state(use_engine):
    seen = []
    def hooked_update(param, grad, state, *, step, lr):
        state['product'] *= 0.5
        seen.append((step, state['product'])); param -= lr * state['acc'] * grad
    class Hooked(Optimizer):
        update = staticmethod(hooked_update)
        hyperparameters = dict(lr=Real('[0, inf)', default=0.1))
        def init_state(self, param, group): return {'acc': np.full(param.shape, 2.0, param.dtype), 'product': 1.0}
    a, = params((3,))
    opt = Hooked([a]); opt.engine = use_engine
    x0 = a.data.copy()
    a.grad = np.ones(3)
    opt.step(); opt.step()
    assert seen == [(1, 0.5), (2, 0.25)]
    np.testing.assert_allclose(a.data, x0 - 2 * 0.1 * 2.0)
    sd = opt.state_dict()
    assert sd['state'][0]['product'] == 0.25
    b, = params((3,))
    opt2 = Hooked([b]); opt2.load_state_dict(sd)
    assert opt2.state[b]['product'] == 0.25 and opt2.state[b]['step'] == 2

def test_no_graph_growth_over_100_steps():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = Velocity(model.parameters(), lr=0.01)
    loss_fn = nn.MSELoss()
    rng = np.random.default_rng(0)
    x, y = Tensor(rng.standard_normal((16, 4)).astype(np.float32)), rng.standard_normal((16, 1)).astype(np.float32)
    def one_step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    def tensors():
        gc.collect()
        return sum(issubclass(type(o), Tensor) for o in gc.get_objects())
    losses = [one_step() for _ in range(5)]
    n0 = tensors()
    losses += [one_step() for _ in range(100)]
    assert tensors() == n0
    assert losses[-1] < losses[0]
    for p in model.parameters():
        assert p.is_leaf and all(type(v) in (np.ndarray, int) for v in opt.state[p].values())

def test_step_runs_under_no_grad_and_closure_under_grad():
    modes = []
    def probe_update(param, grad, state, *, step, lr):
        modes.append(is_grad_enabled()); param -= lr * grad
    class Probe(Optimizer):
        update = staticmethod(probe_update)
        hyperparameters = dict(lr=Real('[0, inf)'))
        def __init__(self, params, lr=0.1): super().__init__(params, dict(lr=lr))
    w = Parameter(np.array([3.0]))
    opt = Probe([w], lr=0.25)
    def closure():
        modes.append(is_grad_enabled())
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss
    with no_grad():
        loss = opt.step(closure)
    assert modes == [True, False] and is_grad_enabled()
    assert loss.item() == 9.0
    np.testing.assert_array_equal(w.data, [3.0 - 0.25 * 6.0])
    assert opt.step() is None

@pytest.mark.parametrize('bad', ['no', 0, 1, None, [True]])
def test_zero_grad_refuses_a_set_to_none_that_is_not_a_bool(bad):
    a, = params((2,))
    opt = Descent([a])
    a.grad = g = np.ones(2)
    with pytest.raises(TypeError, match=re.escape(f"Descent.zero_grad: set_to_none must be True or False, got {bad!r}")):
        opt.zero_grad(set_to_none=bad)
    assert a.grad is g and np.all(g == 1)
    opt.zero_grad(set_to_none=np.bool_(False))
    assert a.grad is g and np.all(g == 0)

def test_patch_to_is_not_part_of_the_interface():
    from minima import optim
    for name in ('patch_to', 'step', 'state_dict', 'load_state_dict'):
        assert name not in base.__all__ and not hasattr(optim, name), name
    assert Optimizer.step.__qualname__ == 'Optimizer.step'

def test_zero_grad_both_modes():
    a, b = params((2,), (3,))
    opt = Descent([a, b])
    a.grad = np.ones(2)
    g = a.grad
    opt.zero_grad(set_to_none=False)
    assert a.grad is g and np.all(g == 0) and b.grad is None
    opt.zero_grad()
    assert a.grad is None and b.grad is None

def test_repr_lists_groups_and_hyperparameters():
    a, b = params((2, 3), (4,))
    r = repr(Descent([{'params': [a]}, {'params': [b], 'lr': 0.5}], lr=0.1))
    assert r.startswith('Descent (') and 'Parameter Group 1' in r and 'lr: 0.5' in r and 'params: 1 tensor, 6 values' in r


# ---------------------------------------------------------------- atomicity and gradient checks
@pytest.mark.parametrize('bad_grad, exc, words', [
    (lambda p: np.zeros(p.shape[0] + 1, p.dtype), ValueError, ['shape (3,)', 'shape (2,)']),
    (lambda p: np.zeros(p.shape, np.float32), TypeError, ['dtype float32', 'dtype float64']),
    (lambda p: Tensor(np.zeros(p.shape)), TypeError, ['Tensor', 'numpy array']),
    (lambda p: [0.0, 0.0], TypeError, ['list']),
])
def test_failing_step_in_last_param_changes_nothing(bad_grad, exc, words):
    ps, opt = trained(steps=2)
    set_grads(ps, seed=5)
    ps[-1].grad = bad_grad(ps[-1])
    before = snapshot(opt, ps)
    with pytest.raises(exc) as e: opt.step()
    for w in words: assert w in str(e.value)
    assert "'scale'" in str(e.value) and 'nothing was changed' in str(e.value)
    assert_same(before, snapshot(opt, ps))

def test_failing_first_step_leaves_no_state():
    ps = params((3,), (2,))
    opt = Velocity(ps)
    ps[0].grad = np.ones(3); ps[1].grad = np.ones(3)
    with pytest.raises(ValueError): opt.step()
    assert opt.state == {}
    np.testing.assert_array_equal(ps[0].data, params((3,), (2,))[0].data)

def test_corrupted_state_buffer_refused_before_writing():
    ps, opt = trained()
    set_grads(ps, seed=7)
    opt.state[ps[-1]]['velocity'] = np.zeros(5)
    before = snapshot(opt, ps)
    with pytest.raises(ValueError, match="state buffer 'velocity' of parameter 'scale'"): opt.step()
    assert_same(before, snapshot(opt, ps))


# ---------------------------------------------------------------- non-finite gradients
@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_nonfinite_policies(bad):
    # apply (the default): the update goes through, as in torch
    ps, opt = trained()
    set_grads(ps, seed=8); ps[1].grad[0] = bad
    opt.step()
    assert not np.isfinite(ps[1].data[0]) and opt.skipped_steps == 0 and opt.state[ps[0]]['step'] == 4
    # skip: nothing changes, the skip is counted and survives a checkpoint
    ps, opt = trained(nonfinite='skip')
    set_grads(ps, seed=8); ps[1].grad[0] = bad
    before = snapshot(opt, ps)
    opt.step(); opt.step()
    assert opt.skipped_steps == 2
    b = list(before); b[4] = 2
    assert_same(tuple(b), snapshot(opt, ps))
    assert opt.state_dict()['skipped_steps'] == 2
    ps2, opt2 = trained(nonfinite='skip', steps=0)
    opt2.load_state_dict(opt.state_dict())
    assert opt2.skipped_steps == 2
    set_grads(ps, seed=8); opt.step()
    assert opt.skipped_steps == 2 and opt.state[ps[0]]['step'] == 4
    # raise: a FloatingPointError (and RuntimeError) naming the parameter; nothing changes
    ps, opt = trained(nonfinite='raise')
    set_grads(ps, seed=8); ps[2].grad[1] = bad
    before = snapshot(opt, ps)
    with pytest.raises(FloatingPointError, match="parameter 'scale'"): opt.step()
    with pytest.raises(RuntimeError): opt.step()
    assert_same(before, snapshot(opt, ps))

def test_nonfinite_policy_per_group():
    a, b = params((2,), (2,))
    opt = Descent([{'params': [a], 'nonfinite': 'raise'}, {'params': [b]}])
    a.grad = np.ones(2); b.grad = np.array([np.nan, 1.0])
    opt.step()
    assert np.isnan(b.data[0]) and np.all(np.isfinite(a.data))


# ---------------------------------------------------------------- clip_norm option (numpy-ml semantics)
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_clip_norm_option_matches_numpy_ml_and_leaves_grad(dtype):
    ps = params((300, 100), (7,), dtype=dtype)   # one parameter large enough to be chunked
    opt = Descent(ps, lr=0.1, clip_norm=1.0)
    set_grads(ps)
    x0 = [p.data.copy() for p in ps]; g0 = [p.grad.copy() for p in ps]
    opt.step()
    for p, x, g in zip(ps, x0, g0):
        n = np.linalg.norm(g)
        seen = g * 1.0 / n if n > 1.0 else g     # numpy-ml: param_grad * t / norm(param_grad)
        np.testing.assert_array_equal(p.data, x - dtype(0.1) * seen)
        np.testing.assert_array_equal(p.grad, g)

def test_clip_norm_small_gradient_unchanged():
    a, = params((3,))
    opt = Descent([a], lr=1.0, clip_norm=10.0)
    a.grad = np.array([1.0, 2.0, 2.0]); x0 = a.data.copy()
    opt.step()
    np.testing.assert_array_equal(a.data, x0 - a.grad)


# ---------------------------------------------------------------- chunked execution
def test_chunks_are_bit_identical_to_whole_arrays_and_cover_everything():
    rng = np.random.default_rng(0)
    n = 3 * engine.CHUNK_SIZE + 17
    x, g, v = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
    whole = [x.copy(), {'velocity': v.copy()}]
    velocity_update(whole[0], g, whole[1], step=1, lr=0.1, mu=0.9, betas=None, nesterov=True)
    calls = []
    def counting(param, grad, state, **kw):
        calls.append(param.size); velocity_update(param, grad, state, **kw)
    xc, vc = x.copy(), v.copy()
    engine._run(counting, xc, [g], {'velocity': vc}, {}, engine.Engine(None)._pools, step=1, lr=0.1, mu=0.9, betas=None, nesterov=True)
    length, parallel = engine._chunking(n)
    assert parallel and length <= engine.CHUNK_SIZE
    assert sorted(calls) == sorted([length] * 3 + [n - 3 * length])   # four chunks, two per thread, in any order
    np.testing.assert_array_equal(xc, whole[0]); np.testing.assert_array_equal(vc, whole[1]['velocity'])

def test_non_contiguous_param_is_updated_whole():
    rng = np.random.default_rng(0)
    data = np.asfortranarray(rng.standard_normal((300, 200)))
    p = Parameter(data)
    assert not p.data.flags.c_contiguous
    sizes = []
    def probe_update(param, grad, state, *, step, lr):
        sizes.append(param.shape); param -= lr * grad
    class Probe(Optimizer):
        update = staticmethod(probe_update)
        hyperparameters = dict(lr=Real('[0, inf)'))
        def __init__(self, params, lr=0.1): super().__init__(params, dict(lr=lr))
    opt = Probe([p])
    p.grad = rng.standard_normal((300, 200)); x0 = p.data.copy(); arr = p.data
    opt.step()
    assert sizes == [(300, 200)] and p.data is arr
    np.testing.assert_array_equal(p.data, x0 - 0.1 * p.grad)

def test_large_param_state_identical_whatever_the_chunking(monkeypatch):
    def run(chunk):
        monkeypatch.setattr(engine, 'CHUNK_SIZE', chunk)
        ps, opt = trained()
        big, = params((200, 150), dtype=np.float32, seed=3)
        opt.add_param_group({'params': [('big', big)], 'nesterov': True})
        for s in range(4):
            set_grads(ps + [big], seed=s)
            opt.step()
        return big.data.copy(), opt.state[big]['peak'].copy()
    a, b = run(1 << 30), run(1000)
    np.testing.assert_array_equal(a[0], b[0]); np.testing.assert_array_equal(a[1], b[1])


# ---------------------------------------------------------------- state_dict / load_state_dict
def test_state_dict_layout_and_copies():
    ps, opt = trained()
    sd = opt.state_dict()
    assert list(sd) == ['state', 'param_groups', 'skipped_steps']
    assert sd['param_groups'][0]['params'] == [0, 1, 2]
    assert sd['param_groups'][0]['param_names'] == ['fc.weight', 'fc.bias', 'scale']
    assert sd['state'][1]['step'] == 3
    assert sd['state'][1]['velocity'] is not opt.state[ps[1]]['velocity']
    np.testing.assert_array_equal(sd['state'][1]['velocity'], opt.state[ps[1]]['velocity'])
    sd['param_groups'][0]['param_names'].append('x')
    assert len(opt.param_groups[0]['param_names']) == 3

def test_round_trip_continues_bit_identically():
    ps, opt = trained(steps=3)
    sd = opt.state_dict()
    ps2 = params((3, 4), (4,), (2,))
    for p, q in zip(ps, ps2): q.data[...] = p.data
    opt2 = Velocity(list(zip(['fc.weight', 'fc.bias', 'scale'], ps2)))
    opt2.load_state_dict(sd)
    for s in range(3, 6):
        set_grads(ps, seed=s); set_grads(ps2, seed=s)
        opt.step(); opt2.step()
    for p, q in zip(ps, ps2):
        np.testing.assert_array_equal(p.data, q.data)
        np.testing.assert_array_equal(opt.state[p]['velocity'], opt2.state[q]['velocity'])
    # the loaded arrays are copies: changing the dict afterwards changes nothing
    sd['state'][0]['velocity'][...] = 1e9
    assert np.all(opt2.state[ps2[0]]['velocity'] < 1e9)

def test_load_restores_hyperparameters_and_keeps_group_dicts():
    ps, opt = trained(lr=0.3)
    ps2, opt2 = trained(steps=0, lr=0.1)
    group = opt2.param_groups[0]
    opt2.load_state_dict(opt.state_dict())
    assert opt2.param_groups[0] is group and group['lr'] == 0.3 and group['params'] == ps2

def test_load_accepts_string_ids_and_list_betas():
    ps, opt = trained()
    sd = opt.state_dict()
    sd['state'] = {str(k): v for k, v in sd['state'].items()}
    sd['param_groups'][0]['betas'] = list(sd['param_groups'][0]['betas'])
    ps2, opt2 = trained(steps=0)
    opt2.load_state_dict(sd)
    assert opt2.state[ps2[2]]['step'] == 3 and opt2.param_groups[0]['betas'] == (0.9, 0.99)

def _sd_with(edit):
    ps, opt = trained()
    sd = opt.state_dict()
    edit(sd)
    return sd

def _set(d, key, value): d[key] = value
LOAD_MISMATCHES = [
    ('not a dict', lambda sd: sd.clear(), TypeError, "'state' and 'param_groups'"),
    ('group count', lambda sd: sd['param_groups'].append(dict(sd['param_groups'][0])), ValueError, '2 param groups'),
    ('group size', lambda sd: sd['param_groups'][0]['params'].pop(), ValueError, '2 parameters in the state dict, 3'),
    ('names reordered', lambda sd: sd['param_groups'][0]['param_names'].reverse(), ValueError, "position 0: the state dict has 'scale'"),
    ('buffer shape', lambda sd: _set(sd['state'][0], 'velocity', np.zeros((4, 3))), ValueError, "'velocity'"),
    ('buffer dtype', lambda sd: _set(sd['state'][1], 'velocity', sd['state'][1]['velocity'].astype(np.float32)), ValueError, 'float32'),
    ('missing buffer', lambda sd: sd['state'][2].pop('velocity'), ValueError, "has no 'velocity'"),
    ('extra buffer, wrong shape', lambda sd: _set(sd['state'][2], 'peak', np.zeros(3)), ValueError, "'peak'"),
    ('buffer not array', lambda sd: _set(sd['state'][2], 'velocity', [0.0, 0.0]), TypeError, "'velocity' of the state of parameter 'scale' (param group 0) is a list"),
    ('buffer a number', lambda sd: _set(sd['state'][1], 'velocity', 0.5), TypeError, "'velocity' of the state of parameter 'fc.bias' (param group 0) is a float"),
    ('extra array of another shape', lambda sd: _set(sd['state'][0], 'momentum_buffer', np.zeros((4, 3))), ValueError,
     "'momentum_buffer' of the state of parameter 'fc.weight' (param group 0) has shape (4, 3)"),
    ('bad step', lambda sd: _set(sd['state'][0], 'step', -1), ValueError, 'step=-1'),
    ('float step', lambda sd: _set(sd['state'][0], 'step', 2.5), ValueError, 'step=2.5'),
    ('missing step', lambda sd: sd['state'][0].pop('step'), ValueError, 'step=None'),
    ('unknown id', lambda sd: _set(sd['state'], 7, sd['state'][0]), ValueError, 'id 7'),
    ('duplicate id', lambda sd: _set(sd['param_groups'][0], 'params', [0, 0, 1]), ValueError, 'distinct'),
    ('invalid hyperparameter', lambda sd: _set(sd['param_groups'][0], 'mu', 1.5), ValueError, 'invalid mu=1.5 in param group 0 of the state dict'),
    ('missing hyperparameter', lambda sd: sd['param_groups'][0].pop('betas'), ValueError, "has no 'betas'"),
    ('unknown key', lambda sd: _set(sd['param_groups'][0], 'amsgrad', False), ValueError, "unknown key(s) ['amsgrad']"),
    ('state entry not dict', lambda sd: _set(sd['state'], 0, 5), TypeError, 'not a dict'),
    ('extra entry not number', lambda sd: _set(sd['state'][0], 'note', 'x'), TypeError, "note='x', a str; the state of an elementwise optimizer holds arrays and numbers"),
    ('skipped_steps', lambda sd: _set(sd, 'skipped_steps', -3), ValueError, 'skipped_steps=-3'),
    ('state not dict', lambda sd: _set(sd, 'state', []), TypeError, "'state' a dict"),
]
@pytest.mark.parametrize('case, edit, exc, words', LOAD_MISMATCHES, ids=[c[0] for c in LOAD_MISMATCHES])
def test_every_load_mismatch_refused_and_nothing_changes(case, edit, exc, words):
    sd = _sd_with(edit)
    ps, opt = trained(steps=1, lr=0.2)
    before = snapshot(opt, ps)
    with pytest.raises(exc) as e: opt.load_state_dict(sd)
    assert words in str(e.value), str(e.value)
    assert_same(before, snapshot(opt, ps))

def test_load_checks_buffers_for_the_saved_settings():
    ps, opt = trained(nesterov=True)      # buffers velocity + peak
    ps2, opt2 = trained(steps=0)          # nesterov=False; the loaded groups turn it on
    opt2.load_state_dict(opt.state_dict())
    assert opt2.param_groups[0]['nesterov'] is True and set(opt2.state[ps2[0]]) == {'step', 'velocity', 'peak'}
    ps3, opt3 = trained(steps=2)
    sd = opt3.state_dict(); sd['param_groups'][0]['nesterov'] = True
    with pytest.raises(ValueError, match="has no 'peak'"): opt2.load_state_dict(sd)

def test_load_accepts_a_buffer_kept_after_a_setting_changed():
    "A step keeps a buffer a changed setting no longer needs; a checkpoint holding it loads, with the buffer."
    ps, opt = trained(nesterov=True)
    opt.param_groups[0]['nesterov'] = False
    set_grads(ps, seed=9); opt.step()
    sd = opt.state_dict()
    assert 'peak' in sd['state'][0] and sd['param_groups'][0]['nesterov'] is False
    ps2, opt2 = trained(steps=0)
    opt2.load_state_dict(sd)
    np.testing.assert_array_equal(opt2.state[ps2[0]]['peak'], sd['state'][0]['peak'])


def _stepped(cls, changes=None, **kw):
    ps = params((3, 4), (4,))
    opt = cls(ps, **kw)
    for s in range(2):
        set_grads(ps, seed=s); opt.step()
        if changes: opt.param_groups[0].update(changes)
    return ps, opt

@pytest.mark.parametrize('cls, kw, changes, kept', [
    ('SGD', dict(lr=0.1, momentum=0.9), dict(momentum=0.0), 'momentum_buffer'),
    ('Adam', dict(amsgrad=True), dict(amsgrad=False), 'max_exp_avg_sq'),
    ('RMSprop', dict(momentum=0.5, centered=True), dict(momentum=0.0, centered=False), 'grad_avg'),
])
def test_real_optimizers_load_kept_buffers(cls, kw, changes, kept):
    from minima import optim
    cls = getattr(optim, cls)
    ps, opt = _stepped(cls, changes, **kw)
    sd = opt.state_dict()
    assert kept in sd['state'][0]
    ps2 = params((3, 4), (4,))
    opt2 = cls(ps2, **{k: v for k, v in kw.items() if k == 'lr'})
    opt2.load_state_dict(sd)
    np.testing.assert_array_equal(opt2.state[ps2[0]][kept], sd['state'][0][kept])

def test_load_without_names_on_one_side_matches_by_position():
    ps, opt = trained()
    ps2 = params((3, 4), (4,), (2,))
    opt2 = Velocity(ps2)
    opt2.load_state_dict(opt.state_dict())
    assert opt2.state[ps2[0]]['step'] == 3 and 'param_names' not in opt2.param_groups[0]


# ---------------------------------------------------------------- clip_grad_norm_ / clip_grad_value_ against torch
def _pairs(dtype, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    shapes = [(5, 3), (3,), (2, 2, 2), ()]
    ours = [Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]
    theirs = [torch.zeros(s, dtype=getattr(torch, np.dtype(dtype).name), requires_grad=True) for s in shapes]
    for p, t in zip(ours, theirs):
        p.grad = np.asarray(scale * rng.standard_normal(p.shape), dtype=dtype)
        t.grad = torch.from_numpy(p.grad.copy())
    return ours, theirs

@pytest.mark.parametrize('dtype, rtol', [(np.float64, 1e-12), (np.float32, 1e-6)])
@pytest.mark.parametrize('norm_type', [1.0, 2.0, 3.0, float('inf')])
@pytest.mark.parametrize('max_norm', [0.1, 1.0, 1e3])
def test_clip_grad_norm_matches_torch(dtype, rtol, norm_type, max_norm):
    ours, theirs = _pairs(dtype, seed=int(norm_type * 10 if norm_type != float('inf') else 99))
    arrays = [p.grad for p in ours]
    total = clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    np.testing.assert_allclose(total, expected.item(), rtol=rtol)
    for p, t, a in zip(ours, theirs, arrays):
        assert p.grad is a and p.grad.dtype == dtype
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=rtol, atol=0)

def test_clip_grad_norm_single_parameter_skips_none_and_empty():
    a, b = params((3,), (2,))
    a.grad = np.array([3.0, 4.0, 0.0])
    assert clip_grad_norm_(a, 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad, np.array([3.0, 4.0, 0.0]) / (5 + 1e-6))
    assert clip_grad_norm_([b], 1.0) == 0.0

def test_clip_grad_norm_nonfinite():
    ours, theirs = _pairs(np.float64, seed=3)
    ours[1].grad[0] = np.nan; theirs[1].grad[0] = float('nan')
    before = [p.grad.copy() for p in ours]
    with pytest.raises(NonFiniteGradientError, match='non-finite|is nan'): clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError): torch.nn.utils.clip_grad_norm_(theirs, 1.0, error_if_nonfinite=True)
    for p, b in zip(ours, before): np.testing.assert_array_equal(p.grad, b)
    total = clip_grad_norm_(ours, 1.0)         # default: scale anyway, as torch
    torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert np.isnan(total)
    for p, t in zip(ours, theirs): np.testing.assert_array_equal(np.isnan(p.grad), np.isnan(t.grad.numpy()))

def test_clip_grad_norm_bad_arguments():
    a, = params((2,)); a.grad = np.ones(2)
    with pytest.raises(ValueError, match=r'max_norm=-1.0.*\[0, inf\)'): clip_grad_norm_(a, -1.0)
    with pytest.raises(ValueError, match='norm_type=0'): clip_grad_norm_(a, 1.0, norm_type=0)
    with pytest.raises(TypeError, match='max_norm'): clip_grad_norm_(a, '1')

@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('clip_value', [0.0, 0.3, 10.0])
def test_clip_grad_value_matches_torch(dtype, clip_value):
    ours, theirs = _pairs(dtype, seed=5, scale=2.0)
    arrays = [p.grad for p in ours]
    clip_grad_value_(ours, clip_value)
    torch.nn.utils.clip_grad_value_(theirs, clip_value)
    for p, t, a in zip(ours, theirs, arrays):
        assert p.grad is a
        np.testing.assert_array_equal(p.grad, t.grad.numpy())
    with pytest.raises(ValueError, match='clip_value=-1'): clip_grad_value_(ours, -1)


# ---------------------------------------------------------------- weight-decay groups, gradient accumulation
def test_param_groups_weight_decay():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    groups = param_groups_weight_decay(model, weight_decay=0.05)
    assert [g['weight_decay'] for g in groups] == [0.05, 0.0]
    assert [n for n, _ in groups[0]['params']] == ['0.weight', '2.weight']
    assert [n for n, _ in groups[1]['params']] == ['0.bias', '2.bias']
    opt = Descent(groups, lr=0.1)
    assert opt.param_groups[1]['param_names'] == ['0.bias', '2.bias']
    # a custom rule, and a model where one group is empty
    groups = param_groups_weight_decay(model.named_parameters(), 0.1, no_decay=lambda n, p: n.startswith('2.'))
    assert [n for n, _ in groups[1]['params']] == ['2.weight', '2.bias']
    only_w = param_groups_weight_decay([('w', Parameter(np.zeros((2, 2))))], 0.1)
    assert len(only_w) == 1 and only_w[0]['weight_decay'] == 0.1
    # the decay is applied only to the first group
    w, b = Parameter(np.ones((2, 2))), Parameter(np.ones(2))
    opt = Descent(param_groups_weight_decay([('w', w), ('b', b)], 0.5), lr=0.1)
    w.grad, b.grad = np.zeros((2, 2)), np.zeros(2)
    opt.step()
    np.testing.assert_allclose(w.data, 1 - 0.1 * 0.5); np.testing.assert_array_equal(b.data, 1.0)

def test_gradient_accumulation_equals_one_big_batch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 5)); y = rng.standard_normal((32, 1))
    def model_and_opt():
        m = nn.Linear(5, 1, dtype=np.float64, generator=np.random.default_rng(1))
        return m, Velocity(m.parameters(), lr=0.05)
    loss_fn = nn.MSELoss()
    big, opt_big = model_and_opt()
    acc, opt_acc = model_and_opt()
    n = 4
    for _ in range(3):
        opt_big.zero_grad()
        loss_fn(big(Tensor(x)), y).backward()
        opt_big.step()
        opt_acc.zero_grad()
        for xb, yb in zip(np.split(x, n), np.split(y, n)):
            (loss_fn(acc(Tensor(xb)), yb) * (1 / n)).backward()
        opt_acc.step()
    for p, q in zip(big.parameters(), acc.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-12, atol=1e-14)

def test_init_state_runs_once_and_an_update_makes_what_a_changed_setting_needs():
    ps, opt = trained()                                  # velocity only
    opt.param_groups[0]['nesterov'] = True               # init_state is not run again (as torch): no 'peak'
    set_grads(ps, seed=11)
    v_before = opt.state[ps[0]]['velocity']
    opt.step()
    assert set(opt.state[ps[0]]) == {'step', 'velocity'} and opt.state[ps[0]]['velocity'] is v_before
    assert opt.state[ps[0]]['step'] == 4
    from minima.optim import Adam                        # Adam makes its maximum when amsgrad is turned on
    runs = []
    for use_engine in (True, False):
        qs = params((3, 4), (4,))
        adam = Adam(qs, lr=0.1); adam.engine = use_engine
        set_grads(qs, seed=1); adam.step()
        adam.param_groups[0]['amsgrad'] = True
        set_grads(qs, seed=2); adam.step()
        adam.param_groups[0]['amsgrad'] = False          # no longer needed: kept, saved and loaded
        set_grads(qs, seed=3); adam.step()
        assert set(adam.state[qs[0]]) == {'step', 'exp_avg', 'exp_avg_sq', 'max_exp_avg_sq'}
        qs2 = params((3, 4), (4,)); adam2 = Adam(qs2)
        adam2.load_state_dict(adam.state_dict())
        np.testing.assert_array_equal(adam2.state[qs2[1]]['max_exp_avg_sq'], adam.state[qs[1]]['max_exp_avg_sq'])
        runs.append([q.data.tobytes() for q in qs] + [adam.state[q]['max_exp_avg_sq'].tobytes() for q in qs])
    assert runs[0] == runs[1]

def test_closure_must_be_callable():
    a, = params((2,))
    opt = Descent([a]); a.grad = np.ones(2); x0 = a.data.copy()
    with pytest.raises(TypeError, match='closure must be a function'): opt.step(closure=3)
    np.testing.assert_array_equal(a.data, x0)

def test_hyperparameters_reach_the_update_as_python_floats():
    seen = []
    def probe_update(param, grad, state, *, step, lr, mu, betas, nesterov):
        seen.append((type(lr), type(mu), tuple(map(type, betas)), type(nesterov)))
        param -= lr * grad
    class Probe(Velocity):
        update = staticmethod(probe_update)
    a, = params((2,), dtype=np.float32)
    opt = Probe([a], lr=np.float64(0.1), mu=0)
    assert type(opt.param_groups[0]['lr']) is float and type(opt.param_groups[0]['mu']) is float
    opt.param_groups[0]['lr'] = np.float64(0.2)           # as a schedule might set it
    a.grad = np.ones(2, np.float32); x0 = a.data.copy()
    opt.step()
    assert seen == [(float, float, (float, float), bool)]
    np.testing.assert_array_equal(a.data, x0 - np.float32(0.2))   # float32 arithmetic, as with a Python float


# ---------------------------------------------------------------- property: resume from a state_dict is exact
from hypothesis import given, settings, strategies as st

@settings(deadline=None, max_examples=25)
@given(st.lists(st.sampled_from([(1,), (3,), (2, 3), (engine.CHUNK_SIZE + 3,)]), min_size=1, max_size=5),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 4), st.integers(1, 4), st.data())
def test_resume_from_state_dict_is_bit_identical(shapes, dtype, before, after, data):
    "Random groups, settings and missing gradients: save, load into fresh parameters, continue = uninterrupted."
    group_of = [data.draw(st.integers(0, 2)) for _ in shapes]
    settings_of = {k: dict(lr=data.draw(st.sampled_from([0.01, 0.5])), nesterov=data.draw(st.booleans()))
                   for k in set(group_of)}
    has_grad = [[data.draw(st.booleans()) for _ in shapes] for _ in range(before + after)]
    seed = data.draw(st.integers(0, 2**16))
    def build():
        ps = params(*shapes, dtype=dtype, seed=seed)
        groups = [{'params': [(f'p{i}', p) for i, (p, k) in enumerate(zip(ps, group_of)) if k == g], **settings_of[g]}
                  for g in sorted(settings_of)]
        return ps, Velocity(groups, nonfinite='skip')
    def run(ps, opt, steps):
        rng = np.random.default_rng(seed + 1)
        for t in range(before + after):
            grads = [rng.standard_normal(p.shape).astype(dtype) for p in ps]
            if t in steps:
                for p, g, h in zip(ps, grads, has_grad[t]): p.grad = g if h else None
                opt.step()
    ps, opt = build()
    run(ps, opt, range(before + after))
    ps1, opt1 = build()
    run(ps1, opt1, range(before))
    sd = opt1.state_dict()
    ps2, opt2 = build()
    for p, q in zip(ps1, ps2): q.data[...] = p.data
    opt2.load_state_dict(sd)
    run(ps2, opt2, range(before, before + after))
    for p, q in zip(ps, ps2):
        assert p.data.tobytes() == q.data.tobytes()
        assert (p in opt.state) == (q in opt2.state)
        if p in opt.state:
            assert opt.state[p].keys() == opt2.state[q].keys()
            for k, v in opt.state[p].items():
                assert (v.tobytes() == opt2.state[q][k].tobytes()) if isinstance(v, np.ndarray) else v == opt2.state[q][k]


# -- regressions --

def test_small_parameters_of_two_dtypes_are_batched_apart():
    # without state buffers no slab separates them: the batch key itself must hold the dtype
    a, b = Parameter(np.ones(3, np.float32)), Parameter(np.ones(3, np.float64))
    a.grad, b.grad = np.ones(3, np.float32), np.full(3, 1e-9)
    Descent([a, b], lr=1.0).step()
    assert b.data.dtype == np.float64 and np.array_equal(b.data, np.full(3, 1.0 - 1e-9))
    assert np.array_equal(a.data, np.zeros(3, np.float32))
    c, d = Parameter(np.ones(3, np.float64)), Parameter(np.full(3, 0.1, np.float32))
    c.grad, d.grad = np.ones(3), np.full(3, 0.3, np.float32)
    Descent([c, d], lr=0.7).step()
    d_alone = Parameter(np.full(3, 0.1, np.float32)); d_alone.grad = np.full(3, 0.3, np.float32)
    Descent([d_alone], lr=0.7).step()
    assert np.array_equal(d.data, d_alone.data)

def test_flat_runner_refuses_to_cast():
    flat = np.ones(4, np.float32)
    grads = [np.ones(2, np.float32), np.ones(2, np.float64)]
    with pytest.raises(TypeError):
        engine._run(descent_update, flat, grads, {}, {}, engine.Engine(None)._pools, step=1, lr=1.0, weight_decay=0.0, maximize=False)
    assert np.array_equal(flat, np.ones(4, np.float32))

@pytest.mark.parametrize('where', [0, 1, 2])
def test_clip_grad_norm_inf_sees_a_nan_in_any_gradient(where):
    grads = [np.array([1.0, 2.0]), np.array([0.5, -3.0]), np.array([0.25, 0.0])]
    grads[where][0] = np.nan
    ours = [Parameter(np.ones(2)) for _ in grads]
    theirs = [torch.ones(2, dtype=torch.float64, requires_grad=True) for _ in grads]
    for p, t, g in zip(ours, theirs, grads): p.grad, t.grad = g.copy(), torch.tensor(g)
    with pytest.raises(NonFiniteGradientError): clip_grad_norm_(ours, 1.0, float('inf'), error_if_nonfinite=True)
    for p, g in zip(ours, grads): np.testing.assert_array_equal(p.grad, g)
    total = clip_grad_norm_(ours, 1.0, float('inf'))
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0, float('inf'))
    assert np.isnan(total) and torch.isnan(expected)
    for p, t in zip(ours, theirs): np.testing.assert_array_equal(p.grad, t.grad.numpy())

@pytest.mark.parametrize('clone', [copy.deepcopy, lambda o: pickle.loads(pickle.dumps(o))], ids=['deepcopy', 'pickle'])
def test_copied_optimizer_continues_like_the_original(clone):
    ps = params((3,), (2, 2), (5,))
    opt = Velocity(ps, lr=0.1, mu=0.9)
    set_grads(ps); opt.step()
    twin = clone(opt)
    qs = twin.param_groups[0]['params']
    for seed in range(2, 5):
        set_grads(ps, seed); set_grads(qs, seed)
        opt.step(); twin.step()
        for p, q in zip(ps, qs):
            np.testing.assert_array_equal(q.data, p.data)
            assert twin.state[q]['step'] == opt.state[p]['step']
            np.testing.assert_array_equal(twin.state[q]['velocity'], opt.state[p]['velocity'])

def test_state_dict_and_load_check_edited_param_lists():
    a, b = params((2,), (2,))
    opt = Velocity([{'params': [a]}, {'params': [b]}])
    set_grads([a, b]); opt.step()
    sd = opt.state_dict()
    opt.param_groups[1]['params'] = [a]   # the same parameter in two groups
    before = snapshot(opt, [a, b])
    with pytest.raises(ValueError, match='one parameter group only'): opt.load_state_dict(sd)
    assert_same(snapshot(opt, [a, b]), before)
    with pytest.raises(ValueError, match='one parameter group only'): opt.state_dict()
    opt.param_groups[1]['params'] = [b]
    opt.load_state_dict(opt.state_dict())

def test_load_copies_into_the_existing_buffers():
    a, b = params((2,), (3,))
    opt = Velocity([a, b], mu=0.5)
    set_grads([a, b]); opt.step()
    saved = opt.state_dict()
    set_grads([a, b], 2); opt.step()
    ref = opt.state[a]['velocity']
    opt.load_state_dict(saved)
    np.testing.assert_array_equal(opt.state[a]['velocity'], saved['state'][0]['velocity'])
    assert opt.state[a]['velocity'] is not saved['state'][0]['velocity']
    set_grads([a, b], 3); opt.step()   # the engine copies the loaded values into its flat arrays
    assert opt.state[a]['velocity'] is ref
    np.testing.assert_array_equal(ref, saved['state'][0]['velocity'] * 0.5 + a.grad)   # v <- mu v + g from the loaded v

def test_load_of_arrays_sharing_memory_with_the_buffers():
    a, b = params((3,), (3,))
    opt = Velocity([a, b])
    set_grads([a, b]); opt.step()
    va, vb = opt.state[a]['velocity'].copy(), opt.state[b]['velocity'].copy()
    swapped = opt.state_dict()
    swapped['state'][0]['velocity'], swapped['state'][1]['velocity'] = opt.state[b]['velocity'], opt.state[a]['velocity']
    opt.load_state_dict(swapped)
    np.testing.assert_array_equal(opt.state[a]['velocity'], vb)
    np.testing.assert_array_equal(opt.state[b]['velocity'], va)


# -- the two threads of a step --

two_cpus = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason='the second thread runs only with two CPUs')

def _chunked(monkeypatch, update, n=400):
    "Run `update` through the engine on 4-element chunks of an n-element array (n/4 tasks for two threads)."
    monkeypatch.setattr(engine, 'CHUNK_SIZE', 4); monkeypatch.setattr(engine, 'PARALLEL_SIZE', 16)
    engine._run(update, np.ones(n), [np.ones(n)], {}, {}, engine.Engine(None)._pools, step=1)

@two_cpus
def test_second_thread_uses_the_callers_numpy_error_settings(monkeypatch):
    seen = []   # (on the caller's thread, numpy's 'over' setting) per chunk
    me = threading.get_ident()
    def update(param, grad, state, *, step):
        time.sleep(0.002); seen.append((threading.get_ident() == me, np.geterr()['over']))
    with np.errstate(over='raise'): _chunked(monkeypatch, update)
    assert any(not mine for mine, _ in seen)   # the second thread took chunks
    assert {over for _, over in seen} == {'raise'}

@two_cpus
def test_second_thread_stops_when_the_caller_raises(monkeypatch):
    me, calls = threading.get_ident(), []
    def update(param, grad, state, *, step):
        calls.append(threading.get_ident() == me)
        if threading.get_ident() == me: raise RuntimeError('caller failed')
        time.sleep(0.002)
    with pytest.raises(RuntimeError, match='caller failed'): _chunked(monkeypatch, update)
    assert len(calls) < 20   # of 100 chunks

@two_cpus
def test_the_callers_exception_is_not_masked_by_the_second_threads(monkeypatch):
    me, calls = threading.get_ident(), []
    def update(param, grad, state, *, step):
        calls.append(threading.get_ident() == me)
        if threading.get_ident() != me: raise ValueError('second thread failed')
        time.sleep(0.05); raise RuntimeError('caller failed')
    with pytest.raises(RuntimeError, match='caller failed'): _chunked(monkeypatch, update)
    assert not all(calls)   # the second thread did fail
    def only_the_second_fails(param, grad, state, *, step):
        if threading.get_ident() != me: raise ValueError('second thread failed')
        time.sleep(0.002)
    with pytest.raises(ValueError, match='second thread failed'): _chunked(monkeypatch, only_the_second_fails)

@two_cpus
def test_flat_runs_on_the_second_thread_use_the_callers_numpy_error_settings(monkeypatch):
    monkeypatch.setattr(engine, 'CHUNK_SIZE', 4096); monkeypatch.setattr(engine, 'PARALLEL_SIZE', 4 * 4096)
    seen, me = [], threading.get_ident()
    def record(param, grad, state, *, step, lr, weight_decay, maximize):
        time.sleep(0.002); seen.append((threading.get_ident() == me, np.geterr()['invalid']))
    class Recorder(Descent): update = staticmethod(record)
    ps = params(*[(1000,)] * 160)   # one run of 40 chunks
    set_grads(ps)
    with np.errstate(invalid='raise'): Recorder(ps).step()
    assert any(not mine for mine, _ in seen) and {v for _, v in seen} == {'raise'}


# -- parameters in flat arrays --

def test_parameters_move_into_one_flat_array_per_group_and_dtype():
    a, b = params((3, 4), (5,)); c, = params((2, 2), dtype=np.float32); d, = params((7,))
    values = [p.data.copy() for p in (a, b, c, d)]
    opt = Velocity([{'params': [a, b, c]}, {'params': [d], 'lr': 0.5}])
    for p, v in zip((a, b, c, d), values):
        assert p.data.dtype == v.dtype and p.data.shape == v.shape and p.data.tobytes() == v.tobytes()
    roots = [engine._root(p.data) for p in (a, b, c, d)]
    assert roots[0] is roots[1] and roots[0].size == 17
    assert roots[2] is not roots[0] and roots[2].dtype == np.float32 and roots[3] is not roots[0]
    set_grads([a, b, c, d]); opt.step()
    va, vb = opt.state[a]['velocity'], opt.state[b]['velocity']
    assert engine._root(va) is engine._root(vb) and engine._root(va) is not roots[0]
    assert not np.shares_memory(va, vb) and not np.shares_memory(va, a.data)

def test_a_constructor_or_add_param_group_that_fails_moves_nothing():
    w, b = params((3,), (2,))
    arrays = [w.data, b.data]
    with pytest.raises(ValueError, match='one parameter group only'): Velocity([{'params': [w]}, {'params': [w, b]}])
    with pytest.raises(ValueError, match='mu'): Velocity([w, b], mu=1.5)
    opt = Velocity([w])
    moved = w.data
    with pytest.raises(ValueError, match='lr'): opt.add_param_group({'params': [b], 'lr': -1.0})
    assert b.data is arrays[1] and w.data is moved and moved is not arrays[0]

def test_parameters_that_share_memory_stay_where_they_are():
    whole = np.zeros(6)
    left, right = Parameter(whole[:3]), Parameter(whole[3:])   # two views of one array
    x, = params((4,)); twin = Parameter(x.data)                 # two Parameters on one array
    alone, = params((2,))
    opt = Descent([left, right, x, twin, alone], lr=0.5)
    assert left.data.base is whole and right.data.base is whole and twin.data is x.data
    assert engine._root(alone.data).size == 2 and alone.data.base is not None   # the only one moved
    for p in (left, right, x, twin, alone): p.grad = np.ones(p.shape)
    x0 = x.data.copy()
    opt.step()
    np.testing.assert_array_equal(whole, np.full(6, -0.5))          # updated in the user's array
    np.testing.assert_array_equal(x.data, x0 - 1.0)                 # both Parameters' steps reach the one array

def test_a_replaced_parameter_array_is_updated_where_it_is():
    ps = params((3,), (4,), (2,)); ref = params((3,), (4,), (2,))
    opt, opt_ref = Velocity(ps, mu=0.5), Velocity(ref, mu=0.5)
    set_grads(ps); set_grads(ref); opt.step(); opt_ref.step()
    new = ps[1].data.copy(); ps[1].data = new
    for seed in (2, 3):
        set_grads(ps, seed); set_grads(ref, seed); opt.step(); opt_ref.step()
        assert ps[1].data is new
        for p, q in zip(ps, ref):
            np.testing.assert_array_equal(p.data, q.data)
            np.testing.assert_array_equal(opt.state[p]['velocity'], opt_ref.state[q]['velocity'])
    # before any state exists, the array may even change shape
    fresh, = params((3,)); opt2 = Velocity([fresh], lr=1.0)
    fresh.data = np.ones(5); fresh.grad = np.ones(5)
    opt2.step()
    np.testing.assert_array_equal(fresh.data, np.zeros(5))

def test_a_second_optimizer_takes_the_parameters_and_the_first_still_updates_them():
    p, = params((4,)); q, = params((4,))
    first = Descent([p], lr=0.5); moved_by_first = p.data
    second = Descent([p], lr=0.25)
    assert p.data is not moved_by_first and np.array_equal(p.data, q.data)
    p.grad = q.grad = np.ones(4)
    first.step(); second.step()
    np.testing.assert_array_equal(p.data, q.data - 0.75)

def test_state_given_by_load_state_dict_moves_into_the_flat_arrays_at_the_next_step():
    ps, opt = trained()
    fresh = [Parameter(p.data.copy()) for p in ps]
    opt2 = Velocity(list(zip(['fc.weight', 'fc.bias', 'scale'], fresh)))
    opt2.load_state_dict(opt.state_dict())
    loaded = opt2.state[fresh[0]]['velocity']
    assert engine._root(loaded) is loaded
    set_grads(ps, 7); set_grads(fresh, 7); opt.step(); opt2.step()
    v0, v1 = opt2.state[fresh[0]]['velocity'], opt2.state[fresh[1]]['velocity']
    assert v0 is not loaded and engine._root(v0) is engine._root(v1)
    for p, q in zip(ps, fresh):
        np.testing.assert_array_equal(p.data, q.data)
        np.testing.assert_array_equal(opt.state[p]['velocity'], opt2.state[q]['velocity'])

@pytest.mark.parametrize('clone', [copy.deepcopy, lambda o: pickle.loads(pickle.dumps(o))], ids=['deepcopy', 'pickle'])
def test_a_copied_optimizer_has_flat_arrays_of_its_own(clone):
    ps = params((3,), (2, 2))
    opt = Velocity(ps)
    set_grads(ps); opt.step()
    twin = clone(opt)
    qs = twin.param_groups[0]['params']
    assert engine._root(qs[0].data) is engine._root(qs[1].data) and not np.shares_memory(engine._root(qs[0].data), engine._root(ps[0].data))
    set_grads(qs, 2); twin.step()
    assert engine._root(twin.state[qs[0]]['velocity']) is engine._root(twin.state[qs[1]]['velocity'])

@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(1, 4 * engine.CHUNK_SIZE), st.integers(1, 10**9)))
def test_chunking_cuts_a_run_into_equal_chunks_an_even_number_of_them_for_two_threads(n):
    length, parallel = engine._chunking(n)
    chunks = [min(length, n - start) for start in range(0, n, length)]
    assert 1 <= length <= engine.CHUNK_SIZE and sum(chunks) == n
    assert chunks[-1] > length - len(chunks)   # equal but for the rounding of n / count
    assert parallel == (n > engine.CHUNK_SIZE)   # more than one chunk: two threads
    assert len(chunks) % 2 == 0 if parallel else len(chunks) == 1

def test_chunk_tasks_cover_the_gradients_in_order():
    grads = [np.arange(np.prod(s), dtype=float).reshape(s) + 100 * i for i, s in enumerate([(3,), (7,), (1,), (5,), (3, 4)])]
    tasks = engine._chunk_tasks(grads, 5)
    assert [(s, e) for s, e, _ in tasks] == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 25), (25, 28)]
    np.testing.assert_array_equal(np.concatenate([np.concatenate(p, axis=None) for _, _, p in tasks]), np.concatenate(grads, axis=None))
    assert all(sum(x.size for x in p) == e - s for s, e, p in tasks)
    assert all(any(np.shares_memory(x, g) for g in grads) for _, _, p in tasks for x in p)   # views of the gradients, no copies
    assert sum(len(p) for _, _, p in tasks) == 5 + 4   # five gradients, cut four times

# -- the engine against the core's reference loop, after every kind of change --
from minima.optim import Adam, SGD, NAdam

def _without_plans(opt):
    opt.engine = False   # the reference: the core's plain loop
    return opt

def _bump_step(opt, ps): opt.state[ps[1]]['step'] += 1
def _add_param(opt, ps):
    q, = params((5,), seed=7); q.grad = np.full(5, 0.5); opt.add_param_group({'params': [q]})
    opt.param_groups[0]['params'].append(opt.param_groups.pop()['params'][0])
def _nan(opt, ps):
    opt.param_groups[0]['nonfinite'] = 'raise'; ps[0].grad[1, 2] = np.nan
def _inf_skip(opt, ps):
    opt.param_groups[0]['nonfinite'] = 'skip'; ps[2].grad[1] = -np.inf

PLAN_CHANGES = [   # (name, change made before the third step, error the step raises or None)
    ('nothing', lambda opt, ps: None, None),
    ('p.data replaced', lambda opt, ps: setattr(ps[1], 'data', ps[1].data * 2), None),
    ('buffer replaced', lambda opt, ps: opt.state[ps[0]].__setitem__('exp_avg', opt.state[ps[0]]['exp_avg'] + 1), None),
    ('state dict replaced', lambda opt, ps: opt.state.__setitem__(ps[2], copy.deepcopy(opt.state[ps[2]])), None),
    ('state a UserDict', lambda opt, ps: opt.state.__setitem__(ps[2], collections.UserDict(opt.state[ps[2]])), None),
    ('gradient None', lambda opt, ps: setattr(ps[2], 'grad', None), None),
    ('gradient Fortran order', lambda opt, ps: setattr(ps[0], 'grad', np.asfortranarray(ps[0].grad)), None),
    ('gradient a strided view', lambda opt, ps: setattr(ps[1], 'grad', np.repeat(ps[1].grad, 2)[::2]), None),
    ('one step count differs', _bump_step, None),
    ('parameter added to the group', _add_param, None),
    ('parameter removed from the group', lambda opt, ps: opt.param_groups[0]['params'].pop(), None),
    ('parameters reordered', lambda opt, ps: opt.param_groups[0]['params'].reverse(), None),
    ('amsgrad turned on', lambda opt, ps: opt.param_groups[0].__setitem__('amsgrad', True), None),
    ('lr changed', lambda opt, ps: opt.param_groups[0].__setitem__('lr', 0.5), None),
    ('clip_norm set', lambda opt, ps: opt.param_groups[0].__setitem__('clip_norm', 0.1), None),
    ('state loaded', lambda opt, ps: opt.load_state_dict(opt.state_dict()), None),
    ('copied', lambda opt, ps: None, 'copy'),
    ('gradient of another shape', lambda opt, ps: setattr(ps[1], 'grad', np.zeros(5)), ValueError),
    ('gradient of another dtype', lambda opt, ps: setattr(ps[1], 'grad', ps[1].grad.astype(np.float32)), TypeError),
    ('gradient a list', lambda opt, ps: setattr(ps[1], 'grad', [0.0] * 4), TypeError),
    ('buffer of another shape', lambda opt, ps: opt.state[ps[0]].__setitem__('exp_avg_sq', np.zeros(7)), ValueError),
    ('NaN gradient, policy raise', _nan, NonFiniteGradientError),
    ('policy skip, finite gradients', lambda opt, ps: opt.param_groups[0].__setitem__('nonfinite', 'skip'), None),
    ('infinite gradient, policy skip', _inf_skip, None),
]

@pytest.mark.parametrize('name, change, error', PLAN_CHANGES, ids=[c[0] for c in PLAN_CHANGES])
def test_the_engine_sees_every_change_and_steps_as_the_reference_loop_does(name, change, error):
    runs = []
    for plans in (True, False):
        ps = params((3, 4), (4,), (2,))
        opt = Adam(ps, lr=0.1, weight_decay=0.01)
        if not plans: _without_plans(opt)
        for s in range(2): set_grads(ps, seed=s); opt.step()
        assert opt._engine_runs() == plans
        set_grads(ps, seed=2); change(opt, ps)
        if error == 'copy':
            opt = copy.deepcopy(opt); ps = [p for g in opt.param_groups for p in g['params']]
        if error in (None, 'copy'):
            opt.step()
            for s in range(3, 5): set_grads(opt.param_groups[0]['params'], seed=s); opt.step()   # and a plan made after the change
        else:
            before = snapshot(opt, ps)
            with pytest.raises(error) as e: opt.step()
            assert_same(snapshot(opt, ps), before)
            runs.append(str(e.value))
        runs.append(snapshot(opt, [p for g in opt.param_groups for p in g['params']]))
    if error not in (None, 'copy'): assert runs[0] == runs[2]   # the same message
    (pa, sa, *_), (pb, sb, *_) = runs[-3] if error not in (None, 'copy') else runs[0], runs[-1]
    assert all(np.array_equal(x, y) for x, y in zip(pa, pb)) and len(pa) == len(pb)
    assert [sorted(v) for v in sa.values()] == [sorted(v) for v in sb.values()]
    for x, y in zip(sa.values(), sb.values()):
        for k in x: assert np.array_equal(x[k], y[k])

@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from([c for c in PLAN_CHANGES if c[2] != 'copy']), min_size=1, max_size=6))
def test_any_sequence_of_changes_steps_as_the_reference_loop_does(changes):
    # the changes above, several in a row, a step after each: through the engine and the core's loop, every step
    # raises the same error or none, and leaves the same bits in every parameter and state entry
    def run(plans):
        ps = params((3, 4), (4,), (2,))
        opt = Adam(ps, lr=0.1, weight_decay=0.01)
        if not plans: _without_plans(opt)
        for s in range(2): set_grads(ps, seed=s); opt.step()
        trace, used = [], 0
        for s, (name, change, _) in enumerate(changes, 2):
            set_grads(list(dict.fromkeys(ps + [p for g in opt.param_groups for p in g['params']])), seed=s)
            try: change(opt, ps)
            except Exception as e: trace.append((type(e), str(e)))   # loading a state a change broke
            try: opt.step(); trace.append(None)
            except Exception as e: trace.append((type(e), str(e)))
            everything = list(dict.fromkeys(ps + [p for g in opt.param_groups for p in g['params']]))
            trace.append([p.data.tobytes() for p in everything])
            trace.append([{k: v.tobytes() if isinstance(v, np.ndarray) else v for k, v in opt.state[p].items()}
                          if p in opt.state else None for p in everything])
        return trace, used
    (with_plans, used), (without, _) = run(True), run(False)
    assert with_plans == without

@pytest.mark.parametrize('policy', ['skip', 'raise'])
def test_a_non_finite_gradient_is_found_wherever_it_is(policy, monkeypatch):
    # 40 parameters of 1 to 40 values in chunks of 64 values shared between two threads, so chunks
    # start and end inside gradients; a NaN or an infinity in any one of them, at its first, a middle
    # or its last value, is found, named as the full check names it (the first of two), and nothing is changed
    monkeypatch.setattr(engine, 'CHUNK_SIZE', 64); monkeypatch.setattr(engine, 'PARALLEL_SIZE', 65)
    shapes = [(n,) for n in range(1, 41)]
    for k in (0, 17, 39):
        for where in (0, -1, k // 2):
            for bad in (np.nan, np.inf, -np.inf):
                outcomes = []
                for plans in (True, False):
                    ps = params(*shapes)
                    opt = Adam(ps, lr=0.1, nonfinite=policy)
                    if not plans: _without_plans(opt)
                    for s in range(2): set_grads(ps, seed=s); opt.step()
                    set_grads(ps, seed=2); ps[k].grad[where] = bad
                    if k < 39: ps[39].grad[0] = np.nan   # a second one, later: the first is named
                    before = snapshot(opt, ps)
                    if policy == 'raise':
                        with pytest.raises(NonFiniteGradientError) as e: opt.step()
                        outcomes.append(str(e.value))
                    else:
                        opt.step(); outcomes.append(opt.skipped_steps)
                    assert_same(snapshot(opt, ps)[:4] + before[4:], before)   # all but the count of skipped steps
                assert outcomes[0] == outcomes[1]
                assert (f'position {k} of' in outcomes[0]) if policy == 'raise' else outcomes[0] == 1

def test_the_engine_is_bit_identical_to_the_reference_loop_for_real_optimizers():
    for make in (lambda ps: SGD(ps, lr=0.1, momentum=0.9, dampening=0, nesterov=True), lambda ps: Adam(ps, lr=0.01, amsgrad=True),
                 lambda ps: Adam(ps, lr=0.01, clip_norm=6.4)):   # norms about 110, and 4.7 to 6.8: some steps rescale the small ones
        finals = []
        for plans in (True, False):
            ps = params((300, 40), (40,), (7, 3, 2), dtype=np.float32)
            opt = make(ps)
            if not plans: _without_plans(opt)
            for s in range(6): set_grads(ps, seed=s); opt.step()
            assert opt._engine_runs() == plans
            finals.append([p.data.tobytes() for p in ps] + [b.tobytes() for p in ps for k, b in opt.state[p].items() if k != 'step'])
        assert finals[0] == finals[1]



# ---------------------------------------------------------------- hooks, closure, names (torch.optim's base features)
def test_step_hooks_per_optimizer_and_global_in_torchs_order():
    a, = params((2,))
    opt, other = Descent([a]), Descent(params((2,), seed=5))
    calls = []
    h1 = opt.register_step_pre_hook(lambda o, args, kwargs: calls.append(('pre', o is opt, args, kwargs)))
    h2 = opt.register_step_post_hook(lambda o, args, kwargs: calls.append(('post', o is opt)))
    g1 = base.register_optimizer_step_pre_hook(lambda o, args, kwargs: calls.append(('global pre', o is opt)))
    g2 = base.register_optimizer_step_post_hook(lambda o, args, kwargs: calls.append(('global post', o is opt)))
    try:
        a.grad = np.ones(2); opt.step()
        assert calls == [('global pre', True), ('pre', True, (), {}), ('post', True), ('global post', True)]
        calls.clear(); other.step()
        assert calls == [('global pre', False), ('global post', False)]   # global hooks run for every optimizer
    finally: g1.remove(); g2.remove()
    calls.clear(); h1.remove(); h2.remove(); opt.step(); other.step()
    assert calls == []
    with pytest.raises(TypeError, match='callable'): opt.register_step_pre_hook(3)

def test_a_step_pre_hook_may_replace_the_closure():
    a, = params((2,))
    opt = Descent([a])
    def closure(): a.grad = np.ones(2); return 1.5
    def other(): a.grad = 2 * np.ones(2); return 7.0
    opt.register_step_pre_hook(lambda o, args, kwargs: ((), {'closure': other}))
    x0 = a.data.copy()
    assert opt.step(closure) == 7.0
    np.testing.assert_allclose(a.data, x0 - 0.1 * 2)

def test_state_dict_and_load_state_dict_hooks():
    ps, opt = trained()
    seen = []
    opt.register_state_dict_pre_hook(lambda o: seen.append('sd pre'))
    opt.register_state_dict_post_hook(lambda o, sd: {**sd, 'note': 'added'})
    sd = opt.state_dict()
    assert seen == ['sd pre'] and sd['note'] == 'added'
    ps2, opt2 = trained(steps=0)
    opt2.register_load_state_dict_pre_hook(lambda o, sd: {k: v for k, v in sd.items() if k != 'note'})
    opt2.register_load_state_dict_post_hook(lambda o: seen.append('load post'))
    opt2.load_state_dict(sd)
    assert seen[-1] == 'load post' and opt2.state[ps2[0]]['step'] == 3

def test_named_and_unnamed_parameters_mixed_are_a_value_error_as_in_torch():
    a, b = params((2,), (3,))
    with pytest.raises(ValueError, match='mix of named'): Descent([('a', a), b])
    opt = Descent([('a', a)])
    with pytest.raises(ValueError, match='all optimizer param groups must be with names or all without'): opt.add_param_group({'params': [b]})
    assert len(opt.param_groups) == 1
    with pytest.raises(ValueError, match='with names or all without'): Descent([{'params': [('a', a)]}, {'params': [b]}])
    ta, tb = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError): torch.optim.SGD([('a', ta), tb], lr=0.1)
    topt = torch.optim.SGD([('a', ta)], lr=0.1)
    with pytest.raises(ValueError): topt.add_param_group({'params': [tb]})

def test_generated_constructor_shows_torchs_signature():
    import inspect
    from minima.optim import SGD, Adam, Adagrad, RMSprop, Adadelta, AdamW, Adamax, NAdam, RAdam
    for cls in (SGD, Adam, Adagrad, RMSprop, Adadelta, AdamW, Adamax, NAdam, RAdam):
        ours, theirs = inspect.signature(cls).parameters, inspect.signature(getattr(torch.optim, cls.__name__)).parameters
        shared = [k for k in theirs if k in ours]
        assert [k for k in ours if k in theirs] == shared, cls.__name__          # the same order
        reachable = True   # torch's positional arguments up to the first one minima has not (foreach, capturable, ...)
        for k in theirs:
            if k not in ours: reachable = False; continue
            if theirs[k].default is not inspect.Parameter.empty: assert ours[k].default == theirs[k].default, (cls.__name__, k)
            positional = ours[k].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
            if reachable: assert positional == (theirs[k].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD), (cls.__name__, k)
            else: assert not positional, (cls.__name__, k)
        assert 'Arguments' in cls.__init__.__doc__ and 'lr' in cls.__init__.__doc__
