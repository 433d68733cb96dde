"""The usage shown in the four seed documents runs unchanged and does what each seed's equations say.

Each seed's update rule is re-implemented here, independently of minima, in the seed's own style
(allocating numpy expressions), and compared with minima over many steps of varied gradients.
000/002: minima's optim docs and notebook     001: a torch-like library's optim docs
003: numpy-ml's optimizers (functional update, clip_norm)  004: a PyTorch optimizer study
"""
import numpy as np
import pytest
from minima import nn
from minima.autograd import Tensor
from minima.init import manual_seed
from minima.nn import Parameter
from minima.optim.sgd import SGD
from minima.optim.adaptive import Adagrad, AdaGrad, RMSprop, RMSProp, Adadelta
from minima.optim.adam import Adam, AdamW, adam_update

STEPS = 60
rng = np.random.default_rng(3)
GRADS = [rng.standard_normal((STEPS, 3, 4)) * 10.0 ** rng.uniform(-2, 1, (STEPS, 1, 1)),
         rng.standard_normal((STEPS, 4)) + 0.5]
INIT = [rng.standard_normal((3, 4)), rng.standard_normal(4)]

def run_class(make_opt):
    "Run an optimizer over the fixed gradient sequence on two parameters; return the final arrays."
    params = [Parameter(a.copy()) for a in INIT]
    opt = make_opt(params)
    for t in range(STEPS):
        for p, g in zip(params, GRADS): p.grad = g[t].copy()
        opt.step()
    return [p.data for p in params]

def run_seed(update, **hp):
    "Run a seed's update rule, written as f(p, g, cache, t, **hp) -> new p, over the same gradients."
    out = []
    for a, G in zip(INIT, GRADS):
        p, cache = a.copy(), {}
        for t in range(1, STEPS + 1): p = update(p, G[t - 1], cache, t, **hp)
        out.append(p)
    return out

def assert_same(mine, seed, rtol=1e-12):
    for a, b in zip(mine, seed): np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-14)

def assert_different(mine, seed):
    "The torch-default call does not take the seed's steps (its form is one explicit argument away)."
    assert any(not np.allclose(a, b, rtol=1e-6) for a, b in zip(mine, seed))

# ---------------------------------------------------------------- 000/002: the seed's minima optim
def minima_seed_sgd(p, g, c, t, lr, momentum, wd):
    if wd != 0: p = p * (1 - lr * wd)                      # _reg_step
    c['u'] = momentum * c.get('u', 0.0) + (1 - momentum) * g   # _opt_step, u starts at zeros
    return p - lr * c['u']

def minima_seed_adagrad(p, g, c, t, lr, wd, eps):
    if wd != 0: p = p * (1 - lr * wd)
    c['cache'] = c.get('cache', 0.0) + g ** 2
    return p - (lr / (c['cache'] + eps) ** 0.5) * g

def minima_seed_rmsprop(p, g, c, t, lr, wd, eps, rho):
    if wd != 0: p = p * (1 - lr * wd)
    c['cache'] = rho * c.get('cache', 0.0) + (1 - rho) * g ** 2
    return p - (lr / (c['cache'] + eps) ** 0.5) * g

def minima_seed_adam(p, g, c, t, lr, beta1, beta2, eps, wd):
    "The seed's documented equations, with t the step count (the seed's code used the parameter index: bug 1)."
    if wd != 0: p = p * (1 - lr * wd)                      # the seed's code: decoupled
    c['m'] = beta1 * c.get('m', 0.0) + (1 - beta1) * g
    c['v'] = beta2 * c.get('v', 0.0) + (1 - beta2) * g ** 2
    m_hat, v_hat = c['m'] / (1 - beta1 ** t), c['v'] / (1 - beta2 ** t)
    return p - lr * m_hat / (v_hat ** 0.5 + eps)

def seed_sgd(ps, lr=0.01, momentum=0.0, wd=0.0):
    "The seed's `SGD(params, lr, momentum, wd)` as minima spells it (the table on the optim page)."
    return SGD(ps, lr=lr, momentum=momentum, dampening=momentum, momentum_from_zero=True, weight_decay=wd, decoupled_weight_decay=True)

