"""Every minima optimizer declares `state_keys`, the state entries (besides 'step') it may keep for any settings.

The settings tried come from each class's own hyperparameter specs (every flag both ways, every choice, a zero
default made nonzero and the reverse, single changes and random mixes), so a new class or a new option is covered
without editing this file; what the state holds after a few steps must be exactly what the class declares. Then
`load_state_dict` refuses an entry outside `state_keys`, naming it, the optimizer and the accepted names, and
changes nothing."""
import copy, random, warnings
import numpy as np
import pytest

import minima.optim as optim
from minima.nn import Parameter
from minima.optim.base import Optimizer, Real, Integer, Flag, Choice, Optional, Constant, _declared

CLASSES = {c.__name__: c for c in vars(optim).values()
           if isinstance(c, type) and issubclass(c, Optimizer) and c is not Optimizer}
SHAPES = {'Muon': [(2, 3), (4, 2)]}   # Muon takes matrices only
DEFAULT_SHAPES = [(3,), (2, 3), (2, 2, 3)]
RANDOM_MIXES = 16


def alternates(spec, default) -> list:
    "Values besides `default` that may change which state an optimizer keeps (pairs and triples of rates keep theirs)."
    if isinstance(spec, Optional):
        inner = alternates(spec.spec, None)
        return ([None] if default is not None else []) + [v for v in inner if v != default]
    if isinstance(spec, Flag): return [not default]
    if isinstance(spec, Choice): return [o for o in spec.options if o != default]
    if isinstance(spec, (Real, Integer)):
        candidates = [0.5, 0.0, -0.5, 2.0] if isinstance(spec, Real) else [1, 2, 0, 3]
        inside = [v for v in candidates if spec.problem(v) is None and v != default]
        return inside[:1]
    return []


def settings(cls) -> list:
    "The defaults, each hyperparameter changed alone, all changed at once, and random mixes (seeded by the class name)."
    specs = {k: s for k, s in cls.hyperparameters.items() if not isinstance(s, Constant)}
    options = {k: alternates(s, s.default) for k, s in specs.items()}
    options = {k: v for k, v in options.items() if v}
    rng = random.Random(cls.__name__)
    found = [{}, *({k: v} for k, vs in options.items() for v in vs), {k: vs[0] for k, vs in options.items()}]
    found += [{k: rng.choice(vs) for k, vs in options.items() if rng.random() < 0.5} for _ in range(RANDOM_MIXES)]
    return found


def problem(shapes):
    "Parameters and a closure for sum(½ a θ² + c θ) that sets their gradients and returns the loss."
    rng = np.random.default_rng(0)
    ps = [Parameter(rng.standard_normal(s)) for s in shapes]
    a = [rng.uniform(0.5, 2.0, s) for s in shapes]
    c = [rng.standard_normal(s) for s in shapes]
    def closure():
        for p, ai, ci in zip(ps, a, c): p.grad = ai * p.data + ci
        return float(sum((0.5 * ai * p.data ** 2 + ci * p.data).sum() for p, ai, ci in zip(ps, a, c)))
    return ps, closure


def build(cls, ps, kw):
    "`cls` on `ps` with settings `kw` (a wrapper wraps SGD with momentum); None when the settings break one of its rules."
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')   # e.g. Adafactor's notes on settings; not what this test is about
            return cls(optim.SGD(ps, lr=0.1, momentum=0.9), **kw) if cls.wraps else cls(ps, **kw)
    except ValueError as e:
        if 'invalid combination' in str(e): return None
        raise


def run(opt, closure, steps=3):
    if hasattr(opt, 'train'): opt.train()
    for _ in range(steps):
        closure(); opt.step(closure)
    if hasattr(opt, 'eval'): opt.eval()


def test_every_optimizer_class_is_covered():
    assert len(CLASSES) >= 24, sorted(CLASSES)
    assert {'SGD', 'Adam', 'AdamW', 'Adagrad', 'RMSprop', 'Muon', 'Adafactor', 'LBFGS', 'Lookahead', 'SOAP'} <= set(CLASSES)


