"""minima.optim.lr_scheduler against PyTorch 2.13 (live and stored sequences), its closed forms,
numpy-ml's Noam and King rules, resuming from a checkpoint, and bad input."""
import copy
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

import minima.optim.lr_scheduler as M
from minima.checkpoint import save, load
from minima.nn import Parameter
from minima.optim.adam import Adam
from minima.optim.sgd import SGD

_spec = importlib.util.spec_from_file_location('make_lr_reference', Path(__file__).parent / 'reference' / 'make_lr_reference.py')
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)

ALL_CASES = list(ref.CASES) + list(ref.PLATEAU_CASES)
TOL = dict(rtol=1e-12, atol=1e-15)


class Groups:
    "The param groups of an SGD-like ('momentum') or Adam-like ('betas') optimizer, and nothing else."
    def __init__(self, kind='sgd', lrs=ref.LRS):
        extra = {'betas': (0.9, 0.999)} if kind == 'adam' else {'momentum': 0.9}
        self.param_groups = [dict(lr=lr, **extra) for lr in lrs]


def minima_run(name):
    if name in ref.PLATEAU_CASES:
        kwargs, metrics = ref.PLATEAU_CASES[name]
        opt = Groups()
        return ref.run(M.ReduceLROnPlateau(opt, **kwargs), opt, metrics=metrics)
    kind, build = ref.CASES[name]
    opt = Groups(kind)
    return ref.run(build(M, opt), opt)


def assert_same(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"{what}: NaN positions differ"
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], err_msg=what, **TOL)


# ---------------------------------------------------------------- PyTorch, live and stored

@pytest.mark.parametrize('name', ALL_CASES)
def test_matches_torch_live(name):
    pytest.importorskip('torch')
    want = ref.torch_run(name)
    got = minima_run(name)
    for g, w, what in zip(got, want, ('lr', 'momentum/beta1', 'get_last_lr()')):
        assert_same(g, w, f"{name}: {what}")


@pytest.fixture(scope='module')
def stored():
    with np.load(ref.REFERENCE) as f: return {k: f[k] for k in f.files}


def test_reference_file_covers_every_case(stored):
    assert sorted(stored) == sorted(f'{n}/{k}' for n in ALL_CASES for k in ('lr', 'momentum', 'last_lr'))
    assert all(v.shape == (ref.N_STEPS + 1, len(ref.LRS)) for v in stored.values())


@pytest.mark.parametrize('name', ALL_CASES)
def test_matches_stored_reference(name, stored):
    lrs, moms, last = minima_run(name)
    assert_same(lrs, stored[f'{name}/lr'], f"{name}: lr")
    assert_same(moms, stored[f'{name}/momentum'], f"{name}: momentum/beta1")
    assert_same(last, stored[f'{name}/last_lr'], f"{name}: get_last_lr()")


def test_reference_sequences_are_not_trivial(stored):
    "Every stored lr sequence changes, and the cyclic ones move momentum or beta1."
    for name in ALL_CASES:
        assert len(np.unique(stored[f'{name}/lr'][:, 0])) >= 2, name
    for name in ('cyclic_triangular', 'cyclic_triangular2', 'cyclic_exp_range_adam', 'onecycle_cos',
                 'onecycle_three_phase', 'onecycle_epochs_adam', 'onecycle_three_phase_adam'):
        assert np.ptp(stored[f'{name}/momentum']) > 0.05, name


def test_issue_example_warmup_then_cosine():
    "LinearLR(0.1, 3 steps) then CosineAnnealingLR(T_max=5) from lr 1.0: 0.1, 0.4, 0.7, 1.0, 0.905, 0.655, 0.345, 0.095, 0.0."
    torch = pytest.importorskip('torch')
    def seq(S, opt, step):
        sched = S.SequentialLR(opt, [S.LinearLR(opt, start_factor=0.1, total_iters=3), S.CosineAnnealingLR(opt, T_max=5)],
                               milestones=[3])
        out = []
        for _ in range(9):
            out.append(opt.param_groups[0]['lr']); step(); sched.step()
        return out
    p = torch.nn.Parameter(torch.zeros(1))
    topt = torch.optim.SGD([p], lr=1.0)
    want = seq(torch.optim.lr_scheduler, topt, lambda: topt.step())  # torch wraps opt.step when a scheduler is built
    got = seq(M, Groups(lrs=(1.0,)), lambda: None)
    by_hand = [0.1, 0.4, 0.7] + [(1 + math.cos(math.pi * k / 5)) / 2 for k in range(6)]
    np.testing.assert_allclose(got, want, **TOL)
    np.testing.assert_allclose(got, by_hand, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.round(got, 3), [0.1, 0.4, 0.7, 1.0, 0.905, 0.655, 0.345, 0.095, 0.0])


