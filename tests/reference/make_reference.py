"""Reference trajectories of torch.optim for minima's parity tests.

Run from the repository root:  python tests/reference/make_reference.py
It writes tests/reference/optim_trajectories.npz: for every case in CASES and for float64 and float32,
torch.optim's parameters every SNAPSHOT_EVERY steps and its final state buffers, together with the
gradients fed at every step and the initial parameters. tests/test_optim_parity.py replays the same
gradients through minima and compares. The gradients do not depend on the parameters, so both
libraries see exactly the same gradient at every step.
"""
import json, os, sys
import numpy as np

SHAPES = [(4, 5), (7,), (2, 3, 2)]   # three parameters, 39 values
STEPS = 120
SNAPSHOT_EVERY = 10
PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'optim_trajectories.npz')

# (case id, torch class, torch kwargs, minima class, minima kwargs): the minima call that reproduces the torch call
CASES = [
    ('sgd', 'SGD', dict(lr=0.05), 'SGD', dict(lr=0.05)),
    ('sgd_wd_maximize', 'SGD', dict(lr=0.05, weight_decay=0.1, maximize=True), 'SGD', dict(lr=0.05, weight_decay=0.1, maximize=True)),
    ('sgd_momentum', 'SGD', dict(lr=0.05, momentum=0.9), 'SGD', dict(lr=0.05, momentum=0.9)),
    ('sgd_momentum_dampening_wd_maximize', 'SGD', dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01, maximize=True),
     'SGD', dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01, maximize=True)),
    ('sgd_nesterov_wd', 'SGD', dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
     'SGD', dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ('sgd_moving_average_momentum', 'SGD', dict(lr=0.05 * (1 - 0.9), momentum=0.9), 'SGD', dict(lr=0.05, momentum=0.9, dampening=0.9, momentum_from_zero=True)),
    ('adagrad', 'Adagrad', dict(lr=0.1), 'Adagrad', dict(lr=0.1)),
    ('adagrad_initial_accumulator', 'Adagrad', dict(lr=0.1, initial_accumulator_value=1.0), 'Adagrad', dict(lr=0.1, initial_accumulator_value=1.0)),
    ('adagrad_all', 'Adagrad', dict(lr=0.1, lr_decay=0.01, weight_decay=0.05, initial_accumulator_value=0.1, eps=1e-6, maximize=True),
     'Adagrad', dict(lr=0.1, lr_decay=0.01, weight_decay=0.05, initial_accumulator_value=0.1, eps=1e-6, maximize=True)),
    ('adagrad_as_minima_AdaGrad', 'Adagrad', dict(lr=1e-3, eps=1e-7), 'AdaGrad', dict(lr=1e-3, eps=1e-7)),
    ('rmsprop', 'RMSprop', dict(lr=0.01), 'RMSprop', dict(lr=0.01)),
    ('rmsprop_centered', 'RMSprop', dict(lr=0.01, centered=True), 'RMSprop', dict(lr=0.01, centered=True)),
    ('rmsprop_momentum', 'RMSprop', dict(lr=0.01, momentum=0.9), 'RMSprop', dict(lr=0.01, momentum=0.9)),
    ('rmsprop_all', 'RMSprop', dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.5, centered=True, maximize=True),
     'RMSprop', dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.5, centered=True, maximize=True)),
    ('rmsprop_as_minima_RMSProp', 'RMSprop', dict(lr=1e-3, alpha=0.9, eps=1e-7), 'RMSProp', dict(lr=1e-3, alpha=0.9, eps=1e-7)),
    ('adadelta', 'Adadelta', dict(), 'Adadelta', dict()),
    ('adadelta_all', 'Adadelta', dict(lr=0.5, rho=0.95, eps=1e-5, weight_decay=0.1, maximize=True),
     'Adadelta', dict(lr=0.5, rho=0.95, eps=1e-5, weight_decay=0.1, maximize=True)),
    ('adam', 'Adam', dict(lr=0.01), 'Adam', dict(lr=0.01)),
    ('adam_amsgrad', 'Adam', dict(lr=0.01, amsgrad=True), 'Adam', dict(lr=0.01, amsgrad=True)),
    ('adam_l2_maximize_betas', 'Adam', dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, maximize=True),
     'Adam', dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, maximize=True)),
    ('adam_decoupled_amsgrad', 'Adam', dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, amsgrad=True),
     'Adam', dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, amsgrad=True)),
    ('adamw', 'AdamW', dict(lr=0.01), 'AdamW', dict(lr=0.01)),
    ('adamw_amsgrad_maximize', 'AdamW', dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True),
     'AdamW', dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True)),
    ('adamax', 'Adamax', dict(lr=0.01), 'Adamax', dict(lr=0.01)),
    ('adamax_all', 'Adamax', dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, maximize=True),
     'Adamax', dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, maximize=True)),
    ('nadam', 'NAdam', dict(lr=0.01), 'NAdam', dict(lr=0.01)),
    ('nadam_l2_maximize', 'NAdam', dict(lr=0.01, weight_decay=0.1, momentum_decay=0.01, maximize=True),
     'NAdam', dict(lr=0.01, weight_decay=0.1, momentum_decay=0.01, maximize=True)),
    ('nadam_decoupled', 'NAdam', dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
     'NAdam', dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ('radam', 'RAdam', dict(lr=0.01), 'RAdam', dict(lr=0.01)),
    ('radam_l2_maximize', 'RAdam', dict(lr=0.01, weight_decay=0.1, maximize=True), 'RAdam', dict(lr=0.01, weight_decay=0.1, maximize=True)),
    ('radam_decoupled', 'RAdam', dict(lr=0.01, betas=(0.9, 0.99), weight_decay=0.1, decoupled_weight_decay=True),
     'RAdam', dict(lr=0.01, betas=(0.9, 0.99), weight_decay=0.1, decoupled_weight_decay=True)),
]

