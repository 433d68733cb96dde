"""Save mid-training, load into a fresh model and optimizer, continue: bit-identical to the
uninterrupted run, for every optimizer (and its main options), through a checkpoint file."""
import numpy as np
import pytest
from minima import nn
from minima.autograd import Tensor
from minima.init import manual_seed
from minima.checkpoint import save, load
from minima.optim.sgd import SGD
from minima.optim.adaptive import Adagrad, AdaGrad, RMSprop, RMSProp, Adadelta
from minima.optim.adam import Adam, AdamW, Adamax, NAdam, RAdam

CONFIGS = [
    ('SGD', SGD, dict(lr=0.05)),
    ('SGD momentum', SGD, dict(lr=0.05, momentum=0.9, weight_decay=1e-3, decoupled_weight_decay=True)),
    ('SGD seed momentum', SGD, dict(lr=0.05, momentum=0.9, dampening=0.9, momentum_from_zero=True)),
    ('SGD Nesterov', SGD, dict(lr=0.05, momentum=0.9, dampening=0, nesterov=True, weight_decay=1e-3)),
    ('Adagrad', Adagrad, dict(lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1)),
    ('AdaGrad', AdaGrad, dict(lr=0.01, weight_decay=1e-3, decoupled_weight_decay=True, eps_inside_sqrt=True)),
    ('RMSprop centered momentum', RMSprop, dict(lr=0.01, momentum=0.5, centered=True, weight_decay=1e-3)),
    ('RMSProp', RMSProp, dict(lr=0.01)),
    ('Adadelta', Adadelta, dict(weight_decay=1e-3)),
    ('Adam', Adam, dict(lr=0.01, weight_decay=1e-3)),
    ('Adam AMSGrad', Adam, dict(lr=0.01, amsgrad=True, betas=(0.8, 0.999))),
    ('AdamW', AdamW, dict(lr=0.01)),
    ('Adamax', Adamax, dict(lr=0.01)),
    ('NAdam', NAdam, dict(lr=0.01, weight_decay=1e-3, decoupled_weight_decay=True)),
    ('RAdam', RAdam, dict(lr=0.01)),
]
STEPS, SAVE_AT = 20, 8   # RAdam switches to its rectified step at step 6: both regimes are crossed before saving

rng = np.random.default_rng(0)
X = rng.standard_normal((4, 16, 5)).astype(np.float32)
Y = rng.standard_normal((4, 16, 1)).astype(np.float32)

def make(cls, kwargs, seed):
    "A small MLP (its biases in a second param group with another lr) and its optimizer."
    manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))
    named = list(model.named_parameters())
    groups = [{'params': [p for n, p in named if n.endswith('weight')]},
              {'params': [p for n, p in named if n.endswith('bias')], 'lr': kwargs.get('lr', 1.0) / 2}]
    return model, cls(groups, **kwargs)

def train(model, opt, steps):
    loss_fn = nn.MSELoss()
    for t in steps:
        opt.zero_grad()
        loss = loss_fn(model(Tensor(X[t % 4])), Tensor(Y[t % 4]))
        loss.backward()
        opt.step()

def snapshot(model, opt):
    params = {n: p.data.copy() for n, p in model.named_parameters()}
    state = [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in opt.state[p].items()}
             for g in opt.param_groups for p in g['params']]
    return params, state

def assert_identical(a, b):
    (pa, sa), (pb, sb) = a, b
    assert list(pa) == list(pb)
    for n in pa: assert np.array_equal(pa[n], pb[n]), f'parameter {n} differs'
    for i, (x, y) in enumerate(zip(sa, sb)):
        assert sorted(x) == sorted(y)
        for k in x:
            if isinstance(x[k], np.ndarray): assert np.array_equal(x[k], y[k]), f'state {k} of parameter {i} differs'
            else: assert x[k] == y[k] and type(x[k]) == type(y[k]), f'state {k} of parameter {i}: {x[k]!r} != {y[k]!r}'

@pytest.mark.parametrize('name,cls,kwargs', CONFIGS, ids=[c[0] for c in CONFIGS])
def test_resume_from_checkpoint_is_bit_identical(name, cls, kwargs, tmp_path):
    model, opt = make(cls, kwargs, seed=0)
    train(model, opt, range(STEPS))
    uninterrupted = snapshot(model, opt)

    model, opt = make(cls, kwargs, seed=0)
    train(model, opt, range(SAVE_AT))
    save({'model': model.state_dict(), 'optimizer': opt.state_dict(), 'step': SAVE_AT}, tmp_path / 'run.ckpt')
    del model, opt

    ckpt = load(tmp_path / 'run.ckpt')
    model, opt = make(cls, kwargs, seed=1)          # a different initialisation, overwritten by the load
    model.load_state_dict(ckpt['model'])
    opt.load_state_dict(ckpt['optimizer'])
    train(model, opt, range(ckpt['step'], STEPS))
    assert_identical(snapshot(model, opt), uninterrupted)

@pytest.mark.parametrize('name,cls,kwargs', CONFIGS, ids=[c[0] for c in CONFIGS])
def test_resume_in_memory_is_bit_identical(name, cls, kwargs):
    model, opt = make(cls, kwargs, seed=0)
    train(model, opt, range(STEPS))
    uninterrupted = snapshot(model, opt)
    model, opt = make(cls, kwargs, seed=0)
    train(model, opt, range(SAVE_AT))
    model_state, opt_state = model.state_dict(), opt.state_dict()
    train(model, opt, range(SAVE_AT, SAVE_AT + 3))    # the snapshot must not change when training goes on
    model, opt = make(cls, kwargs, seed=1)
    model.load_state_dict(model_state); opt.load_state_dict(opt_state)
    train(model, opt, range(SAVE_AT, STEPS))
    assert_identical(snapshot(model, opt), uninterrupted)

def test_nadam_checkpoint_carries_mu_product(tmp_path):
    model, opt = make(NAdam, dict(lr=0.01), seed=0)
    train(model, opt, range(3))
    sd = opt.state_dict()
    assert all(isinstance(s['mu_product'], float) for s in sd['state'].values())
    save(sd, tmp_path / 'o.ckpt')
    assert load(tmp_path / 'o.ckpt')['state'][0]['mu_product'] == sd['state'][0]['mu_product']

def test_every_class_is_covered():
    assert {c[1] for c in CONFIGS} == {SGD, Adagrad, AdaGrad, RMSprop, RMSProp, Adadelta, Adam, AdamW, Adamax, NAdam, RAdam}
