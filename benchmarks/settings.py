"""Step time of minima's optimizers with settings beyond the defaults, on one float32 tensor of 10M values.

Settings such as L2 weight decay, `maximize` or Nesterov momentum give an update function more
temporaries; this shows what each setting costs per step. The optimizers take turns
(`minima.bench.time_steps`). Run: `OPENBLAS_NUM_THREADS=1 python benchmarks/settings.py`.
"""
import minima.optim as optim
from minima.bench import Stepper, make_arrays, time_steps
from minima.nn import Parameter

SETTINGS = {
    'SGD momentum=0.9, dampening=0':                 ('SGD', dict(lr=0.01, momentum=0.9, dampening=0)),
    'SGD momentum=0.9, dampening=0, nesterov':       ('SGD', dict(lr=0.01, momentum=0.9, dampening=0, nesterov=True)),
    'SGD momentum=0.9, weight_decay=1e-4 (L2)':      ('SGD', dict(lr=0.01, momentum=0.9, weight_decay=1e-4)),
    'Adagrad':                                       ('Adagrad', dict(lr=0.01)),
    'RMSprop':                                       ('RMSprop', dict(lr=0.01)),
    'RMSprop centered, momentum=0.9':                ('RMSprop', dict(lr=0.01, centered=True, momentum=0.9)),
    'Adam':                                          ('Adam', dict(lr=1e-3)),
    'Adam weight_decay=1e-2 (L2)':                   ('Adam', dict(lr=1e-3, weight_decay=1e-2)),
    'Adam maximize':                                 ('Adam', dict(lr=1e-3, maximize=True)),
    'AdamW weight_decay=1e-2':                       ('AdamW', dict(lr=1e-3, weight_decay=1e-2)),
    'NAdam weight_decay=1e-2 (L2)':                  ('NAdam', dict(lr=1e-3, weight_decay=1e-2)),
}

def main(n:int=10**7):
    (data, grad), = make_arrays((1, n))
    steppers = {}
    for label, (name, kw) in SETTINGS.items():
        p = Parameter(data.copy()); p.grad = grad.copy()
        opt = getattr(optim, name)([p], **kw); opt.step()   # the first step creates the state
        steppers[label] = Stepper(opt.step, None)
        print('.', end='', flush=True)
    medians = time_steps(steppers)
    print(f"\n\none tensor of {n:,} float32 values, median ms per step\n\n| setting | ms |\n|---|---|")
    for label, t in medians.items(): print(f"| {label} | {t * 1e3:.2f} |")

if __name__ == '__main__': main()
