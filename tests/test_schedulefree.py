"""Schedule-Free SGD and AdamW against the authors' package `schedulefree` (SGDScheduleFree,
AdamWScheduleFree), run side by side on the same gradients: float64 <= 1e-10 and float32 <= 1e-5
relative per tensor after every step, with eval()/train() switches in the middle of training,
weight decay, warmup, r, weight_lr_power and a learning-rate change. Then validation,
checkpoints (bit-identical resume) and convergence."""
import copy, os, sys
import numpy as np
import pytest
import torch
import schedulefree
from minima.nn import Parameter
from minima.optim.schedulefree import SGDScheduleFree, AdamWScheduleFree, sgd_schedulefree_update

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'reference'))
from optim_checks import (SHAPES, RTOL, rel_err, one_torch_thread, gradients as varying_gradients, check_bad_hyperparameter,
                          rosenbrock as rosen, rosenbrock_grad as rosen_grad)

PAIRS = {'SGD': (schedulefree.SGDScheduleFree, SGDScheduleFree), 'AdamW': (schedulefree.AdamWScheduleFree, AdamWScheduleFree)}

def gradients(steps, dtype, shapes=SHAPES, seed=1):
    "Scales over four decades, offset by 0.3."
    return varying_gradients(steps, dtype, shapes, seed, offset=0.3)

def side_by_side(name, kwargs, dtype, steps=120, switches=(), lr_changes={}, foreach=False, shapes=SHAPES):
    "Run the reference and minima on the same gradients; assert parity after every step and every mode switch."
    tcls, mcls = PAIRS[name]
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    tp = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    mp = [Parameter(a.copy()) for a in init]
    topt, mopt = tcls(tp, foreach=foreach, **kwargs), mcls(mp, **kwargs)
    topt.train(); mopt.train()
    rtol = RTOL[dtype]
    def check(what):
        for i, (a, b) in enumerate(zip(mp, tp)):
            err = rel_err(a.data, b.detach().numpy())
            assert err <= rtol, f'{name} {kwargs} {dtype}, {what}, tensor {i}: relative error {err:.3g}'
    for t, gs in enumerate(gradients(steps, dtype, shapes), start=1):
        for p, g in zip(tp, gs): p.grad = torch.tensor(g.copy())   # the reference divides its gradient in place
        for p, g in zip(mp, gs): p.grad = g.copy()
        topt.step(); mopt.step()
        check(f'step {t}')
        if t in switches:
            topt.eval(); mopt.eval(); check(f'eval() after step {t}')
            topt.train(); mopt.train(); check(f'train() after step {t}')
        if t in lr_changes:
            for o in (topt, mopt): o.param_groups[0]['lr'] = lr_changes[t]
    for a, b in zip(mp, tp):
        for k in ('z', 'exp_avg_sq') if name == 'AdamW' else ('z',):
            assert rel_err(mopt.state[a][k], topt.state[b][k].numpy()) <= rtol, k
    assert mopt.state[mp[0]]['weight_sum'] == pytest.approx(topt.param_groups[0]['weight_sum'], rel=1e-12)
    assert mopt.state[mp[0]]['lr_max'] == topt.param_groups[0]['lr_max']
    topt.eval(); mopt.eval(); check('final eval()')

