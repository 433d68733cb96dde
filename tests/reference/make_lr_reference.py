"""Learning-rate schedule cases shared by tests/test_lr_scheduler.py, and the script that stores
PyTorch's sequences for them in tests/reference/lr_schedules.npz.

Every case is built by one function `build(S, opt)` that works for both libraries, because minima's
schedulers take PyTorch's names and arguments: `S` is `torch.optim.lr_scheduler` or
`minima.optim.lr_scheduler`, `opt` an optimizer (or anything with `param_groups`) of that library.

Regenerate (needs torch 2.13):  python tests/reference/make_lr_reference.py
"""
import math
from pathlib import Path
import numpy as np

N_STEPS = 300
LRS = (0.1, 0.02)                      # the two param groups' rates
REFERENCE = Path(__file__).with_name('lr_schedules.npz')

class Decay:
    "A callable object with state, for LambdaLR (its attributes are what state_dict saves)."
    def __init__(self, base): self.base = base
    def __call__(self, t): return self.base ** t

def _sin_scale(x): return 0.5 * (1 + math.sin(x * math.pi / 2))

# name -> (kind of optimizer, build(S, opt))
# kind: 'sgd' (groups have 'momentum'), 'adam' (groups have 'betas')
CASES = {
    'step_7_0.5': ('sgd', lambda S, o: S.StepLR(o, step_size=7, gamma=0.5)),
    'step_1_0.97': ('sgd', lambda S, o: S.StepLR(o, step_size=1, gamma=0.97)),
    'multistep': ('sgd', lambda S, o: S.MultiStepLR(o, [30, 80, 80, 200], gamma=0.3)),
    'multistep_at_0': ('sgd', lambda S, o: S.MultiStepLR(o, [0, 5], gamma=0.5)),
    'constant_default': ('sgd', lambda S, o: S.ConstantLR(o)),
    'constant_0.25_40': ('sgd', lambda S, o: S.ConstantLR(o, factor=0.25, total_iters=40)),
    'constant_1': ('sgd', lambda S, o: S.ConstantLR(o, factor=0.5, total_iters=1)),
    'linear_default': ('sgd', lambda S, o: S.LinearLR(o)),
    'linear_warmup_50': ('sgd', lambda S, o: S.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=50)),
    'linear_to_zero': ('sgd', lambda S, o: S.LinearLR(o, start_factor=1.0, end_factor=0.0, total_iters=100)),
    'linear_0.5_0.2': ('sgd', lambda S, o: S.LinearLR(o, start_factor=0.5, end_factor=0.2, total_iters=30)),
    'exponential_0.99': ('sgd', lambda S, o: S.ExponentialLR(o, gamma=0.99)),
    'exponential_1.005': ('sgd', lambda S, o: S.ExponentialLR(o, gamma=1.005)),
    'polynomial_default': ('sgd', lambda S, o: S.PolynomialLR(o)),
    'polynomial_100_2': ('sgd', lambda S, o: S.PolynomialLR(o, total_iters=100, power=2.0)),
    'polynomial_300_0.5': ('sgd', lambda S, o: S.PolynomialLR(o, total_iters=300, power=0.5)),
    'cosine_100': ('sgd', lambda S, o: S.CosineAnnealingLR(o, T_max=100)),
    'cosine_50_min': ('sgd', lambda S, o: S.CosineAnnealingLR(o, T_max=50, eta_min=0.01)),
    'cosine_1': ('sgd', lambda S, o: S.CosineAnnealingLR(o, T_max=1)),
    'cosine_300': ('sgd', lambda S, o: S.CosineAnnealingLR(o, T_max=300, eta_min=1e-3)),
    'restarts_10': ('sgd', lambda S, o: S.CosineAnnealingWarmRestarts(o, T_0=10)),
    'restarts_7_x2': ('sgd', lambda S, o: S.CosineAnnealingWarmRestarts(o, T_0=7, T_mult=2, eta_min=1e-3)),
    'restarts_1_x3': ('sgd', lambda S, o: S.CosineAnnealingWarmRestarts(o, T_0=1, T_mult=3)),
    'cyclic_triangular': ('sgd', lambda S, o: S.CyclicLR(o, 0.01, 0.1, step_size_up=20)),
    'cyclic_triangular2': ('sgd', lambda S, o: S.CyclicLR(o, [0.01, 0.001], [0.1, 0.05], step_size_up=15, step_size_down=25,
                                                         mode='triangular2', base_momentum=0.85, max_momentum=0.95)),
    'cyclic_exp_range_adam': ('adam', lambda S, o: S.CyclicLR(o, 0.001, 0.01, step_size_up=10, mode='exp_range', gamma=0.99)),
    'cyclic_no_momentum': ('sgd', lambda S, o: S.CyclicLR(o, 0.01, 0.1, step_size_up=33, step_size_down=7, cycle_momentum=False)),
    'cyclic_scale_fn_cycle': ('sgd', lambda S, o: S.CyclicLR(o, 0.01, 0.1, step_size_up=12, scale_fn=_sin_scale)),
    'cyclic_scale_fn_iter': ('sgd', lambda S, o: S.CyclicLR(o, 0.01, 0.1, step_size_up=12, scale_fn=lambda x: 0.999 ** x,
                                                           scale_mode='iterations')),
    'onecycle_cos': ('sgd', lambda S, o: S.OneCycleLR(o, max_lr=0.1, total_steps=N_STEPS)),
    'onecycle_linear': ('sgd', lambda S, o: S.OneCycleLR(o, max_lr=[0.1, 0.05], total_steps=N_STEPS, anneal_strategy='linear')),
    'onecycle_three_phase': ('sgd', lambda S, o: S.OneCycleLR(o, max_lr=0.2, total_steps=N_STEPS, three_phase=True)),
    'onecycle_epochs_adam': ('adam', lambda S, o: S.OneCycleLR(o, max_lr=0.01, epochs=10, steps_per_epoch=30, pct_start=0.25,
                                                              div_factor=10.0, final_div_factor=100.0)),
    'onecycle_three_phase_adam': ('adam', lambda S, o: S.OneCycleLR(o, max_lr=0.01, total_steps=N_STEPS, three_phase=True,
                                                                   base_momentum=0.8, max_momentum=0.9)),
    'onecycle_no_momentum': ('sgd', lambda S, o: S.OneCycleLR(o, max_lr=0.1, total_steps=N_STEPS, pct_start=0.1, cycle_momentum=False)),
    'lambda': ('sgd', lambda S, o: S.LambdaLR(o, lambda t: 0.95 ** t)),
    'lambda_per_group': ('sgd', lambda S, o: S.LambdaLR(o, [lambda t: 1 / (1 + t), Decay(0.99)])),
    'multiplicative': ('sgd', lambda S, o: S.MultiplicativeLR(o, lambda t: 0.99)),
    'multiplicative_per_group': ('sgd', lambda S, o: S.MultiplicativeLR(o, [lambda t: 0.98, lambda t: 1.0 if t % 10 else 0.5])),
    'sequential_linear_cosine': ('sgd', lambda S, o: S.SequentialLR(
        o, [S.LinearLR(o, start_factor=0.1, total_iters=3), S.CosineAnnealingLR(o, T_max=5)], milestones=[3])),
    'sequential_warmup_cosine_long': ('sgd', lambda S, o: S.SequentialLR(
        o, [S.LinearLR(o, start_factor=0.01, total_iters=30), S.CosineAnnealingLR(o, T_max=270)], milestones=[30])),
    'sequential_three': ('sgd', lambda S, o: S.SequentialLR(
        o, [S.LinearLR(o, 0.01, total_iters=20), S.ExponentialLR(o, 0.99), S.StepLR(o, 50, 0.5)], milestones=[20, 100])),
    'sequential_constant_multistep': ('sgd', lambda S, o: S.SequentialLR(
        o, [S.ConstantLR(o, 0.1, total_iters=10), S.MultiStepLR(o, [50, 150], 0.1)], milestones=[10])),
    'sequential_warmup_restarts': ('sgd', lambda S, o: S.SequentialLR(
        o, [S.LinearLR(o, 0.2, total_iters=10), S.CosineAnnealingWarmRestarts(o, T_0=25, T_mult=2)], milestones=[10])),
    'sequential_polynomial_lambda': ('sgd', lambda S, o: S.SequentialLR(
        o, [S.PolynomialLR(o, total_iters=40, power=1.0), S.LambdaLR(o, lambda t: 0.5 * 0.99 ** t)], milestones=[40])),
    'chained_constant_exponential': ('sgd', lambda S, o: S.ChainedScheduler([S.ConstantLR(o, 0.1, total_iters=2), S.ExponentialLR(o, 0.9)])),
    'chained_linear_cosine': ('sgd', lambda S, o: S.ChainedScheduler([S.LinearLR(o, 0.1, total_iters=10), S.CosineAnnealingLR(o, T_max=100)])),
    'chained_step_restarts': ('sgd', lambda S, o: S.ChainedScheduler([S.StepLR(o, 30, 0.5), S.CosineAnnealingWarmRestarts(o, T_0=20)])),
    'chained_multistep_polynomial': ('sgd', lambda S, o: S.ChainedScheduler(
        [S.MultiStepLR(o, [60, 120], 0.5), S.PolynomialLR(o, total_iters=250, power=1.5), S.MultiplicativeLR(o, lambda t: 0.999)])),
}