def test_warm_restarts_fractional_epochs_match_torch():
    torch = pytest.importorskip('torch')
    epochs = [0.5, 1.25, 3.7, 7, 10, 12.5, 30, 31.5, 69.9, 70, 150.3, 2.0, 0]
    for T_0, T_mult in ((10, 1), (10, 2), (3, 3)):
        p = torch.nn.Parameter(torch.zeros(1))
        topt = torch.optim.SGD([p], lr=0.1)
        tsched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(topt, T_0=T_0, T_mult=T_mult, eta_min=0.001)
        opt = Groups(lrs=(0.1,))
        sched = M.CosineAnnealingWarmRestarts(opt, T_0=T_0, T_mult=T_mult, eta_min=0.001)
        for e in epochs:
            topt.step(); tsched.step(e); sched.step(e)
            np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), err_msg=f"T_0={T_0} T_mult={T_mult} epoch={e}", **TOL)
            np.testing.assert_allclose(sched.get_last_lr(), [M.cosine_warm_restarts(e, 0.1, T_0, T_mult, 0.001)], **TOL)
            assert sched.last_epoch == tsched.last_epoch


# ---------------------------------------------------------------- closed forms

CLOSED_FORMS = [
    (lambda o: M.StepLR(o, 7, 0.5), lambda t, b: M.step_lr(t, b, 7, 0.5)),
    (lambda o: M.MultiStepLR(o, [30, 80, 80, 200], 0.3), lambda t, b: M.multistep_lr(t, b, [30, 80, 80, 200], 0.3)),
    (lambda o: M.ConstantLR(o, 0.25, 40), lambda t, b: M.constant_lr(t, b, 0.25, 40)),
    (lambda o: M.LinearLR(o, 0.1, 0.9, 50), lambda t, b: M.linear_lr(t, b, 0.1, 0.9, 50)),
    (lambda o: M.ExponentialLR(o, 0.99), lambda t, b: M.exponential_lr(t, b, 0.99)),
    (lambda o: M.PolynomialLR(o, 100, 2.0), lambda t, b: M.polynomial_lr(t, b, 100, 2.0)),
    (lambda o: M.CosineAnnealingLR(o, 100), lambda t, b: M.cosine_annealing(t, b, 100)),
    (lambda o: M.CosineAnnealingLR(o, 50, 0.001), lambda t, b: M.cosine_annealing(t, b, 50, 0.001)),
    (lambda o: M.CosineAnnealingWarmRestarts(o, 7, 2, 1e-3), lambda t, b: M.cosine_warm_restarts(t, b, 7, 2, 1e-3)),
    (lambda o: M.CyclicLR(o, 0.01, 0.1, 15, 25, 'triangular2', cycle_momentum=False), lambda t, b: M.cyclic_lr(t, 0.01, 0.1, 15, 25, 'triangular2')),
    (lambda o: M.OneCycleLR(o, 0.1, 300, three_phase=True), lambda t, b: M.one_cycle_lr(t, 0.1, 300, three_phase=True)),
    (lambda o: M.LambdaLR(o, lambda t: 0.95 ** t), lambda t, b: M.lambda_lr(t, b, lambda t: 0.95 ** t)),
    (lambda o: M.MultiplicativeLR(o, lambda t: 0.99), lambda t, b: M.multiplicative_lr(t, b, lambda t: 0.99)),
    (lambda o: M.ExponentialDecayLR(o, 40, False, 0.5), lambda t, b: M.exponential_decay(t, b, 40, False, 0.5)),
    (lambda o: M.NoamLR(o, 64, 2.0, 50), lambda t, b: M.noam_lr(t + 1, 64, 2.0, 50)),
]

@pytest.mark.parametrize('i', range(len(CLOSED_FORMS)))
def test_scheduler_alone_follows_its_closed_form(i):
    build, f = CLOSED_FORMS[i]
    opt = Groups(lrs=(0.1,))
    lrs = ref.run(build(opt), opt)[0][:, 0]
    np.testing.assert_allclose(lrs, [f(t, 0.1) for t in range(ref.N_STEPS + 1)], **TOL)