def seed_adagrad(ps, lr=1e-3, wd=0.0, eps=1e-7):
    return Adagrad(ps, lr=lr, eps=eps, weight_decay=wd, decoupled_weight_decay=True, eps_inside_sqrt=True)

def seed_rmsprop(ps, lr=1e-3, wd=0.0, eps=1e-7, rho=0.9):
    return RMSprop(ps, lr=lr, alpha=rho, eps=eps, weight_decay=wd, decoupled_weight_decay=True, eps_inside_sqrt=True)

def test_minima_sgd_signature_and_defaults():
    assert_same(run_class(lambda ps: seed_sgd(ps, lr=0.01, momentum=0.0, wd=0.0)), run_seed(minima_seed_sgd, lr=0.01, momentum=0.0, wd=0.0))
    assert_same(run_class(lambda ps: seed_sgd(ps)), run_seed(minima_seed_sgd, lr=0.01, momentum=0.0, wd=0.0))
    assert_same(run_class(lambda ps: SGD(ps, lr=0.01)), run_seed(minima_seed_sgd, lr=0.01, momentum=0.0, wd=0.0))

@pytest.mark.parametrize('momentum,wd', [(0.9, 0.0), (0.5, 0.1), (0.0, 0.1)])
def test_minima_sgd_damped_momentum_and_weight_decay(momentum, wd):
    assert_same(run_class(lambda ps: seed_sgd(ps, lr=0.01, momentum=momentum, wd=wd)), run_seed(minima_seed_sgd, lr=0.01, momentum=momentum, wd=wd))
    if momentum: assert_different(run_class(lambda ps: SGD(ps, lr=0.01, momentum=momentum)), run_seed(minima_seed_sgd, lr=0.01, momentum=momentum, wd=0.0))

@pytest.mark.parametrize('wd', [0.0, 0.1])
def test_minima_adagrad(wd):
    assert_same(run_class(lambda ps: seed_adagrad(ps, lr=0.001, wd=wd, eps=1e-7)), run_seed(minima_seed_adagrad, lr=0.001, wd=wd, eps=1e-7))
    assert_same(run_class(lambda ps: seed_adagrad(ps, 0.05, wd, 1e-7)), run_seed(minima_seed_adagrad, lr=0.05, wd=wd, eps=1e-7))
    if wd == 0: assert_same(run_class(lambda ps: seed_adagrad(ps)), run_seed(minima_seed_adagrad, lr=0.001, wd=0.0, eps=1e-7))
    assert AdaGrad is Adagrad

@pytest.mark.parametrize('wd', [0.0, 0.1])
def test_minima_rmsprop(wd):
    assert_same(run_class(lambda ps: seed_rmsprop(ps, lr=0.001, wd=wd, eps=1e-7, rho=0.9)), run_seed(minima_seed_rmsprop, lr=0.001, wd=wd, eps=1e-7, rho=0.9))
    assert_same(run_class(lambda ps: seed_rmsprop(ps, 0.01, wd, 1e-7, 0.8)), run_seed(minima_seed_rmsprop, lr=0.01, wd=wd, eps=1e-7, rho=0.8))
    if wd == 0: assert_same(run_class(lambda ps: seed_rmsprop(ps)), run_seed(minima_seed_rmsprop, lr=0.001, wd=0.0, eps=1e-7, rho=0.9))
    assert RMSProp is RMSprop

def test_minima_adam_bias_correction_by_step_count():
    kw = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8)
    assert_same(run_class(lambda ps: Adam(ps, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)), run_seed(minima_seed_adam, wd=0.0, **kw))
    assert Adam([Parameter(np.zeros(1))]).defaults['lr'] == 1e-3     # bug 9: the seed's default was 1e-5

