"""minima.optim.swa_utils against torch.optim.swa_utils 2.13 (float64, relative error <= 1e-10).

A small network (Linear, BatchNorm1d, ReLU, Linear) is built in minima, copied into torch, and trained
side by side with SGD on the same mini-batches; after every step both AveragedModels take in the weights
and every averaged parameter and buffer is compared. SWALR is compared rate by rate; update_bn statistic
by statistic. torch runs with float64 as its default dtype, as the models are float64: torch computes
avg_fn on an integer buffer (batch norm's num_batches_tracked, with use_buffers=True) in the default dtype,
and 0.8·1 + 0.2·6 truncates to 1 in float64 but to 2 in float32.
"""
import copy
import numpy as np
import pytest
from minima import nn
from minima.autograd import Tensor
from minima.init import manual_seed
from minima.optim.sgd import SGD
from minima.optim.lr_scheduler import CosineAnnealingLR
from minima.optim.swa_utils import (AveragedModel, SWALR, update_bn, get_ema_multi_avg_fn, get_swa_multi_avg_fn,
                                    get_ema_avg_fn, get_swa_avg_fn)

torch = pytest.importorskip('torch')
import torch.optim.swa_utils as tswa

@pytest.fixture(autouse=True)
def torch_float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)

def rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.max(np.abs(b))
    return np.max(np.abs(a - b)) / scale if scale > 0 else np.max(np.abs(a))

rng = np.random.default_rng(0)
X = rng.standard_normal((6, 16, 4)); Y = rng.standard_normal((6, 16, 2))

def arr(v): return v.data if isinstance(v, Tensor) else np.asarray(v)

def models():
    manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 8, dtype=np.float64), nn.BatchNorm1d(8, dtype=np.float64), nn.ReLU(), nn.Linear(8, 2, dtype=np.float64))
    t = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).double()
    t.load_state_dict({k: torch.from_numpy(np.array(v.data)) for k, v in {**dict(m.named_parameters()), **dict(m.named_buffers())}.items()})
    return m, t

def assert_same(mine, theirs, what):
    ms = {**{k: v.data for k, v in mine.named_parameters()}, **{k: v.data for k, v in mine.named_buffers()}}
    ts = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert sorted(ms) == sorted(ts), (sorted(ms), sorted(ts))
    for k in ts:
        assert ms[k].dtype == ts[k].dtype, k
        assert rel_err(ms[k], ts[k]) <= 1e-10, f'{what}: {k} relative error {rel_err(ms[k], ts[k]):.3g}'

def train_side_by_side(kw, tkw, steps=8, lr=0.1):
    m, t = models()
    avg, tavg = AveragedModel(m, **kw), tswa.AveragedModel(t, **tkw)
    opt, topt = SGD(m.parameters(), lr=lr), torch.optim.SGD(t.parameters(), lr=lr)
    for s in range(steps):
        x, y = X[s % 6], Y[s % 6]
        opt.zero_grad(); ((m(Tensor(x)) - Tensor(y)) ** 2).mean().backward(); opt.step()
        topt.zero_grad(); ((t(torch.from_numpy(x)) - torch.from_numpy(y)) ** 2).mean().backward(); topt.step()
        avg.update_parameters(m); tavg.update_parameters(t)
        assert_same(avg, tavg, f'{kw} after update {s + 1}')
        assert int(avg.n_averaged.data) == int(tavg.n_averaged) == s + 1
    return m, t, avg, tavg

CASES = {
    'swa': ({}, {}),
    'swa, use_buffers': (dict(use_buffers=True), dict(use_buffers=True)),
    'ema multi': (dict(multi_avg_fn=get_ema_multi_avg_fn(0.9)), dict(multi_avg_fn=tswa.get_ema_multi_avg_fn(0.9))),
    'ema multi, use_buffers': (dict(multi_avg_fn=get_ema_multi_avg_fn(0.7), use_buffers=True), dict(multi_avg_fn=tswa.get_ema_multi_avg_fn(0.7), use_buffers=True)),
    'ema avg_fn': (dict(avg_fn=get_ema_avg_fn(0.8)), dict(avg_fn=tswa.get_ema_avg_fn(0.8))),
    'ema avg_fn, use_buffers': (dict(avg_fn=get_ema_avg_fn(0.8), use_buffers=True), dict(avg_fn=tswa.get_ema_avg_fn(0.8), use_buffers=True)),
    'swa avg_fn': (dict(avg_fn=get_swa_avg_fn()), dict(avg_fn=tswa.get_swa_avg_fn())),
    'swa multi explicit': (dict(multi_avg_fn=get_swa_multi_avg_fn()), dict(multi_avg_fn=tswa.get_swa_multi_avg_fn())),
    'default ema decay': (dict(multi_avg_fn=get_ema_multi_avg_fn()), dict(multi_avg_fn=tswa.get_ema_multi_avg_fn())),
}