def test_exponential_decay_staircase_is_step_lr():
    a, b = Groups(lrs=(0.1,)), Groups(lrs=(0.1,))
    np.testing.assert_allclose(ref.run(M.ExponentialDecayLR(a, 25, True, 0.3), a)[0], ref.run(M.StepLR(b, 25, 0.3), b)[0], **TOL)


# ---------------------------------------------------------------- numpy-ml's Noam and King

def test_noam_matches_numpy_ml_formula():
    for d, k, w in ((512, 1, 4000), (64, 2.0, 10)):
        for n in (1, 2, w - 1, w, w + 1, 3 * w):
            # numpy-ml: scale_factor * d_model ** (-0.5) * min(step ** (-0.5), step * warmup ** (-1.5))
            assert M.noam_lr(n, d, k, w) == pytest.approx(k * d ** -0.5 * min(n ** -0.5, n * w ** -1.5), rel=1e-15)
    lrs = [M.noam_lr(n, 64, 1.0, 10) for n in range(1, 40)]
    assert int(np.argmax(lrs)) + 1 == 10                                   # peak at n = warmup_steps
    assert all(np.diff(lrs[:10]) > 0) and all(np.diff(lrs[9:]) < 0)


def _numpy_ml_p_decreasing(y):
    "numpy-ml's KingScheduler._p_decreasing: OLS by the normal equations, Var(slope) = 12 σ² / (N³ - N)."
    N = len(y)
    X = np.c_[np.ones(N), np.arange(N)]
    intercept, slope = np.linalg.inv(X.T @ X) @ X.T @ y
    var = 1 / (N - 2) * np.sum((y - (slope * X[:, 1] + intercept)) ** 2)
    s_var = 12 * var / (N ** 3 - N)
    return (1 + math.erf((0 - slope) / np.sqrt(s_var + np.finfo(float).eps) / np.sqrt(2))) / 2


def test_p_decreasing_matches_numpy_ml():
    rng = np.random.default_rng(0)
    for n, trend in ((5, -0.1), (30, 0.0), (100, -0.001), (1001, 0.0001)):
        y = 1 + trend * np.arange(n) + 0.05 * rng.standard_normal(n)
        assert M.p_decreasing(y) == pytest.approx(_numpy_ml_p_decreasing(y), abs=1e-9)


def test_king_decays_only_on_a_plateau():
    rng = np.random.default_rng(1)
    opt = Groups(lrs=(0.1, 0.01))
    sched = M.KingLR(opt, patience=50, decay=0.9)
    for t in range(200): sched.step(1 / np.sqrt(t + 1) + 1e-3 * rng.standard_normal())
    assert sched.get_last_lr() == [0.1, 0.01]
    for t in range(100): sched.step(0.05 + 0.01 * rng.standard_normal())
    lr = sched.get_last_lr()
    assert lr[0] < 0.1 * 0.9 ** 10 and lr[0] / lr[1] == pytest.approx(10)   # every group decays by the same factor
    assert len(sched.state_dict()['loss_history']) == 51


def test_king_ignores_a_few_spikes_in_a_decreasing_loss():
    y = list(np.linspace(2, 1, 40))
    for i in (30, 35, 38): y[i] = 5.0                 # three bad batches near the end
    assert M.p_decreasing(y) < 0.51                   # the plain test is fooled by the spikes
    assert not M.loss_plateaued(y)                    # without the top 10% the loss is clearly decreasing


# ---------------------------------------------------------------- state: save mid-run, resume

RESUME_CASES = ['step_7_0.5', 'multistep', 'constant_0.25_40', 'linear_warmup_50', 'exponential_0.99', 'polynomial_100_2',
                'cosine_100', 'restarts_7_x2', 'cyclic_triangular2', 'cyclic_scale_fn_iter', 'onecycle_three_phase',
                'lambda_per_group', 'multiplicative', 'sequential_three', 'sequential_warmup_restarts', 'chained_linear_cosine',
                'chained_multistep_polynomial', 'cyclic_exp_range_adam', 'onecycle_three_phase_adam']


def _model():
    rng = np.random.default_rng(0)
    return [Parameter(rng.standard_normal((3, 2))), Parameter(rng.standard_normal(4))]


def _train(opt, sched, params, steps, t0=0, metric=False):
    "Gradient of the quadratic ½Σθ² + a fixed linear term, one step at a time; lrs and momenta used."
    lrs = []
    for t in range(t0, t0 + steps):
        for i, p in enumerate(params): p.grad = p.data + np.cos(t + i + np.arange(p.data.size).reshape(p.data.shape))
        lrs.append(ref.group_values(opt))
        opt.step()
        if metric: sched.step(float(sum((p.data ** 2).sum() for p in params)) + 0.3 * math.sin(t))
        else: sched.step()
    return lrs