def test_minima_adam_weight_decay_as_the_seed_code_computed_it():
    kw = dict(lr=0.01, betas=(0.8, 0.99), eps=1e-8)
    seed = run_seed(minima_seed_adam, wd=0.1, lr=0.01, beta1=0.8, beta2=0.99, eps=1e-8)
    assert_same(run_class(lambda ps: Adam(ps, weight_decay=0.1, decoupled_weight_decay=True, **kw)), seed)
    assert_same(run_class(lambda ps: AdamW(ps, weight_decay=0.1, **kw)), seed)

def test_minima_training_loop():
    "The seed's (commented-out) loop: preds, loss, backward, step, zero_grad; each SGD step is p - lr * grad."
    manual_seed(0)
    X, y = np.random.default_rng(0).standard_normal((50, 30)), np.random.default_rng(1).integers(0, 2, 50)
    network = nn.Sequential(nn.Linear(30, 24, dtype=np.float64), nn.ReLU(), nn.Linear(24, 24, dtype=np.float64), nn.ReLU(),
                            nn.Linear(24, 2, dtype=np.float64))
    opt, bce = SGD(network.parameters(), lr=0.01), nn.CrossEntropyLoss()
    losses = []
    for epoch in range(5):
        for i in range(0, 50, 10):
            preds = network(Tensor(X[i:i + 10]))
            loss = bce(preds, Tensor(y[i:i + 10]))
            loss.backward()
            before = [(p.data.copy(), p.grad.copy()) for p in network.parameters()]
            opt.step()
            for p, (d, g) in zip(network.parameters(), before): np.testing.assert_allclose(p.data, d - 0.01 * g, rtol=1e-14)
            opt.zero_grad()
            assert all(p.grad is None for p in network.parameters())
            losses.append(loss.item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5])

# ---------------------------------------------------------------- 001: torchlike
def torchlike_sgd(p, g, c, t, lr, momentum):
    c['v'] = momentum * c.get('v', 0.0) + (1 - momentum) * g
    return p - lr * c['v']

def torchlike_adam(p, g, c, t, lr, betas, eps, weight_decay):
    g = g + weight_decay * p
    c['m'] = betas[0] * c.get('m', 0.0) + (1 - betas[0]) * g
    c['v'] = betas[1] * c.get('v', 0.0) + (1 - betas[1]) * g ** 2
    a, b = c['m'] / (1 - betas[0] ** t), c['v'] / (1 - betas[1] ** t)
    return p - lr * a / (np.sqrt(b) + eps)

def test_torchlike_sgd_with_momentum():
    assert_same(run_class(lambda ps: SGD(ps, lr=0.01, momentum=0.9, dampening=0.9, momentum_from_zero=True)), run_seed(torchlike_sgd, lr=0.01, momentum=0.9))

def test_torchlike_training_loop():
    "optim.SGD(model.parameters(), lr=0.01, momentum=0.9); zero_grad, output, loss, backward, step."
    manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4, dtype=np.float64), nn.Tanh(), nn.Linear(4, 1, dtype=np.float64))
    optimizer, loss_fn = SGD(model.parameters(), lr=0.01, momentum=0.9, dampening=0.9, momentum_from_zero=True), nn.MSELoss()
    data = np.random.default_rng(0).standard_normal((20, 5, 3))
    velocity = {p: np.zeros_like(p.data) for p in model.parameters()}
    for x in data:
        optimizer.zero_grad()
        output = model(Tensor(x))
        loss = loss_fn(output, Tensor(x[:, :1] * 2.0))
        loss.backward()
        expected = {}
        for p in model.parameters():
            velocity[p] = 0.9 * velocity[p] + (1 - 0.9) * p.grad
            expected[p] = p.data - 0.01 * velocity[p]
        optimizer.step()
        for p in model.parameters(): np.testing.assert_allclose(p.data, expected[p], rtol=1e-13)