def make_inputs(dtype, shapes=SHAPES, steps=STEPS, seed=0):
    """Initial parameters and a gradient sequence: per-value scales from 1e-3 to 10, a per-step scale,
    a nonzero mean (so momentum builds up), sign changes and a few exact zeros."""
    rng = np.random.default_rng(seed)
    n = sum(int(np.prod(s)) for s in shapes)
    init = rng.standard_normal(n)
    scale = 10.0 ** rng.uniform(-3, 1, n)
    mean = rng.standard_normal(n) * scale
    grads = (mean + scale * rng.standard_normal((steps, n)) * 10.0 ** rng.uniform(-1, 0.5, (steps, 1)))
    grads[rng.random((steps, n)) < 0.05] = 0.0
    return init.astype(dtype), grads.astype(dtype)

def split(flat, shapes=SHAPES):
    "Cut a flat vector into arrays of the given shapes."
    out, i = [], 0
    for s in shapes:
        k = int(np.prod(s)); out.append(flat[i:i + k].reshape(s)); i += k
    return out

class torch_default_dtype:
    "torch keeps NAdam's mu_product in the default dtype: match it to the run's dtype."
    def __init__(self, dtype): self.dtype = dtype
    def __enter__(self):
        import torch
        self.prev = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64 if self.dtype == np.float64 else torch.float32)
    def __exit__(self, *exc):
        import torch
        torch.set_default_dtype(self.prev)

def torch_optimizer(name, kwargs, params):
    import torch
    return getattr(torch.optim, name)(params, foreach=False, **kwargs)

def torch_state(opt, params):
    "Final state of a torch optimizer as {buffer name: flat numpy array over all parameters}, plus mu_product."
    out = {}
    for key in opt.state[params[0]]:
        if key == 'step': continue
        vals = [opt.state[p][key] for p in params]
        if any(v is None for v in vals): continue
        out[key] = np.concatenate([v.detach().numpy().reshape(-1) for v in vals])
    return out

def run_torch(name, kwargs, init, grads, shapes=SHAPES, every=1):
    "torch's flat parameters after every `every`-th step (and the last), and its final state."
    import torch
    with torch_default_dtype(init.dtype):
        params = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in split(init, shapes)]
        opt = torch_optimizer(name, kwargs, params)
        snaps = []
        for t in range(1, len(grads) + 1):
            for p, g in zip(params, split(grads[t - 1], shapes)): p.grad = torch.from_numpy(g.copy())
            opt.step()
            if t % every == 0 or t == len(grads):
                snaps.append(np.concatenate([p.detach().numpy().reshape(-1) for p in params]))
        return np.array(snaps), torch_state(opt, params)

def main():
    import torch
    assert torch.__version__.startswith('2.13'), torch.__version__
    arrays, meta = {}, {'torch': torch.__version__, 'shapes': SHAPES, 'steps': STEPS, 'every': SNAPSHOT_EVERY, 'cases': []}
    for dtype in (np.float64, np.float32):
        dn = np.dtype(dtype).name
        init, grads = make_inputs(dtype)
        arrays[f'init|{dn}'], arrays[f'grads|{dn}'] = init, grads
        for case, tname, tkw, mname, mkw in CASES:
            snaps, state = run_torch(tname, tkw, init, grads, every=SNAPSHOT_EVERY)
            arrays[f'{case}|{dn}|params'] = snaps
            for k, v in state.items(): arrays[f'{case}|{dn}|state|{k}'] = v
    for case, tname, tkw, mname, mkw in CASES:
        meta['cases'].append(dict(id=case, torch=tname, torch_kwargs=tkw, minima=mname, minima_kwargs=mkw))
    arrays['meta'] = np.array(json.dumps(meta))
    np.savez_compressed(PATH, **arrays)
    print(f'wrote {PATH}: {len(CASES)} cases x 2 dtypes, {os.path.getsize(PATH) / 1e3:.0f} kB')

if __name__ == '__main__':
    main()