def _optimizer(kind, params):
    "A real minima optimizer with two param groups: SGD with momentum 0.9, or Adam."
    groups = [{'params': [params[0]], 'lr': ref.LRS[0]}, {'params': [params[1]], 'lr': ref.LRS[1]}]
    return Adam(groups, lr=ref.LRS[0]) if kind == 'adam' else SGD(groups, lr=ref.LRS[0], momentum=0.9)


@pytest.mark.parametrize('name', RESUME_CASES + ['plateau_min_abs_cooldown', 'king'])
def test_resume_from_checkpoint_gives_the_same_run(name, tmp_path):
    n, k = 120, 47
    def make(params):
        kind, build = ref.CASES.get(name, ('sgd', None))
        opt = _optimizer(kind, params)
        if name == 'king': return opt, M.KingLR(opt, patience=10, decay=0.8)
        if name in ref.PLATEAU_CASES: return opt, M.ReduceLROnPlateau(opt, **ref.PLATEAU_CASES[name][0])
        return opt, build(M, opt)
    metric = name == 'king' or name in ref.PLATEAU_CASES

    params = _model()
    opt, sched = make(params)
    full = _train(opt, sched, params, n, metric=metric)
    final = [p.data.copy() for p in params]

    params = _model()
    opt, sched = make(params)
    first = _train(opt, sched, params, k, metric=metric)
    save({'params': [p.data for p in params], 'optimizer': opt.state_dict(), 'scheduler': sched.state_dict()}, tmp_path / 'run.ckpt')

    ckpt = load(tmp_path / 'run.ckpt')
    params = _model()                       # a fresh process: same construction, then load the states
    opt, sched = make(params)
    for p, a in zip(params, ckpt['params']): p.data[...] = a
    opt.load_state_dict(ckpt['optimizer'])
    sched.load_state_dict(ckpt['scheduler'])
    rest = _train(opt, sched, params, n - k, t0=k, metric=metric)

    assert first + rest == full
    for p, a in zip(params, final): assert np.array_equal(p.data, a)
    assert len({lr for lrs, _ in full for lr in lrs}) > 3, "the schedule should change the rate in this run"


def test_state_dict_is_plain_data_and_keeps_no_functions():
    opt = Groups()
    decay = ref.Decay(0.9)
    sched = M.LambdaLR(opt, [lambda t: 1.0, decay])
    for _ in range(3): sched.step()
    state = sched.state_dict()
    assert state['lr_lambdas'] == [None, {'base': 0.9}]
    plain = (int, float, str, bool, type(None))
    def check(x):
        if isinstance(x, dict): [check(v) for v in x.values()]
        elif isinstance(x, (list, tuple)): [check(v) for v in x]
        else: assert isinstance(x, plain), f"{type(x).__name__} in a state_dict"
    for name in ALL_CASES:
        kind_build = ref.CASES.get(name)
        o = Groups(kind_build[0] if kind_build else 'sgd')
        s = kind_build[1](M, o) if kind_build else M.ReduceLROnPlateau(o, **ref.PLATEAU_CASES[name][0])
        check(s.state_dict())
    other_decay = ref.Decay(0.5)
    other = M.LambdaLR(Groups(), [lambda t: 1.0, other_decay])
    other.load_state_dict(state)
    assert other_decay.base == 0.9 and other.last_epoch == 3 and other.lr_lambdas[1] is other_decay


def test_state_dict_is_a_copy():
    opt = Groups()
    sched = M.MultiStepLR(opt, [5, 10])
    state = sched.state_dict()
    state['milestones'].append(1)
    assert sched.milestones == [5, 10]


# ---------------------------------------------------------------- bad input

def _groups_snapshot(opt): return copy.deepcopy(opt.param_groups)

