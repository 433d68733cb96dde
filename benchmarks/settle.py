"""What the contender that runs right after torch pays, with and without time to settle.

Times two identical minima SGD-momentum optimizers (`a`, `b`) and torch's default and fused paths on
one float32 tensor of 10M values with `minima.bench.time_steps`, the two minima optimizers in both
orders, with one untimed step per turn (`settle_seconds=0`) and with 50 ms of untimed steps (the
default). Run: `OPENBLAS_NUM_THREADS=1 python benchmarks/settle.py`.
"""
from minima.bench import ALGORITHMS, make_arrays, minima_stepper, torch_stepper, time_steps

def main(n:int=10**7, algo:str='sgd_momentum'):
    algo, arrays = ALGORITHMS[algo], make_arrays((1, n))
    steppers = dict(a=minima_stepper(algo, arrays), b=minima_stepper(algo, arrays),
                    torch=torch_stepper(algo, arrays, 'torch'), fused=torch_stepper(algo, arrays, 'fused'))
    for s in steppers.values(): s.step()   # the first step creates the state
    print(f"{algo.label}, one tensor of {n:,} values, ms per step (median of 15 turns)\n")
    print('| untimed steps per turn | order | a | b | torch | fused |\n|---|---|---|---|---|---|')
    for settle_seconds, what in ((0, 'one'), (0.05, 'for 50 ms')):
        for order in (['a', 'b', 'torch', 'fused'], ['b', 'a', 'torch', 'fused']):
            med = time_steps({k: steppers[k] for k in order}, settle_seconds=settle_seconds)
            print(f"| {what} | {', '.join(order)} | " + ' | '.join(f"{med[k] * 1e3:.2f}" for k in ['a', 'b', 'torch', 'fused']) + ' |', flush=True)

if __name__ == '__main__': main()
