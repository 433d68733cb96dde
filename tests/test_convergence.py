"""Every optimizer converges on a convex quadratic and on the Rosenbrock function from a fixed start.

The learning rate of each algorithm was picked from {1e-4, 3e-4, ..., 1, 3} as one that converges
(most algorithms converge for several), and the step budget is 1.4 to 3 times the number of
steps it needed when this file was written (`python tests/test_convergence.py` prints them). AdamW
runs with weight_decay=1e-4: its decoupled decay pulls towards zero, so it does not settle exactly
at the minimizer; with 1e-4 it stays within the tolerance. Convergence means: for the whole last tenth of the run,
every coordinate is within `tol` of the minimizer (1e-4 on the quadratic, 1e-2 on Rosenbrock).
"""
import numpy as np
import pytest
from minima.nn import Parameter
from minima.optim.sgd import SGD
from minima.optim.adaptive import Adagrad, AdaGrad, RMSprop, RMSProp, Adadelta
from minima.optim.adam import Adam, AdamW, Adamax, NAdam, RAdam

# convex quadratic f(x) = 1/2 sum h_i (x_i - c_i)^2, curvatures from 1 to 100 (condition number 100)
H = np.logspace(0, 2, 6)
C = np.array([1.0, -2.0, 3.0, 0.5, -1.0, 2.0])
quadratic_grad = lambda x: H * (x - C)

# Rosenbrock f(x, y) = (1 - x)^2 + 100 (y - x^2)^2, minimum at (1, 1), from (-1.5, 2)
rosenbrock_grad = lambda x: np.array([-2 * (1 - x[0]) - 400 * x[0] * (x[1] - x[0] ** 2), 200 * (x[1] - x[0] ** 2)])

# (id, class, kwargs on the quadratic, steps, kwargs on Rosenbrock, steps)
SETTINGS = [
    ('SGD', SGD, dict(lr=0.01), 1500, dict(lr=1e-3), 18000),
    ('SGD momentum (moving average)', SGD, dict(lr=0.1, momentum=0.9, dampening=0.9, momentum_from_zero=True), 400,
     dict(lr=0.01, momentum=0.9, dampening=0.9, momentum_from_zero=True), 2000),
    ('SGD momentum', SGD, dict(lr=0.01, momentum=0.9), 400, dict(lr=1e-3, momentum=0.9), 2000),
    ('SGD Nesterov', SGD, dict(lr=0.01, momentum=0.9, dampening=0, nesterov=True), 300, dict(lr=1e-3, momentum=0.9, dampening=0, nesterov=True), 2000),
    ('Adagrad', Adagrad, dict(lr=1.0), 100, dict(lr=1.0), 13000),
    ('AdaGrad', AdaGrad, dict(lr=1.0), 100, dict(lr=1.0), 13000),
    ('RMSprop', RMSprop, dict(lr=0.01), 900, dict(lr=3e-3), 7500),
    ('RMSProp', RMSProp, dict(lr=0.03), 300, dict(lr=3e-3), 7500),
    ('Adadelta', Adadelta, dict(lr=3.0), 700, dict(lr=0.03), 16000),
    ('Adam', Adam, dict(lr=0.1), 400, dict(lr=0.01), 4500),
    ('AdamW', AdamW, dict(lr=0.1, weight_decay=1e-4), 1000, dict(lr=0.01, weight_decay=1e-4), 9000),
    ('Adam AMSGrad', Adam, dict(lr=0.1, amsgrad=True), 400, dict(lr=0.01, amsgrad=True), 9000),
    ('Adamax', Adamax, dict(lr=1.0), 400, dict(lr=0.1), 3500),
    ('NAdam', NAdam, dict(lr=0.1), 300, dict(lr=0.01), 7000),
    ('RAdam', RAdam, dict(lr=0.03), 900, dict(lr=0.01), 9000),
]

def minimize(cls, kwargs, grad_fn, x0, steps):
    "Run the optimizer class on a Parameter, feeding the analytic gradient; return all iterates."
    p = Parameter(np.array(x0, dtype=np.float64))
    opt = cls([p], **kwargs)
    xs = np.empty((steps, len(x0)))
    for t in range(steps):
        p.grad = grad_fn(p.data)
        opt.step()
        xs[t] = p.data
    return xs

def steps_to_stay_within(xs, target, tol):
    "Number of steps after which every later iterate is within tol of target (None if never)."
    bad = np.nonzero(~(np.max(np.abs(xs - target), axis=1) < tol))[0]
    return 0 if len(bad) == 0 else (None if bad[-1] == len(xs) - 1 else int(bad[-1]) + 1)

def check(xs, target, tol):
    tail = xs[-max(1, len(xs) // 10):]
    err = np.max(np.abs(tail - target))
    assert err < tol, f'max error over the last tenth of the run: {err:.3g} (tolerance {tol:g})'

@pytest.mark.parametrize('name,cls,kw,steps', [(s[0], s[1], s[2], s[3]) for s in SETTINGS], ids=[s[0] for s in SETTINGS])
def test_converges_on_quadratic(name, cls, kw, steps):
    check(minimize(cls, kw, quadratic_grad, np.zeros(6), steps), C, 1e-4)

@pytest.mark.parametrize('name,cls,kw,steps', [(s[0], s[1], s[4], s[5]) for s in SETTINGS], ids=[s[0] for s in SETTINGS])
def test_converges_on_rosenbrock(name, cls, kw, steps):
    check(minimize(cls, kw, rosenbrock_grad, (-1.5, 2.0), steps), np.ones(2), 1e-2)

def test_every_class_is_covered():
    assert {s[1] for s in SETTINGS} == {SGD, Adagrad, AdaGrad, RMSprop, RMSProp, Adadelta, Adam, AdamW, Adamax, NAdam, RAdam}

if __name__ == '__main__':   # print how many steps each setting needs
    for name, cls, kq, nq, kr, nr in SETTINGS:
        q = steps_to_stay_within(minimize(cls, kq, quadratic_grad, np.zeros(6), nq), C, 1e-4)
        r = steps_to_stay_within(minimize(cls, kr, rosenbrock_grad, (-1.5, 2.0), nr), np.ones(2), 1e-2)
        print(f'{name:32s} quadratic {q} of {nq}   rosenbrock {r} of {nr}')
