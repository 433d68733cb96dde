"""After its first step, an optimizer step allocates no parameter-sized array, the optimizer
state holds exactly the algorithm's buffers, and the chunked execution of a step gives the same
bits as one call of the update function on the whole arrays.

Allocation is measured with tracemalloc, which sees numpy's array data as well as Python objects:
the peak traced memory during a step must stay far below the size of one parameter. This is a test
of memory, not of time."""
import tracemalloc
import numpy as np
import pytest
import minima.optim as optim
import minima.optim.base as base
import minima.optim.engine as engine
from minima.nn import Parameter

N = 2**23                     # elements of the parameter under test: 32 MiB in float32
BAR = N * 4 // 4              # a step may allocate at most a quarter of one parameter

# (optimizer class, settings, parameter-sized state buffers the algorithm keeps)
CASES = [
    ('SGD',     dict(lr=0.01),                                            0),
    ('SGD',     dict(lr=0.01, momentum=0.9),                              1),
    ('SGD',     dict(lr=0.01, momentum=0.9, dampening=0, nesterov=True, weight_decay=1e-4), 1),
    ('Adagrad', dict(lr=0.01),                                            1),
    ('RMSprop', dict(lr=0.01),                                            1),
    ('RMSprop', dict(lr=0.01, momentum=0.9, centered=True),               3),
    ('Adam',    dict(lr=1e-3),                                            2),
    ('Adam',    dict(lr=1e-3, weight_decay=1e-2, maximize=True),          2),
    ('Adam',    dict(lr=1e-3, amsgrad=True),                              3),
    ('AdamW',   dict(lr=1e-3),                                            2),
    ('AdamW',   dict(lr=1e-3, amsgrad=True),                              3),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for name, kw, _ in CASES]

def make_param(n=N, seed=0):
    rng = np.random.default_rng(seed)
    p = Parameter(rng.standard_normal(n, dtype=np.float32))
    p.grad = rng.standard_normal(n, dtype=np.float32)
    return p

def peak_during(fn):
    "Peak bytes traced by tracemalloc while `fn()` runs."
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

def test_the_measure_sees_a_parameter_sized_temporary():
    # the textbook update `p -= lr * g` builds `lr * g` first: the measure must catch it
    p = make_param()
    def allocating_step(): p.data -= 0.01 * p.grad
    assert peak_during(allocating_step) >= N * 4
    def in_place_step(): np.multiply(p.grad, 0.01, out=p.grad); np.subtract(p.data, p.grad, out=p.data)
    assert peak_during(in_place_step) < BAR

@pytest.mark.parametrize('name,kw,n_state', CASES, ids=IDS)
def test_step_allocates_no_parameter_sized_array(name, kw, n_state):
    p = make_param()
    opt = getattr(optim, name)([p], **kw)
    opt.step()  # the first step creates the state
    data_before = p.data
    peak = peak_during(lambda: (opt.step(), opt.step()))
    assert peak < BAR, f"{name}{kw}: a step allocated {peak} bytes; one parameter is {N * 4}"
    assert p.data is data_before  # updated in place, never rebound

@pytest.mark.parametrize('name,kw,n_state', CASES, ids=IDS)
def test_state_holds_exactly_the_algorithms_buffers(name, kw, n_state):
    params = [make_param(1000, seed=0), make_param(37, seed=1)]
    opt = getattr(optim, name)(params, **kw)
    opt.step(); opt.step()
    for p in params:
        arrays = [v for v in opt.state[p].values() if isinstance(v, np.ndarray) and v.ndim > 0]
        assert len(arrays) == n_state, f"{name}{kw}: {sorted(opt.state[p])}"
        assert all(a.shape == p.data.shape and a.dtype == p.data.dtype for a in arrays)
        # no two buffers share memory, and none is the parameter or its gradient
        for i, a in enumerate(arrays):
            assert not np.shares_memory(a, p.data) and not np.shares_memory(a, p.grad)
            assert not any(np.shares_memory(a, b) for b in arrays[i + 1:])