BAD = [
    ('step_size', lambda o: M.StepLR(o, step_size=-1)),
    ('step_size', lambda o: M.StepLR(o, step_size=0)),
    ('step_size', lambda o: M.StepLR(o, step_size=2.5)),
    ('gamma', lambda o: M.StepLR(o, 3, gamma=-0.1)),
    ('gamma', lambda o: M.ExponentialLR(o, gamma=float('nan'))),
    ('milestones', lambda o: M.MultiStepLR(o, [3, -1])),
    ('factor', lambda o: M.ConstantLR(o, factor=0)),
    ('factor', lambda o: M.ConstantLR(o, factor=1.5)),
    ('total_iters', lambda o: M.ConstantLR(o, total_iters=0)),
    ('start_factor', lambda o: M.LinearLR(o, start_factor=0)),
    ('end_factor', lambda o: M.LinearLR(o, end_factor=1.1)),
    ('total_iters', lambda o: M.LinearLR(o, total_iters=0)),
    ('total_iters', lambda o: M.PolynomialLR(o, total_iters=0)),
    ('power', lambda o: M.PolynomialLR(o, power=-1.0)),
    ('T_max', lambda o: M.CosineAnnealingLR(o, T_max=0)),
    ('T_max', lambda o: M.CosineAnnealingLR(o, T_max=-5)),
    ('eta_min', lambda o: M.CosineAnnealingLR(o, T_max=5, eta_min=-1.0)),
    ('T_0', lambda o: M.CosineAnnealingWarmRestarts(o, T_0=0)),
    ('T_mult', lambda o: M.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=0)),
    ('mode', lambda o: M.CyclicLR(o, 0.01, 0.1, mode='cosine')),
    ('step_size_up', lambda o: M.CyclicLR(o, 0.01, 0.1, step_size_up=0)),
    ('step_size_down', lambda o: M.CyclicLR(o, 0.01, 0.1, step_size_down=-3)),
    ('scale_mode', lambda o: M.CyclicLR(o, 0.01, 0.1, scale_fn=lambda x: 1.0, scale_mode='epochs')),
    ('base_lr', lambda o: M.CyclicLR(o, [0.01, 0.02, 0.03], 0.1)),
    ('max_momentum', lambda o: M.CyclicLR(o, 0.01, 0.1, max_momentum=1.5)),
    ('total_steps', lambda o: M.OneCycleLR(o, 0.1, total_steps=0)),
    ('total_steps', lambda o: M.OneCycleLR(o, 0.1)),
    ('epochs', lambda o: M.OneCycleLR(o, 0.1, epochs=0, steps_per_epoch=10)),
    ('pct_start', lambda o: M.OneCycleLR(o, 0.1, 100, pct_start=1.5)),
    ('pct_start', lambda o: M.OneCycleLR(o, 0.1, 10, pct_start=0.1)),            # a phase of zero steps
    ('anneal_strategy', lambda o: M.OneCycleLR(o, 0.1, 100, anneal_strategy='exp')),
    ('div_factor', lambda o: M.OneCycleLR(o, 0.1, 100, div_factor=0)),
    ('lr_lambda', lambda o: M.LambdaLR(o, 0.5)),
    ('lr_lambda', lambda o: M.MultiplicativeLR(o, [lambda t: 1.0])),
    ('mode', lambda o: M.ReduceLROnPlateau(o, mode='avg')),
    ('threshold_mode', lambda o: M.ReduceLROnPlateau(o, threshold_mode='pct')),
    ('factor', lambda o: M.ReduceLROnPlateau(o, factor=1.0)),
    ('patience', lambda o: M.ReduceLROnPlateau(o, patience=-1)),
    ('cooldown', lambda o: M.ReduceLROnPlateau(o, cooldown=-1)),
    ('min_lr', lambda o: M.ReduceLROnPlateau(o, min_lr=-0.1)),
    ('min_lr', lambda o: M.ReduceLROnPlateau(o, min_lr=[0.1])),
    ('eps', lambda o: M.ReduceLROnPlateau(o, eps=-1.0)),
    ('patience', lambda o: M.KingLR(o, patience=2)),
    ('decay', lambda o: M.KingLR(o, decay=0)),
    ('warmup_steps', lambda o: M.NoamLR(o, warmup_steps=0)),
    ('model_dim', lambda o: M.NoamLR(o, model_dim=-4)),
    ('stage_length', lambda o: M.ExponentialDecayLR(o, stage_length=0)),
    ('last_epoch', lambda o: M.StepLR(o, 3, last_epoch=-2)),
    ('last_epoch', lambda o: M.CosineAnnealingLR(o, 10, last_epoch=5)),          # resuming needs 'initial_lr' in the groups
    ('milestones', lambda o: M.SequentialLR(o, [M.LinearLR(o), M.ExponentialLR(o, 0.9)], milestones=[])),
    ('milestones', lambda o: M.SequentialLR(o, [M.LinearLR(o), M.ExponentialLR(o, 0.9), M.StepLR(o, 2)], milestones=[5, 5])),
    ('schedulers', lambda o: M.SequentialLR(o, [], milestones=[])),
    ('schedulers', lambda o: M.SequentialLR(o, [M.LinearLR(o), M.ReduceLROnPlateau(o)], milestones=[3])),
    ('schedulers', lambda o: M.SequentialLR(o, [M.LinearLR(o), M.ExponentialLR(Groups(), 0.9)], milestones=[3])),
    ('schedulers', lambda o: M.ChainedScheduler([M.LinearLR(o), M.KingLR(o, patience=5)])),
    ('schedulers', lambda o: M.ChainedScheduler([])),
]

