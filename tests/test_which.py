"""The "Which optimizer when" table (nbs/04z_optim_which.ipynb): every optimizer class minima.optim exports
has a row and an entry of hand-written facts, and the memory column is measured, not typed."""
import numpy as np
import pytest
from minima import optim
from minima.optim.base import Optimizer, Real
from minima.optim.which import (OPTIMIZER_FACTS, USES, optimizer_classes, state_memory, optimizer_table,
                                table_markdown, closure_driven)

SMALL = ((64, 32), (16, 8), (50,))  # small shapes keep the test fast; the page measures 1024×1024

def test_every_exported_optimizer_class_is_found():
    exported = {getattr(optim, n) for n in optim.__all__ if isinstance(getattr(optim, n), type)}
    expected = {c for c in exported if issubclass(c, Optimizer) and c is not Optimizer}
    assert expected <= set(optimizer_classes().values())
    assert {'SGD', 'Adam', 'AdamW', 'RMSprop', 'Adagrad'} <= set(optimizer_classes())
    assert 'RMSProp' not in optimizer_classes() and 'AdaGrad' not in optimizer_classes()  # aliases once, by class name

def test_every_optimizer_class_has_facts():
    missing = [n for n in optimizer_classes() if n not in OPTIMIZER_FACTS]
    assert not missing, f'add an entry to OPTIMIZER_FACTS (nbs/04z_optim_which.ipynb) for {missing}'
    for name, facts in OPTIMIZER_FACTS.items():
        assert all(isinstance(facts[k], str) and facts[k].strip() for k in ('good_at', 'reference', 'paper')), name
        assert set(facts.get('use', ())) <= set(USES), name

@pytest.fixture(scope='module')
def rows(): return optimizer_table(SMALL)

def test_table_covers_every_class(rows):
    names = [r['name'] for r in rows]
    assert len(names) == len(set(names))
    assert {r['name'] for r in rows if issubclass(r['cls'], Optimizer)} == set(optimizer_classes())
    text = table_markdown(rows)
    for name in names: assert f'| `{name}` |' in text

def test_memory_column_is_measured(rows):
    for r in rows:
        if not issubclass(r['cls'], Optimizer): continue
        assert set(r['memory']) == set(SMALL), r['name']
        for shape, value in r['memory'].items():
            if isinstance(value, float): assert value == state_memory(r['cls'], shape), (r['name'], shape)
            else: assert isinstance(value, (ValueError, TypeError)), (r['name'], shape)
        assert any(isinstance(v, float) for v in r['memory'].values()), r['name']
    by_name = {r['name']: r for r in rows}
    assert by_name['Adam']['memory_text'] == '2 × params; 3 × params with amsgrad=True'
    assert by_name['SGD']['memory_text'] == '0 × params; 1 × params with momentum=0.9'

def test_state_memory_counts_what_the_state_holds():
    class Buffers(Optimizer):  # a float64 array in a list, one in a dict and one plain, on a float32 parameter
        update = staticmethod(lambda param, grad, state, *, step, lr: None)
        hyperparameters = dict(lr=Real('[0, inf)', default=1e-3))
        def init_state(self, param, group):
            return {'a': [np.zeros(param.shape)], 'b': {'c': np.zeros(param.shape)}, 'd': np.zeros(param.shape), 'n': 3.0}
    assert state_memory(Buffers, (7, 5)) == 6
    assert state_memory(optim.Adam, (7, 5)) == 2
    assert state_memory(optim.SGD, (7,), momentum=0.5) == 1

def test_factored_state_depends_on_shape():
    from minima.optim.adafactor import Adafactor
    assert state_memory(Adafactor, (64, 32)) == (64 + 32) / (64 * 32)
    assert state_memory(Adafactor, (50,)) == 1

def test_hyperparameters_come_from_the_specs(rows):
    for r in rows:
        if not issubclass(r['cls'], Optimizer): continue
        for name, spec in r['cls'].hyperparameters.items():
            if isinstance(spec, optim.Constant): assert f'{name}=' not in r['hyperparameters']
            else: assert r['hyperparameters'].count(name) >= 1, (r['name'], name)
    adam = next(r for r in rows if r['name'] == 'Adam')
    assert 'lr=0.001, betas=(0.9, 0.999), eps=1e-08' in adam['hyperparameters']

def test_closure_driven():
    assert not closure_driven(optim.SGD)
    class NeedsClosure(optim.SGD):
        def step(self, closure): return super().step(closure)
    assert closure_driven(NeedsClosure)