@pytest.mark.parametrize('case', list(CASES))
def test_averaged_model_matches_torch_over_a_training_run(case):
    m, t, avg, tavg = train_side_by_side(*CASES[case])
    avg.eval(); tavg.eval()
    out, tout = avg(Tensor(X[0])).data, tavg(torch.from_numpy(X[0])).detach().numpy()
    assert rel_err(out, tout) <= 1e-10                      # forward delegates to the averaged copy

def test_averaging_functions_match_torch_on_arrays():
    r = np.random.default_rng(1)
    for n in (1, 2, 5):
        a, b = r.standard_normal((3, 4)), r.standard_normal((3, 4))
        for mine, theirs in [(get_ema_avg_fn(0.9), tswa.get_ema_avg_fn(0.9)), (get_swa_avg_fn(), tswa.get_swa_avg_fn())]:
            assert rel_err(mine(a, b, n), theirs(torch.from_numpy(a), torch.from_numpy(b), torch.tensor(n)).numpy()) <= 1e-15
        for mine, theirs in [(get_ema_multi_avg_fn(0.9), tswa.get_ema_multi_avg_fn(0.9)), (get_swa_multi_avg_fn(), tswa.get_swa_multi_avg_fn())]:
            ma, ta = [a.copy(), b.copy()], [torch.from_numpy(a.copy()), torch.from_numpy(b.copy())]
            mine(ma, [b, a], n); theirs(ta, [torch.from_numpy(b), torch.from_numpy(a)], torch.tensor(n))
            for x, y in zip(ma, ta): assert rel_err(x, y.numpy()) <= 1e-15    # torch's lerp fuses the multiply-add: an ulp apart

def test_averaged_model_is_a_deep_copy_and_leaves_the_model_alone():
    m, _ = models()
    before = [p.data.copy() for p in m.parameters()]
    avg = AveragedModel(m)
    assert all(a is not b and a.data is not b.data for a, b in zip(avg.module.parameters(), m.parameters()))
    avg.update_parameters(m)
    for p in avg.module.parameters(): p.data += 1
    assert all(np.array_equal(p.data, b) for p, b in zip(m.parameters(), before))

def test_bad_arguments():
    m, _ = models()
    with pytest.raises(AssertionError, match='avg_fn'): AveragedModel(m, avg_fn=get_swa_avg_fn(), multi_avg_fn=get_swa_multi_avg_fn())
    with pytest.raises(ValueError, match='device'): AveragedModel(m, device='cuda')
    for f in (get_ema_avg_fn, get_ema_multi_avg_fn):
        with pytest.raises(ValueError, match='decay'): f(1.01)
        with pytest.raises(ValueError, match='decay'): f(-0.5)
    with pytest.raises(ValueError, match='device'): update_bn([X[0]], m, device='cuda')

def test_averaged_model_state_dict_round_trip_and_bit_identical_resume():
    def run(avg, m, steps):
        for s in steps:
            for p in m.parameters(): p.data += np.random.default_rng(s).standard_normal(p.data.shape)
            avg.update_parameters(m)
    m, _ = models(); full = AveragedModel(m, use_buffers=True); run(full, m, range(6))
    m1, _ = models(); first = AveragedModel(m1, use_buffers=True); run(first, m1, range(3))
    saved = copy.deepcopy(first.state_dict())
    assert int(arr(saved['n_averaged'])) == 3
    m2, _ = models(); m2.load_state_dict(m1.state_dict())
    resumed = AveragedModel(m2, use_buffers=True); resumed.load_state_dict(saved)
    run(resumed, m2, range(3, 6))
    for (k, a), (_, b) in zip(sorted(full.state_dict().items()), sorted(resumed.state_dict().items())):
        assert np.array_equal(arr(a), arr(b)), k
    assert not np.array_equal(arr(full.state_dict()['module.0.bias']), arr(m.state_dict()['0.bias']))

# ---------------------------------------------------------------- update_bn
def test_update_bn_matches_torch():
    m, t, avg, tavg = train_side_by_side({}, {})
    loader = [(X[i], Y[i]) for i in range(6)]
    avg.eval(); tavg.eval()
    update_bn(loader, avg); tswa.update_bn([(torch.from_numpy(x), torch.from_numpy(y)) for x, y in loader], tavg)
    assert_same(avg, tavg, 'after update_bn')
    assert int(avg.module[1].num_batches_tracked.data) == 6
    assert avg.module[1].momentum == 0.1 and not avg.training and not avg.module[1].training
    update_bn([X[i] for i in range(6)], avg)            # batches that are plain arrays
    assert_same(avg, tavg, 'after update_bn on arrays')
    update_bn([Tensor(X[i]) for i in range(6)], avg)    # and Tensors
    assert_same(avg, tavg, 'after update_bn on Tensors')