@pytest.mark.parametrize('i', range(len(BAD)))
def test_bad_arguments_raise_and_change_nothing(i):
    arg, build = BAD[i]
    opt = Groups()
    sched_built_before = arg == 'schedulers' or arg == 'milestones'
    before = None if sched_built_before else _groups_snapshot(opt)
    with pytest.raises(ValueError, match=arg):
        build(opt)
    if before is not None: assert opt.param_groups == before


def test_error_messages_state_the_accepted_range():
    with pytest.raises(ValueError, match=r"step_size must be an integer >= 1, got -1"): M.StepLR(Groups(), -1)
    with pytest.raises(ValueError, match=r"T_max must be an integer >= 1, got 0"): M.CosineAnnealingLR(Groups(), 0)
    with pytest.raises(ValueError, match=r"mode must be one of 'min', 'max', got 'avg'"): M.ReduceLROnPlateau(Groups(), mode='avg')
    with pytest.raises(ValueError, match=r"factor must be a finite number in \(0, 1\]"): M.ConstantLR(Groups(), factor=2)


def test_one_cycle_refuses_to_step_past_total_steps_and_changes_nothing():
    opt = Groups()
    sched = M.OneCycleLR(opt, 0.1, total_steps=20)
    for _ in range(20): sched.step()
    before, state = _groups_snapshot(opt), sched.state_dict()
    with pytest.raises(ValueError, match='total_steps'): sched.step()
    assert opt.param_groups == before and sched.state_dict() == state


def test_load_state_dict_checks_keys_first():
    opt = Groups()
    sched = M.StepLR(opt, 3)
    state = sched.state_dict()
    with pytest.raises(ValueError, match='missing keys'): sched.load_state_dict({'last_epoch': 7})
    with pytest.raises(ValueError, match='unexpected keys'): sched.load_state_dict(dict(state, color='red'))
    with pytest.raises(ValueError, match="state_dict\\['last_epoch'\\] must be a number"): sched.load_state_dict(dict(state, last_epoch='7'))
    with pytest.raises(ValueError, match="state_dict\\['base_lrs'\\] must be a list"): sched.load_state_dict(dict(state, base_lrs=0.1))
    with pytest.raises(ValueError, match='state_dict'): M.SequentialLR(opt, [M.LinearLR(opt), M.StepLR(opt, 2)], [3]).load_state_dict(
        {'last_epoch': 0, '_milestones': [3], '_last_lr': [0.1, 0.02], '_schedulers': [{}]})
    assert sched.state_dict() == state


def test_warm_restarts_refuses_negative_epoch():
    opt = Groups()
    sched = M.CosineAnnealingWarmRestarts(opt, 5)
    state = sched.state_dict()
    with pytest.raises(ValueError, match='epoch'): sched.step(-1)
    assert sched.state_dict() == state


def test_not_an_optimizer():
    with pytest.raises(TypeError, match='param_groups'): M.StepLR(object(), 3)
    with pytest.raises(TypeError, match='param_groups'): M.ReduceLROnPlateau([{'lr': 0.1}])


def test_cycle_momentum_needs_momentum_or_betas():
    class Plain: param_groups = [{'lr': 0.1}]
    before = copy.deepcopy(Plain.param_groups)
    for build in (lambda o: M.CyclicLR(o, 0.01, 0.1), lambda o: M.OneCycleLR(o, 0.1, 100)):
        with pytest.raises(ValueError, match='cycle_momentum'): build(Plain())
        assert Plain.param_groups == before
    M.OneCycleLR(Plain(), 0.1, 100, cycle_momentum=False)


def test_pure_functions_check_their_arguments():
    for f, arg in ((lambda: M.step_lr(-1, 0.1, 3), 'step'), (lambda: M.cosine_annealing(3, 0.1, 0), 'T_max'),
                   (lambda: M.cyclic_lr(3, 0.1, 1.0, mode='sine'), 'mode'), (lambda: M.one_cycle_lr(101, 0.1, 100), 'step'),
                   (lambda: M.noam_lr(0), 'step'), (lambda: M.linear_lr(1, 0.1, total_iters=0), 'total_iters')):
        with pytest.raises(ValueError, match=arg): f()