@pytest.mark.parametrize('name', sorted(CLASSES))
def test_state_holds_exactly_the_declared_keys(name):
    cls = CLASSES[name]
    assert isinstance(cls.state_keys, tuple) and all(isinstance(k, str) for k in cls.state_keys), cls.state_keys
    seen, tried = set(), 0
    for kw in settings(cls):
        ps, closure = problem(SHAPES.get(name, DEFAULT_SHAPES))
        opt = build(cls, ps, kw)
        if opt is None: continue
        run(opt, closure)
        tried += 1
        for state in opt.state.values():
            keys = set(state) - {'step'}
            assert all(_declared(k, cls.state_keys) for k in keys), (name, kw, sorted(keys), cls.state_keys)
            seen |= keys
    assert tried >= 2, (name, tried)
    unused = [k for k in cls.state_keys if not any(_declared(s, (k,)) for s in seen)]
    assert not unused, f'{name} declares {unused} but no setting tried stores them'


# ---------------------------------------------------------------- loading refuses what the optimizer never keeps
def snapshot(opt, ps):
    return ([p.data.copy() for p in ps], copy.deepcopy({id(p): s for p, s in opt.state.items()}),
            copy.deepcopy([{k: v for k, v in g.items() if k != 'params'} for g in opt.param_groups]))

def same(a, b) -> bool:
    "Equal values, arrays (bit for bit, same dtype) also inside dicts, lists and tuples."
    if isinstance(a, np.ndarray): return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict): return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)): return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return a == b

def assert_same(a, b): assert same(a, b)

@pytest.mark.parametrize('name, kw, foreign', [
    ('SGD', dict(lr=0.1, momentum=0.9), 'exp_avg'),
    ('Adagrad', dict(lr=0.1), 'square_avg'),
    ('Adam', dict(lr=0.1, amsgrad=True), 'momentum_buffer'),
    ('RMSprop', dict(lr=0.01, momentum=0.5, centered=True), 'exp_avg'),
    ('Adafactor', dict(lr=0.01), 'exp_avg_sq'),
    ('Muon', dict(lr=0.01), 'exp_avg'),
    ('LBFGS', dict(lr=0.5), 'momentum_buffer'),
])
def test_real_optimizers_refuse_foreign_state_entries(name, kw, foreign):
    cls = CLASSES[name]
    ps, closure = problem([(3, 2), (2, 4)])
    opt = cls(ps, **kw)
    run(opt, closure)
    saved = opt.state_dict()
    entry = saved['state'][0]
    entry[foreign] = np.zeros_like(ps[0].data)
    before = snapshot(opt, ps)
    with pytest.raises(ValueError) as e: opt.load_state_dict(saved)
    assert (f"has an entry {foreign!r}, which {name} never keeps; its state entries are {list(cls.state_keys)} and 'step'"
            in str(e.value)), str(e.value)
    assert_same(before, snapshot(opt, ps))
    del entry[foreign]
    opt.load_state_dict(saved)   # the same state dict without the foreign entry loads
    assert_same(before, snapshot(opt, ps))

def test_wrapper_refuses_a_foreign_entry_in_its_own_or_the_wrapped_state():
    ps, closure = problem([(3,), (2, 2)])
    opt = optim.Lookahead(optim.SGD(ps, lr=0.1, momentum=0.9), k=2)
    run(opt, closure)
    for where in ('own', 'inner'):
        saved = opt.state_dict()
        (saved['state'] if where == 'own' else saved['optimizer']['state'])[0]['exp_avg'] = np.zeros(3)
        before, inner = snapshot(opt, ps), snapshot(opt.optimizer, ps)
        with pytest.raises(ValueError, match="'exp_avg', which (Lookahead|SGD) never keeps"): opt.load_state_dict(saved)
        assert_same(before, snapshot(opt, ps))
        assert_same(inner, snapshot(opt.optimizer, ps))

def test_an_optimizer_without_state_keys_loads_any_entry():
    "A user's own optimizer that declares no `state_keys` (None, as on the 'add your own optimizer' page) is not checked."
    class Plain(Optimizer):
        update = staticmethod(lambda param, grad, state, *, step, lr: np.subtract(param, lr * grad, out=param))
        hyperparameters = dict(lr=Real('[0, inf)', default=0.1))
    assert Plain.state_keys is None
    ps, closure = problem([(3,)])
    opt = Plain(ps)
    run(opt, closure)
    saved = opt.state_dict()
    saved['state'][0]['velocity'] = np.ones(3)
    opt.load_state_dict(saved)
    assert np.array_equal(opt.state[ps[0]]['velocity'], np.ones(3))
