"""Step time of minima's optimizers with settings beyond the defaults, on one float32 tensor of 10M values.

Settings such as L2 weight decay, `maximize` or Nesterov momentum give an update function more
temporaries (`scratch` arrays, which the engine lends); this shows what each setting costs per step. The optimizers take turns
(`minima.bench.time_steps`). Run: `OPENBLAS_NUM_THREADS=1 python benchmarks/settings.py`.
"""
from minima.bench import Algorithm, make_arrays, minima_stepper, time_steps

# (label, minima class, settings, parameter-sized state buffers)
SETTINGS = [Algorithm(label, label, name, name, kw, n_state) for label, name, kw, n_state in [
    ('SGD momentum=0.9',                         'SGD',     dict(lr=0.01, momentum=0.9), 1),
    ('SGD momentum=0.9, nesterov',               'SGD',     dict(lr=0.01, momentum=0.9, nesterov=True), 1),
    ('SGD momentum=0.9, weight_decay=1e-4 (L2)', 'SGD',     dict(lr=0.01, momentum=0.9, weight_decay=1e-4), 1),
    ('Adagrad',                                  'Adagrad', dict(lr=0.01), 1),
    ('RMSprop',                                  'RMSprop', dict(lr=0.01), 1),
    ('RMSprop centered, momentum=0.9',           'RMSprop', dict(lr=0.01, centered=True, momentum=0.9), 3),
    ('Adam',                                     'Adam',    dict(lr=1e-3), 2),
    ('Adam weight_decay=1e-2 (L2)',              'Adam',    dict(lr=1e-3, weight_decay=1e-2), 2),
    ('Adam maximize',                            'Adam',    dict(lr=1e-3, maximize=True), 2),
    ('AdamW weight_decay=1e-2',                  'AdamW',   dict(lr=1e-3, weight_decay=1e-2), 2),
    ('NAdam weight_decay=1e-2 (L2)',             'NAdam',   dict(lr=1e-3, weight_decay=1e-2), 2),
]]

def main(n:int=10**7):
    arrays, steppers = make_arrays((1, n)), {}
    for algo in SETTINGS:
        steppers[algo.label] = minima_stepper(algo, arrays)
        steppers[algo.label].step()   # the first step creates the state; it is never timed
        print('.', end='', flush=True)
    medians = time_steps(steppers)
    print(f"\n\none tensor of {n:,} float32 values, median ms per step\n\n| setting | ms |\n|---|---|")
    for label, t in medians.items(): print(f"| {label} | {t * 1e3:.2f} |")

if __name__ == '__main__': main()