@pytest.mark.parametrize('kind', ['sgd', 'adam'])
def test_one_cycle_drives_real_optimizers_like_torch(kind):
    "OneCycleLR on minima's SGD (momentum) and Adam (beta1; beta2 untouched) gives torch's lr and momentum/beta1 sequences."
    pytest.importorskip('torch')
    build = lambda S, o: S.OneCycleLR(o, max_lr=[0.1, 0.05], total_steps=ref.N_STEPS, three_phase=True)
    topt = ref.torch_optimizer(kind)
    import torch.optim.lr_scheduler as TS
    want = ref.run(build(TS, topt), topt, opt_step=topt.step)
    params = _model()
    opt = _optimizer(kind, params)
    sched = build(M, opt)
    def opt_step():
        for p in params: p.grad = np.ones_like(p.data)
        opt.step()
    got = ref.run(sched, opt, opt_step=opt_step)
    for g, w, what in zip(got, want, ('lr', 'momentum/beta1', 'get_last_lr()')): assert_same(g, w, what)
    assert np.ptp(got[1]) > 0.05
    if kind == 'adam': assert all(g['betas'][1] == 0.999 for g in opt.param_groups)


# ---------------------------------------------------------------- failures change nothing (lambdas, metrics, composites)

BAD_FACTORS = [('x', TypeError), (None, TypeError), ([1.0], TypeError), (1j, TypeError),
               (float('nan'), ValueError), (-0.5, ValueError), (float('inf'), ValueError), (np.float64(-1e-300), ValueError)]

@pytest.mark.parametrize('value, error', BAD_FACTORS, ids=[repr(v) for v, _ in BAD_FACTORS])
def test_lambda_lr_refuses_a_bad_factor_at_construction_and_changes_nothing(value, error):
    opt = Groups()
    before = _groups_snapshot(opt)
    with pytest.raises(error, match=r"LambdaLR: lr_lambda returned .* at epoch 0; it must return a (finite )?real number >= 0"):
        M.LambdaLR(opt, lambda t: value)
    assert opt.param_groups == before and not any('initial_lr' in g for g in opt.param_groups)


@pytest.mark.parametrize('cls', ['LambdaLR', 'MultiplicativeLR'])
@pytest.mark.parametrize('value, error', BAD_FACTORS, ids=[repr(v) for v, _ in BAD_FACTORS])
def test_lambda_schedulers_refuse_a_bad_factor_at_step_and_change_nothing(cls, value, error):
    opt = Groups()
    good = lambda t: 0.9 ** t
    sched = getattr(M, cls)(opt, [good, lambda t: 0.5 if t < 3 else value])
    sched.step(); sched.step()
    before, state = _groups_snapshot(opt), sched.state_dict()
    with pytest.raises(error, match=rf"{cls}: lr_lambda\[1\] returned .* at epoch 3"):
        sched.step()
    assert opt.param_groups == before and sched.state_dict() == state and sched.get_last_lr() == state['_last_lr']


def test_a_lambda_that_raises_changes_nothing_and_is_named_in_a_note():
    opt = Groups()
    before = _groups_snapshot(opt)
    with pytest.raises(ZeroDivisionError) as e: M.LambdaLR(opt, lambda t: 1 / t)
    assert 'raised by the lr_lambda of LambdaLR at epoch 0' in e.value.__notes__[0]
    assert opt.param_groups == before
    sched = M.MultiplicativeLR(opt, lambda t: 1 / (2 - t))
    sched.step()
    before, state = _groups_snapshot(opt), sched.state_dict()
    with pytest.raises(ZeroDivisionError): sched.step()
    assert opt.param_groups == before and sched.state_dict() == state


def test_lambda_factors_may_be_ints_numpy_numbers_and_zero():
    opt = Groups(lrs=[0.5])
    sched = M.LambdaLR(opt, lambda t: [1, np.float32(0.5), np.int64(2), 0.0][t])
    got = [opt.param_groups[0]['lr']]
    for _ in range(3): sched.step(); got.append(opt.param_groups[0]['lr'])
    assert got == [0.5, 0.5 * np.float32(0.5), 1.0, 0.0]


def test_cyclic_constructor_that_fails_leaves_rate_and_momentum():
    "CyclicLR sets its starting rate and momentum before the initial step; when that step fails, neither is left in the groups."
    opt = Groups()
    before = _groups_snapshot(opt)
    def scale_fn(x): raise RuntimeError('broken scale')
    with pytest.raises(RuntimeError, match='broken scale'): M.CyclicLR(opt, 0.01, 0.1, scale_fn=scale_fn)
    assert opt.param_groups == before