# ReduceLROnPlateau: name -> (kwargs, metric sequence)
def _metrics(seed, kind):
    rng = np.random.default_rng(seed)
    t = np.arange(N_STEPS)
    if kind == 'loss': return (1 / np.sqrt(t + 1) + 0.02 * rng.standard_normal(N_STEPS)).tolist()
    if kind == 'accuracy': return (1 - 1 / np.sqrt(t + 1) + 0.02 * rng.standard_normal(N_STEPS)).tolist()
    return np.round(rng.uniform(0, 1, N_STEPS), 1).tolist()     # 'coarse': many ties

PLATEAU_CASES = {
    'plateau_default': (dict(), _metrics(0, 'loss')),
    'plateau_min_rel': (dict(mode='min', factor=0.5, patience=5), _metrics(1, 'loss')),
    'plateau_min_abs_cooldown': (dict(mode='min', factor=0.5, patience=3, threshold=0.01, threshold_mode='abs', cooldown=4),
                                 _metrics(2, 'loss')),
    'plateau_max_rel': (dict(mode='max', factor=0.7, patience=4, threshold=0.001), _metrics(3, 'accuracy')),
    'plateau_max_abs_min_lr': (dict(mode='max', factor=0.5, patience=2, threshold=0.005, threshold_mode='abs',
                                    min_lr=[0.01, 0.0005]), _metrics(4, 'accuracy')),
    'plateau_eps': (dict(factor=0.5, patience=0, eps=0.004, min_lr=0.001), _metrics(5, 'coarse')),
    'plateau_patience_0': (dict(patience=0, factor=0.9), _metrics(6, 'coarse')),
}