def test_torchlike_adam_with_parameter_groups_and_weight_decay():
    def make(ps):
        return Adam([{'params': [ps[0]], 'lr': 0.01}, {'params': [ps[1]]}], lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.1)
    mine = run_class(make)
    kw = dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    seed_w = run_seed(torchlike_adam, lr=0.01, **kw)[0]
    seed_b = run_seed(torchlike_adam, lr=0.001, **kw)[1]
    assert_same(mine, [seed_w, seed_b])
    assert_same(run_class(lambda ps: Adam(ps, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0)),
                run_seed(torchlike_adam, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0))

# ---------------------------------------------------------------- 003: numpy-ml
def numpy_ml_clip(g, clip_norm):
    t = np.inf if clip_norm is None else clip_norm
    return g * t / np.linalg.norm(g) if np.linalg.norm(g) > t else g

def numpy_ml_sgd(p, g, c, t, lr, momentum, clip_norm):
    g = numpy_ml_clip(g, clip_norm)
    c['u'] = momentum * c.get('u', 0.0) + lr * g
    return p - c['u']

def numpy_ml_adagrad(p, g, c, t, lr, eps, clip_norm):
    g = numpy_ml_clip(g, clip_norm)
    c['C'] = c.get('C', 0.0) + g ** 2
    return p - lr * g / (np.sqrt(c['C']) + eps)

def numpy_ml_rmsprop(p, g, c, t, lr, decay, eps, clip_norm):
    g = numpy_ml_clip(g, clip_norm)
    c['C'] = decay * c.get('C', 0.0) + (1 - decay) * g ** 2
    return p - lr * g / (np.sqrt(c['C']) + eps)

def numpy_ml_adam(p, g, c, t, lr, decay1, decay2, eps, clip_norm):
    g = numpy_ml_clip(g, clip_norm)
    c['var'] = decay2 * c.get('var', 0.0) + (1 - decay2) * g ** 2
    c['mean'] = decay1 * c.get('mean', 0.0) + (1 - decay1) * g
    v_hat, m_hat = c['var'] / (1 - decay2 ** t), c['mean'] / (1 - decay1 ** t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)

@pytest.mark.parametrize('clip_norm', [None, 1.0])
def test_numpy_ml_equivalents(clip_norm):
    "numpy-ml's SGD, AdaGrad, RMSProp, Adam (per-tensor clip_norm included) as minima calls."
    assert_same(run_class(lambda ps: SGD(ps, lr=0.01, momentum=0.9, dampening=0, clip_norm=clip_norm)),
                run_seed(numpy_ml_sgd, lr=0.01, momentum=0.9, clip_norm=clip_norm))
    assert_same(run_class(lambda ps: Adagrad(ps, lr=0.01, eps=1e-7, clip_norm=clip_norm)),
                run_seed(numpy_ml_adagrad, lr=0.01, eps=1e-7, clip_norm=clip_norm))
    assert_same(run_class(lambda ps: RMSprop(ps, lr=0.001, alpha=0.9, eps=1e-7, clip_norm=clip_norm)),
                run_seed(numpy_ml_rmsprop, lr=0.001, decay=0.9, eps=1e-7, clip_norm=clip_norm))
    assert_same(run_class(lambda ps: Adam(ps, lr=0.001, betas=(0.9, 0.999), eps=1e-7, clip_norm=clip_norm)),
                run_seed(numpy_ml_adam, lr=0.001, decay1=0.9, decay2=0.999, eps=1e-7, clip_norm=clip_norm))

def test_numpy_ml_style_functional_update():
    "numpy-ml's `update(param, grad, param_name)` with a cache per name: minima's pure adam_update on raw arrays."
    params = {'W1': INIT[0].copy(), 'b1': INIT[1].copy()}
    cache = {name: {'exp_avg': np.zeros_like(p), 'exp_avg_sq': np.zeros_like(p)} for name, p in params.items()}
    for t in range(1, STEPS + 1):
        for (name, p), G in zip(params.items(), GRADS):
            adam_update(p, G[t - 1], cache[name], step=t, lr=0.001, betas=(0.9, 0.999), eps=1e-7, weight_decay=0.0, amsgrad=False,
                        maximize=False, decoupled_weight_decay=False)
    assert_same(list(params.values()), run_seed(numpy_ml_adam, lr=0.001, decay1=0.9, decay2=0.999, eps=1e-7, clip_norm=None))