def test_update_bn_without_batch_norm_changes_nothing():
    m = nn.Sequential(nn.Linear(4, 2, dtype=np.float64)); before = m.state_dict()
    update_bn([X[0]], m)
    assert all(np.array_equal(arr(before[k]), arr(v)) for k, v in m.state_dict().items())

# ---------------------------------------------------------------- SWALR
def schedulers(swa_lr, **kw):
    from minima.nn import Parameter
    p, q = Parameter(np.zeros(2)), Parameter(np.zeros(3))
    opt = SGD([{'params': [p]}, {'params': [q], 'lr': 0.5}], lr=1.0)
    tp, tq = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))
    topt = torch.optim.SGD([{'params': [tp]}, {'params': [tq], 'lr': 0.5}], lr=1.0)
    return opt, SWALR(opt, swa_lr, **kw), topt, tswa.SWALR(topt, swa_lr, **kw)

@pytest.mark.parametrize('strategy', ['cos', 'linear'])
@pytest.mark.parametrize('anneal_epochs', [0, 1, 5, 10])
@pytest.mark.parametrize('swa_lr', [0.05, [0.05, 0.2]])
def test_swalr_matches_torch(strategy, anneal_epochs, swa_lr):
    opt, sched, topt, tsched = schedulers(swa_lr, anneal_epochs=anneal_epochs, anneal_strategy=strategy)
    for step in range(25):
        mine, theirs = [g['lr'] for g in opt.param_groups], [g['lr'] for g in topt.param_groups]
        assert np.allclose(mine, theirs, rtol=1e-12, atol=0), (step, mine, theirs)
        assert sched.get_last_lr() == mine
        opt.step(); topt.step(); sched.step(); tsched.step()
    assert [g['swa_lr'] for g in opt.param_groups] == [g['swa_lr'] for g in topt.param_groups]

def test_swalr_takes_over_from_an_earlier_schedule_as_torch():
    "torch's documented pattern: both schedulers built at the start, the cosine one stepped first, SWALR from epoch 10."
    from minima.nn import Parameter
    p, tp = Parameter(np.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt, topt = SGD([p], lr=1.0), torch.optim.SGD([tp], lr=1.0)
    cos, tcos = CosineAnnealingLR(opt, T_max=30), torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=30)
    swa, tswalr = SWALR(opt, swa_lr=0.05, anneal_epochs=5), tswa.SWALR(topt, swa_lr=0.05, anneal_epochs=5)
    for epoch in range(25):
        opt.step(); topt.step()
        if epoch < 10: cos.step(); tcos.step()
        else: swa.step(); tswalr.step()
        assert abs(opt.param_groups[0]['lr'] - topt.param_groups[0]['lr']) <= 1e-12 * topt.param_groups[0]['lr'], epoch

def test_swalr_state_dict_and_resume():
    opt, sched, _, _ = schedulers(0.05, anneal_epochs=6)
    for _ in range(3): opt.step(); sched.step()
    saved_sched, saved_opt = sched.state_dict(), opt.state_dict()
    assert all(not callable(v) for v in saved_sched.values())
    opt2, sched2, _, _ = schedulers(0.05, anneal_epochs=6)
    opt2.load_state_dict(saved_opt); sched2.load_state_dict(saved_sched)    # the groups carry swa_lr; SWALR made first
    for _ in range(6):
        opt.step(); sched.step(); opt2.step(); sched2.step()
        assert [g['lr'] for g in opt.param_groups] == [g['lr'] for g in opt2.param_groups]

def test_swalr_bad_arguments_change_nothing():
    from minima.nn import Parameter
    opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match='anneal_strategy'): SWALR(opt, 0.1, anneal_strategy='exp')
    with pytest.raises(ValueError, match='anneal_epochs'): SWALR(opt, 0.1, anneal_epochs=-1)
    with pytest.raises(ValueError, match='anneal_epochs'): SWALR(opt, 0.1, anneal_epochs=2.5)
    with pytest.raises(ValueError, match='swa_lr'): SWALR(opt, [0.1, 0.2])
    with pytest.raises(ValueError, match='swa_lr'): SWALR(opt, -0.1)
    assert opt.param_groups[0]['lr'] == 1.0 and 'swa_lr' not in opt.param_groups[0]
    with pytest.raises(ValueError, match='anneal_strategy'): tswa.SWALR(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))]), 0.1, anneal_strategy='exp')
    with pytest.raises(ValueError, match='anneal_epochs'): tswa.SWALR(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))]), 0.1, anneal_epochs=-1)