@pytest.mark.parametrize('options', [{}, dict(nonfinite='raise'), dict(clip_norm=1.0)], ids=['default', 'nonfinite-raise', 'clip_norm'])
def test_many_small_parameters_allocate_little(options):
    # 4000 parameters of 1000 elements (16 MB), updated in flat runs: a step may allocate the update
    # function's chunk-sized temporaries on each of its two threads and a little bookkeeping per
    # parameter (an eighth of its size at most), never a copy of everything; the same when every
    # gradient is checked for NaN, and when every gradient is rescaled (clip_norm)
    n, size = 4000, 1000
    params = [make_param(size, seed=s) for s in range(n)]
    opt = optim.Adam(params, lr=1e-3, **options)
    opt.step()
    peak = peak_during(opt.step)
    bar = 2 * engine.CHUNK_SIZE * 4 + n * size * 4 // 8
    assert bar < n * size * 4 // 3
    assert peak < bar, f"a step over {n} small parameters allocated {peak} bytes"

@pytest.mark.parametrize('name,kw,n_state', CASES, ids=IDS)
def test_chunked_step_is_bit_identical_to_one_whole_array_update(name, kw, n_state):
    # large enough for the base to split it into chunks (and between threads); not a multiple of a chunk
    p = make_param(2**22 + 12345)
    opt = getattr(optim, name)([p], **kw)
    group = opt.param_groups[0]
    hyper = {k: group[k] for k in type(opt).hyperparameters}
    theta = p.data.copy()
    state = {'step': 0, **opt.init_state(theta, group)}
    for t in (1, 2, 3):
        opt.step()
        state['step'] = t
        type(opt).update(theta, p.grad, state, step=t, **hyper)
        np.testing.assert_array_equal(p.data, theta)
    assert sorted(state) == sorted(opt.state[p])
    for b in state: np.testing.assert_array_equal(opt.state[p][b], state[b])

BATCH_CASES = CASES + [('NAdam', dict(lr=1e-3), 2), ('RAdam', dict(lr=1e-3), 2), ('Adamax', dict(lr=1e-3), 2),
                       ('Adadelta', dict(lr=1.0), 2),
                       ('Adam', dict(lr=1e-3, clip_norm=3.0), 2), ('SGD', dict(lr=0.01, momentum=0.9, clip_norm=10.0), 1),
                       ('NAdam', dict(lr=1e-3, clip_norm=3.0), 2)]   # gradients of 1 to 576 values: some rescaled, some not

@pytest.mark.parametrize('chunk', [None, 50], ids=['chunks-of-the-default-size', 'chunks-of-50'])
@pytest.mark.parametrize('name,kw,n_state', BATCH_CASES, ids=[f'{c[0]}-{c[1]}' for c in BATCH_CASES])
def test_parameters_in_flat_arrays_are_bit_identical_to_one_call_each(name, kw, n_state, chunk, monkeypatch):
    # parameters of several shapes, updated in runs over the flat arrays; some miss a gradient on some
    # steps, so their step counts (and NAdam's running product) differ and must not share a call; with
    # chunks of 50 values (and two threads), chunks start and end inside parameters
    if chunk: monkeypatch.setattr(engine, 'CHUNK_SIZE', chunk); monkeypatch.setattr(engine, 'PARALLEL_SIZE', 4 * chunk)
    rng = np.random.default_rng(3)
    shapes = [(7,), (3, 5), (100,), (2, 2, 2), (1,), (64, 9), (300,), (5,)]
    params = [Parameter(rng.standard_normal(s).astype(np.float32)) for s in shapes]
    opt = getattr(optim, name)(params, **kw)
    group = opt.param_groups[0]
    hyper = {k: group[k] for k in type(opt).hyperparameters}
    ref = [p.data.copy() for p in params]
    ref_state = [{'step': 0, **opt.init_state(r, group)} for r in ref]
    ref_steps = [0] * len(params)
    for t in range(6):
        for i, p in enumerate(params):
            p.grad = None if (i + t) % 3 == 0 else rng.standard_normal(p.data.shape).astype(np.float32)
        opt.step()
        for i, p in enumerate(params):
            if p.grad is None: continue
            ref_steps[i] += 1
            ref_state[i]['step'] = ref_steps[i]
            g, c = p.grad, group['clip_norm']
            if c is not None and (norm := np.linalg.norm(g)) > c: g = np.divide(np.multiply(g, c), norm)   # numpy-ml's order
            type(opt).update(ref[i], g, ref_state[i], step=ref_steps[i], **hyper)
        for i, p in enumerate(params):
            np.testing.assert_array_equal(p.data, ref[i])
            if p in opt.state:
                assert opt.state[p]['step'] == ref_steps[i] and sorted(opt.state[p]) == sorted(ref_state[i])
                for b, v in ref_state[i].items(): np.testing.assert_array_equal(opt.state[p][b], v)