# ---------------------------------------------------------------- 004: a PyTorch optimizer study
def study_sgd_momentum(p, g, c, t, lr, momentum):
    c['v'] = c.get('v', 0.0) * momentum + g
    return p - lr * c['v']

def study_adagrad(p, g, c, t, lr, init_acc_sqr_grad, eps):
    c['acc'] = c.get('acc', init_acc_sqr_grad) + g * g
    std = np.sqrt(c['acc']) + eps
    return p - (lr / std) * g

def study_adadelta(p, g, c, t, lr, rho, eps):
    c['sq'] = c.get('sq', 0.0) * rho + g * g * (1 - rho)
    std = np.sqrt(c['sq'] + eps)
    delta = np.sqrt(c.get('d', 0.0) + eps) / std * g
    c['d'] = c.get('d', 0.0) * rho + delta * delta * (1 - rho)
    return p - lr * delta

def study_rmsprop(p, g, c, t, lr, alpha, eps):
    c['sq'] = c.get('sq', 0.0) * alpha + g * g * (1 - alpha)
    std = np.sqrt(c['sq']) + eps
    return p - (lr / std) * g

def test_study_optimizers_by_torch_name_with_torch_defaults():
    assert_same(run_class(lambda ps: SGD(ps, lr=1e-3, momentum=0.9, dampening=0)), run_seed(study_sgd_momentum, lr=1e-3, momentum=0.9))
    assert_same(run_class(lambda ps: Adagrad(ps)), run_seed(study_adagrad, lr=1e-2, init_acc_sqr_grad=0.0, eps=1e-10))
    for init in (1.0, 0.1, 0.01, 0.001):   # the study's sweep of the initial accumulator
        assert_same(run_class(lambda ps: Adagrad(ps, initial_accumulator_value=init)), run_seed(study_adagrad, lr=1e-2, init_acc_sqr_grad=init, eps=1e-10))
    assert_same(run_class(lambda ps: Adadelta(ps)), run_seed(study_adadelta, lr=1.0, rho=0.9, eps=1e-6))
    for eps in (1e-8, 1e-6, 1e-4, 1e-2, 1):   # the study's eps sweep
        assert_same(run_class(lambda ps: RMSprop(ps, eps=eps)), run_seed(study_rmsprop, lr=1e-2, alpha=0.99, eps=eps))

def study_mlp(seed):
    manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 256, dtype=np.float64), nn.ReLU(),
                         nn.Linear(256, 256, dtype=np.float64), nn.ReLU(), nn.Linear(256, 10, dtype=np.float64))

@pytest.mark.parametrize('make_opt', [lambda ps: Adam(ps), lambda ps: SGD(ps, lr=0.1, momentum=0.9)], ids=['Adam', 'SGD'])
def test_study_gradient_accumulation_over_n_batches(make_opt):
    "Exercise 1: summing gradients of n batches (loss / n each, zero_grad only after the step) = one step on all of them."
    rng = np.random.default_rng(0)
    images, labels = rng.standard_normal((32, 1, 28, 28)), rng.integers(0, 10, 32)
    criterion, n = nn.CrossEntropyLoss(), 4
    big = study_mlp(0); opt_big = make_opt(big.parameters())          # the study's optim.Adam(model.parameters())
    opt_big.zero_grad(); criterion(big(Tensor(images)), Tensor(labels)).backward(); opt_big.step()
    acc = study_mlp(0); optimizer = make_opt(acc.parameters())
    optimizer.zero_grad()
    for i, (x, y) in enumerate(zip(np.split(images, n), np.split(labels, n))):
        loss = criterion(acc(Tensor(x)), Tensor(y)) * (1.0 / n)
        loss.backward()
        if (i + 1) % n == 0:
            optimizer.step(); optimizer.zero_grad()
    for p, q in zip(big.parameters(), acc.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-10, atol=1e-12)
    assert optimizer.state[next(acc.parameters())]['step'] == 1