def group_values(opt):
    "(lr of each group, momentum or β₁ of each group, or NaN when the group has neither)."
    lrs = [float(g['lr']) for g in opt.param_groups]
    moms = [float(g['betas'][0]) if 'betas' in g else float(g['momentum']) if 'momentum' in g else math.nan
            for g in opt.param_groups]
    return lrs, moms

def run(sched, opt, n=N_STEPS, metrics=None, opt_step=lambda: None):
    "Arrays (n + 1, groups): lr, momentum/β₁, and get_last_lr(), at construction and after each step."
    lrs, moms, last = [], [], []
    def record():
        a, b = group_values(opt)
        lrs.append(a); moms.append(b); last.append([float(x) for x in sched.get_last_lr()])
    record()
    for i in range(n):
        opt_step()
        if metrics is None: sched.step()
        else: sched.step(metrics[i])
        record()
    return np.array(lrs), np.array(moms), np.array(last)

def torch_optimizer(kind):
    import torch
    p1, p2 = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))
    groups = [{'params': [p1], 'lr': LRS[0]}, {'params': [p2], 'lr': LRS[1]}]
    if kind == 'adam': return torch.optim.Adam(groups, lr=LRS[0], betas=(0.9, 0.999))
    return torch.optim.SGD(groups, lr=LRS[0], momentum=0.9)

def torch_run(name):
    "PyTorch's sequences for case `name`."
    import torch.optim.lr_scheduler as S
    if name in PLATEAU_CASES:
        kwargs, metrics = PLATEAU_CASES[name]
        opt = torch_optimizer('sgd')
        return run(S.ReduceLROnPlateau(opt, **kwargs), opt, metrics=metrics, opt_step=opt.step)
    kind, build = CASES[name]
    opt = torch_optimizer(kind)
    return run(build(S, opt), opt, opt_step=opt.step)

def main():
    import torch
    assert torch.__version__.startswith('2.13'), f"the reference sequences come from torch 2.13, found {torch.__version__}"
    out = {}
    for name in list(CASES) + list(PLATEAU_CASES):
        lrs, moms, last = torch_run(name)
        out[f'{name}/lr'], out[f'{name}/momentum'], out[f'{name}/last_lr'] = lrs, moms, last
    np.savez_compressed(REFERENCE, **out)
    print(f"wrote {len(CASES) + len(PLATEAU_CASES)} cases x {N_STEPS + 1} steps to {REFERENCE}")

if __name__ == '__main__': main()