def test_a_step_after_backward_allocates_no_weight_sized_array():
    # gradients that autograd leaves are C-contiguous (x.T @ dy alone would be in Fortran order),
    # so a layer's weight takes the chunked flat path like any other parameter
    from minima import nn
    from minima.autograd import Tensor
    layer = nn.Linear(4096, 2048)   # a weight of 32 MiB
    opt = optim.Adam(layer.parameters(), lr=1e-3)
    x = Tensor(np.random.default_rng(0).standard_normal((16, 4096), dtype=np.float32))
    def train_step():
        opt.zero_grad()
        (layer(x) ** 2).mean().backward()
        grads = [p.grad for p in layer.parameters()]
        assert all(g.flags.c_contiguous for g in grads)
        return grads
    train_step(); opt.step()
    grads = train_step()
    weight_bytes = layer.weight.data.nbytes
    peak = peak_during(opt.step)
    assert peak < weight_bytes // 4, f"a step allocated {peak} bytes; the weight has {weight_bytes}"

# settings that use the most temporaries: L2 decay and maximize make the gradient a temporary of its
# own, Nesterov and dampening one each, NAdam, RAdam and Adadelta two more
LENDING_CASES = CASES + [
    ('SGD',      dict(lr=0.01, momentum=0.9, dampening=0.1, weight_decay=1e-4, maximize=True), 1),
    ('SGD',      dict(lr=0.01, momentum=0.9, weight_decay=1e-4),                1),
    ('Adagrad',  dict(lr=0.01, weight_decay=1e-4, maximize=True),               1),
    ('RMSprop',  dict(lr=0.01, momentum=0.9, centered=True, weight_decay=1e-4), 3),
    ('RMSProp',  dict(lr=0.01, centered=True),                                  2),
    ('Adadelta', dict(weight_decay=1e-4, maximize=True),                        2),
    ('Adamax',   dict(weight_decay=1e-4),                                       2),
    ('NAdam',    dict(weight_decay=1e-4, maximize=True),                        2),
    ('RAdam',    dict(weight_decay=1e-4),                                       2),
]

@pytest.mark.parametrize('name,kw,n_state', LENDING_CASES,
                         ids=[f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for name, kw, _ in LENDING_CASES])
def test_a_step_borrows_its_temporaries(name, kw, n_state):
    # the engine lends each update function chunk-sized arrays for its temporaries (`scratch`), made once:
    # after the first step, a step over many chunks allocates less than a quarter of one chunk
    p = make_param(16 * engine.CHUNK_SIZE)
    opt = getattr(optim, name)([p], **kw)
    for _ in range(6): opt.step()   # past RAdam's first five steps, which skip the adaptive term
    peak = peak_during(opt.step)
    assert peak < engine.CHUNK_SIZE * 4 // 4, f"{name}{kw}: a step allocated {peak} bytes; a chunk is {engine.CHUNK_SIZE * 4}"

def test_no_update_function_takes_a_performance_argument():
    # the engine supplies scratch memory through `scratch`: an update function's keywords are the step and its hyperparameters
    import inspect
    classes = [getattr(optim, n) for n in dir(optim) if isinstance(getattr(optim, n), type)
               and issubclass(getattr(optim, n), base.Optimizer) and getattr(optim, n).update is not None]
    assert len(classes) >= 9
    for cls in classes:
        params = inspect.signature(cls.update).parameters
        names = [n for n, p in params.items() if p.kind is not p.VAR_KEYWORD]
        first, allowed = (['params', 'state'], {'step', 'closure'}) if cls.kind == 'group' else (['param', 'grad', 'state'], {'step'})
        assert names[:len(first)] == first, cls.__name__
        rest = set(names[len(first):])
        if len(names) == len(params): assert rest == {*allowed, *cls.hyperparameters}, cls.__name__
        else: assert rest <= {*allowed, *cls.hyperparameters}, cls.__name__   # **hyper passes the rest on