CASES = [
    ('SGD', dict(lr=0.05)),
    ('SGD', dict(lr=0.02, momentum=0.7, weight_decay=0.1)),
    ('SGD', dict(lr=0.05, warmup_steps=30, r=0.5, weight_lr_power=1.0)),
    ('SGD', dict(lr=0.05, warmup_steps=10, weight_lr_power=0.0, weight_decay=1e-3)),
    ('AdamW', dict()),
    ('AdamW', dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ('AdamW', dict(lr=0.01, warmup_steps=25, r=1.0, weight_lr_power=3.0)),
    ('AdamW', dict(lr=0.003, betas=(0.95, 0.9), warmup_steps=200, weight_decay=0.01)),
]

@pytest.mark.parametrize('dtype', ['float64', 'float32'])
@pytest.mark.parametrize('case', CASES, ids=[f'{n}-{i}' for i, (n, _) in enumerate(CASES)])
def test_parity_with_switches(case, dtype):
    name, kwargs = case
    side_by_side(name, kwargs, dtype, switches=(1, 37, 80))

@pytest.mark.parametrize('name', ['SGD', 'AdamW'])
def test_parity_foreach_and_learning_rate_change(name):
    "The reference's foreach path; the rate drops at step 40 and rises at 90 (γ_max and the weights follow)."
    side_by_side(name, dict(lr=0.02, warmup_steps=20, weight_decay=0.01), 'float64', steps=130,
                 switches=(60,), lr_changes={40: 0.005, 90: 0.04}, foreach=True)

def test_parity_one_large_parameter():
    "A parameter longer than one engine chunk, beside a small one."
    side_by_side('AdamW', dict(lr=0.01, weight_decay=0.01), 'float64', steps=3, switches=(2,), shapes=[(300_000,), (3,)])

def test_defaults_are_the_references():
    import inspect
    for name, (tcls, mcls) in PAIRS.items():
        theirs = {k: v.default for k, v in inspect.signature(tcls).parameters.items() if k not in ('params', 'foreach')}
        ours = {k: v.default for k, v in inspect.signature(mcls).parameters.items() if k in theirs}
        assert ours == theirs, name

@pytest.mark.parametrize('name', ['SGD', 'AdamW'])
def test_step_in_eval_mode_is_refused_like_the_reference(name):
    tcls, mcls = PAIRS[name]
    with pytest.raises(Exception, match='train mode'):
        t = torch.zeros(3, requires_grad=True); t.grad = torch.ones(3); tcls([t]).step()
    p = Parameter(np.ones(3)); p.grad = np.ones(3); opt = mcls([p])
    with pytest.raises(RuntimeError, match=r'opt\.train\(\)'): opt.step()
    assert np.array_equal(p.data, np.ones(3)) and opt.state == {}
    opt.train(); opt.step(); opt.eval(); x = p.data.copy(); opt.eval()
    assert np.array_equal(p.data, x)                     # a second eval() changes nothing

BAD = [('lr', -0.1, ValueError), ('weight_decay', -1.0, ValueError), ('warmup_steps', -1, ValueError),
       ('warmup_steps', 2.5, TypeError), ('r', -0.5, ValueError), ('weight_lr_power', -1.0, ValueError)]

@pytest.mark.parametrize('name', ['SGD', 'AdamW'])
@pytest.mark.parametrize('arg,value,kind', BAD)
def test_bad_hyperparameters(name, arg, value, kind):
    def make(params, **kw):
        opt = PAIRS[name][1](params, **kw); opt.train(); return opt
    check_bad_hyperparameter(make, {arg: value}, kind, arg, warmup=(1.0,), last=None)

@pytest.mark.parametrize('arg,value', [('momentum', 0.0), ('momentum', 1.0), ('lr', -1.0), ('weight_decay', -1.0)])
def test_sgd_refuses_what_the_reference_refuses(arg, value):
    with pytest.raises(ValueError): schedulefree.SGDScheduleFree([torch.zeros(2, requires_grad=True)], **{arg: value})
    with pytest.raises(ValueError, match=arg): SGDScheduleFree([Parameter(np.zeros(2))], **{arg: value})

@pytest.mark.parametrize('betas', [(0.0, 0.999), (1.0, 0.999), (0.9, 1.0), (0.9, -0.1)])
def test_adamw_betas(betas):
    with pytest.raises(ValueError, match='betas'): AdamWScheduleFree([Parameter(np.zeros(2))], betas=betas)

def quadratic_grads(p): return [(i + 1.0) * (q.data - 0.5) for i, q in enumerate(p)]

def train(opt, params, steps, start=0):
    for t in range(start, start + steps):
        for q, g in zip(params, quadratic_grads(params)): q.grad = g + 0.1 * np.sin(t + np.arange(g.size).reshape(g.shape))
        opt.step()

@pytest.mark.parametrize('name,kwargs', [('SGD', dict(lr=0.1, weight_decay=1e-3, warmup_steps=5)),
                                         ('AdamW', dict(lr=0.01, weight_decay=1e-2, warmup_steps=5, r=0.5))])
def test_checkpoint_resume_is_bit_identical(name, kwargs):
    mcls = PAIRS[name][1]
    init = [np.linspace(-1, 1, int(np.prod(s))).reshape(s) for s in SHAPES]
    # uninterrupted, with the eval()/train() switch a checkpoint at step 15 implies
    a = [Parameter(x.copy()) for x in init]; oa = mcls(a, **kwargs); oa.train()
    train(oa, a, 15); oa.eval(); oa.train(); train(oa, a, 25, start=15); oa.eval()
    # interrupted: eval(), save parameters and state, load into fresh ones, train(), continue
    b = [Parameter(x.copy()) for x in init]; ob = mcls(b, **kwargs); ob.train()
    train(ob, b, 15); ob.eval()
    saved_params, saved = [q.data.copy() for q in b], copy.deepcopy(ob.state_dict())
    c = [Parameter(x.copy()) for x in saved_params]; oc = mcls(c, **kwargs); oc.load_state_dict(saved)
    assert oc.param_groups[0]['train_mode'] is False
    oc.train(); train(oc, c, 25, start=15); oc.eval()
    for x, y in zip(a, c): assert np.array_equal(x.data, y.data)
    for x, y in zip(a, c):
        for k, v in oa.state[x].items(): assert np.array_equal(v, oc.state[y][k]), k
    # a checkpoint taken in train mode resumes in train mode
    oa.train(); sd = oa.state_dict(); d = [Parameter(q.data.copy()) for q in a]; od = mcls(d, **kwargs); od.load_state_dict(sd)
    assert od.param_groups[0]['train_mode'] is True
    train(oa, a, 3, start=40); train(od, d, 3, start=40)
    for x, y in zip(a, d): assert np.array_equal(x.data, y.data)

def test_state_dict_round_trip_and_refusal():
    p = Parameter(np.ones((2, 3))); opt = AdamWScheduleFree([p]); opt.train(); p.grad = np.ones((2, 3)); opt.step()
    sd = opt.state_dict()
    assert sorted(sd['state'][0]) == ['exp_avg_sq', 'lr_max', 'step', 'weight_sum', 'z']
    opt.load_state_dict(sd); assert np.array_equal(opt.state[p]['z'], sd['state'][0]['z'])
    bad = copy.deepcopy(sd); del bad['state'][0]['z']
    with pytest.raises(ValueError, match="'z'"): opt.load_state_dict(bad)

def test_update_function_alone():
    "The pure function: two steps on θ²/2 from 1 (the page's hand-worked example)."
    p, state = np.array([1.0]), {'z': np.array([1.0]), 'weight_sum': 0.0, 'lr_max': -1.0}
    kw = dict(lr=0.1, momentum=0.9, weight_decay=0.0, warmup_steps=0, r=0.0, weight_lr_power=2.0)
    for t in (1, 2): sgd_schedulefree_update(p, p.copy(), state, step=t, **kw)
    assert p[0] == pytest.approx(0.8505, abs=1e-15) and state['z'][0] == pytest.approx(0.81, abs=1e-15)

@pytest.mark.parametrize('name,kwargs,bound', [('SGD', dict(lr=0.002, warmup_steps=100), 0.5),     # observed 0.268
                                               ('AdamW', dict(lr=0.1), 0.01)])                   # observed 0.0039
def test_rosenbrock(name, kwargs, bound):
    p = Parameter(np.array([-1.5, 2.0])); opt = PAIRS[name][1]([p], **kwargs); opt.train()
    for _ in range(2000): p.grad = rosen_grad(p.data); opt.step()
    opt.eval()
    assert rosen(p.data) < bound

@pytest.mark.parametrize('name,kwargs,bound', [('SGD', dict(lr=0.1), 2e-6),     # observed 4.9e-7
                                               ('AdamW', dict(lr=0.2), 1e-8)])  # observed 1.7e-9
def test_convex_quadratic(name, kwargs, bound):
    "f = ½ Σ a_i (θ_i − 1)², a_i from 1 to 10, from a fixed start, 500 steps; f at the average x."
    a = np.linspace(1, 10, 6); p = Parameter(np.array([3.0, -2.0, 0.5, 4.0, -1.0, 2.0]))
    opt = PAIRS[name][1]([p], **kwargs); opt.train()
    for _ in range(500): p.grad = a * (p.data - 1); opt.step()
    opt.eval()
    loss = 0.5 * np.sum(a * (p.data - 1) ** 2)
    assert loss < bound, loss

@pytest.mark.parametrize('name', ['SGD', 'AdamW'])
def test_engine_matches_the_plain_loop(name):
    "minima's engine (flat buffers, chunks) against the core's plain loop: bit-identical, across eval()/train()."
    from minima.optim.engine import Engine
    kwargs = dict(lr=0.01, weight_decay=0.01, warmup_steps=4, r=0.5)
    shapes = [(7,), (4, 5), (300_000,)]
    runs = []
    for enabled in (True, False):
        before, Engine.enabled = Engine.enabled, enabled
        try:
            ps = [Parameter(np.linspace(-1, 1, int(np.prod(s))).reshape(s)) for s in shapes]
            opt = PAIRS[name][1](ps, **kwargs); opt.train()
            train(opt, ps, 5); opt.eval(); opt.train(); train(opt, ps, 5, start=5); opt.eval()
            runs.append(([p.data.copy() for p in ps], [opt.state[p]['z'].copy() for p in ps]))
        finally:
            Engine.enabled = before
    for a, b in zip(*runs):
        for x, y in zip(a, b): assert np.array_equal(x, y)

def test_closure_is_evaluated_and_its_loss_returned():
    from minima.autograd import Tensor
    p = Parameter(np.array([1.0, -2.0])); opt = AdamWScheduleFree([p], lr=0.1); opt.train()
    def closure():
        opt.zero_grad(); loss = (p * p).sum(); loss.backward(); return loss.item()
    assert opt.step(closure) == 5.0
    np.testing.assert_allclose(p.data, [0.9, -1.9], atol=1e-8)   # steps of γ sign(g) at t = 1 (c = 1), up to ε