class Switch:
    "A schedule (a callable object) that can be made to fail."
    def __init__(self): self.fail = False
    def __call__(self, t):
        if self.fail: raise RuntimeError('switched off')
        return 0.5 ** t


def test_sequential_constructor_that_fails_changes_nothing():
    opt = Groups()
    fn = Switch()
    first, second = M.LambdaLR(opt, fn), M.StepLR(opt, 2)
    opt.param_groups[0]['lr'] = 0.123          # the rates as training left them
    fn.fail = True
    before, states = _groups_snapshot(opt), [first.state_dict(), second.state_dict()]
    with pytest.raises(RuntimeError, match='switched off'): M.SequentialLR(opt, [first, second], milestones=[3])
    assert opt.param_groups == before and [first.state_dict(), second.state_dict()] == states
    assert first.optimizer is opt and second.optimizer is opt


def test_chained_step_that_fails_keeps_none_of_the_steps():
    opt = Groups()
    fn = Switch()
    step_lr, lam = M.StepLR(opt, 1, gamma=0.5), M.MultiplicativeLR(opt, fn)
    chain = M.ChainedScheduler([step_lr, lam])
    chain.step()
    fn.fail = True
    before, state = _groups_snapshot(opt), chain.state_dict()
    with pytest.raises(RuntimeError): chain.step()
    assert opt.param_groups == before and chain.state_dict() == state
    assert step_lr.optimizer is opt and lam.optimizer is opt
    fn.fail = False
    chain.step()                                # and it goes on from where it was
    assert step_lr.last_epoch == lam.last_epoch == 2


def test_schedulers_write_into_the_optimizers_own_group_dicts():
    opt = SGD([Parameter(np.zeros(2))], lr=0.1, momentum=0.9)
    group = opt.param_groups[0]
    sched = M.CyclicLR(opt, 0.01, 0.1, step_size_up=2)
    assert opt.param_groups[0] is group and group['lr'] == 0.01 and group['momentum'] == 0.9 and group['initial_lr'] == 0.01
    sched.step()
    assert opt.param_groups[0] is group and group['lr'] == pytest.approx(0.055) and sched.optimizer is opt


BAD_METRICS = ['abc', '1.5', None, [1.0, 2.0], {'loss': 1.0}, object(), 1j]

@pytest.mark.parametrize('cls, arg', [('ReduceLROnPlateau', 'metrics'), ('KingLR', 'loss')])
@pytest.mark.parametrize('value', BAD_METRICS, ids=[type(v).__name__ + str(i) for i, v in enumerate(BAD_METRICS)])
def test_loss_driven_schedulers_refuse_a_metric_that_is_not_a_number(cls, arg, value):
    opt = Groups()
    sched = getattr(M, cls)(opt, patience=3)
    for m in (1.0, 0.9, 0.95): sched.step(m)
    before, state = _groups_snapshot(opt), sched.state_dict()
    with pytest.raises(TypeError, match=rf"{cls}.step: {arg} must be a real number .*got .*\({type(value).__name__}\)"):
        sched.step(value)
    assert opt.param_groups == before and sched.state_dict() == state


def test_plateau_accepts_numbers_of_every_kind():
    opt = Groups(lrs=[1.0])
    sched = M.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    for m in (np.float32(3.0), np.array(2.0), 2, True):
        sched.step(m)
    assert sched.best == 1.0 and opt.param_groups[0]['lr'] == 0.5


def test_plateau_treats_nan_as_no_improvement_like_torch():
    torch = pytest.importorskip('torch')
    metrics = [1.0, float('nan'), 0.5, float('nan'), float('nan'), float('nan'), 0.4, float('nan'), 0.1, float('nan')]
    for mode in ('min', 'max'):
        kw = dict(mode=mode, patience=1, factor=0.5, cooldown=1)
        topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw)
        opt = Groups(lrs=[1.0])
        sched = M.ReduceLROnPlateau(opt, **kw)
        want, got = [], []
        for m in metrics:
            tsched.step(m); sched.step(m)
            want.append((topt.param_groups[0]['lr'], tsched.num_bad_epochs, tsched.best))
            got.append((opt.param_groups[0]['lr'], sched.num_bad_epochs, sched.best))
        assert got == want
        assert not math.isnan(sched.best) and sched.get_last_lr()[0] < 1.0
