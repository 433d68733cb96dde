"""What the engine buys: minima's step time with the engine (flat arrays, chunks, two threads, lent
scratch memory) and with the core's plain loop over parameters, in turns on the same layouts.

Both give the same bits (tests/test_engine.py); only the time differs. The optimizers take turns
(`minima.bench.time_steps`). Run: `OPENBLAS_NUM_THREADS=1 python benchmarks/engine.py`.
"""
from minima.bench import ALGORITHMS, make_arrays, minima_stepper, time_steps, layout_name

LAYOUTS = [(1, 10**7), (1000, 10**4), (10**4, 100)]

def main(algos=('adam', 'sgd_momentum'), layouts=LAYOUTS):
    print('| algorithm | layout | engine ms | core loop ms | core loop / engine |\n|---|---|---|---|---|')
    for key in algos:
        for layout in layouts:
            arrays, steppers = make_arrays(layout), {}
            for name, on in (('engine', True), ('core loop', False)):
                steppers[name] = minima_stepper(ALGORITHMS[key], arrays)
                steppers[name].step.__self__.engine = on   # the optimizer behind the bound `step`
                steppers[name].step()   # the first step creates the state; it is never timed
            del arrays
            t = time_steps(steppers, repeats=9)
            print(f"| {ALGORITHMS[key].label} | {layout_name(layout)} | {t['engine'] * 1e3:.2f} | {t['core loop'] * 1e3:.2f} | "
                  f"{t['core loop'] / t['engine']:.2f} |", flush=True)

if __name__ == '__main__': main()
