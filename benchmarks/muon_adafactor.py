"""Step time of minima's Muon and Adafactor against torch.optim's, on the same float32 matrices in the same run.

Each row: one optimizer over one set of matrices; the median seconds per step of minima and of torch (for Adafactor
also torch's `foreach=True` path), timed in interleaved turns after a warm-up (`minima.bench.time_steps`), and the
ratio minima / torch (below 1: minima is faster). torch's Muon runs its Newton–Schulz iteration in bfloat16, minima's
in float32 (the parameter's dtype), so the Muon rows compare different arithmetic on the same problem.
Run: `OPENBLAS_NUM_THREADS=1 python benchmarks/muon_adafactor.py` (`--quick` for small matrices).
"""
import sys
import numpy as np
from minima.bench import Stepper, time_steps

LAYOUTS = {'2 x 1024x1024': [(1024, 1024)] * 2, '4096x1024': [(4096, 1024)]}
QUICK_LAYOUTS = {'2 x 128x128': [(128, 128)] * 2, '512x128': [(512, 128)]}
OPTIMIZERS = {'Muon': dict(lr=0.02), 'Adafactor': dict()}
TORCH_VARIANTS = {'Muon': {'torch': {}}, 'Adafactor': {'torch': dict(foreach=False), 'torch foreach': dict(foreach=True)}}

def make_arrays(shapes, seed=0):
    "(parameter, gradient) float32 pairs of the given shapes."
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(s, dtype=np.float32), rng.standard_normal(s, dtype=np.float32)) for s in shapes]

def minima_stepper(name, kwargs, arrays):
    from minima.nn import Parameter
    from minima.optim.muon import Muon
    from minima.optim.adafactor import Adafactor
    params = []
    for data, grad in arrays:
        p = Parameter(data.copy()); p.grad = grad.copy(); params.append(p)
    opt = {'Muon': Muon, 'Adafactor': Adafactor}[name](params, **kwargs)
    return Stepper(opt.step, lambda: [p.data for p in params])

def torch_stepper(name, kwargs, arrays):
    import torch
    params = []
    for data, grad in arrays:
        p = torch.tensor(data, requires_grad=True); p.grad = torch.tensor(grad); params.append(p)
    opt = getattr(torch.optim, name)(params, **kwargs)
    return Stepper(opt.step, lambda: [p.detach().numpy() for p in params])

def rows(layouts=LAYOUTS, repeats=5, max_seconds=60):
    """One row per optimizer and layout: (optimizer, layout, {contender: median seconds per step}, {torch variant: ratio
    minima / that variant})."""
    out = []
    for name, kwargs in OPTIMIZERS.items():
        for label, shapes in layouts.items():
            arrays = make_arrays(shapes)
            steppers = {'minima': minima_stepper(name, kwargs, arrays)}
            for variant, extra in TORCH_VARIANTS[name].items():
                steppers[variant] = torch_stepper(name, {**kwargs, **extra}, arrays)
            for s in steppers.values(): s.step()   # the first step creates the state; never timed
            medians = time_steps(steppers, warmup=1, repeats=repeats, max_seconds=max_seconds, settle=0, settle_seconds=0)
            ratios = {v: medians['minima'] / medians[v] for v in TORCH_VARIANTS[name]}
            out.append((name, label, medians, ratios))
            print('.', end='', file=sys.stderr, flush=True)
    return out

def table(rs):
    "The rows as a markdown table: milliseconds per step and ratios."
    lines = ['| optimizer | matrices (float32) | minima ms | torch ms | minima / torch | torch foreach ms | minima / foreach |',
             '|---|---|---|---|---|---|---|']
    for name, label, med, ratio in rs:
        fe = (f"{med['torch foreach'] * 1e3:.1f} | {ratio['torch foreach']:.2f}" if 'torch foreach' in med else '- | -')
        lines.append(f"| {name} | {label} | {med['minima'] * 1e3:.1f} | {med['torch'] * 1e3:.1f} | {ratio['torch']:.2f} | {fe} |")
    return '\n'.join(lines)

if __name__ == '__main__':
    quick = '--quick' in sys.argv[1:]
    print(table(rows(QUICK_LAYOUTS if quick else LAYOUTS)))
