"""torch's optim_db error inputs, run against a minima optimizer class: shared by the tests of every optimizer that
takes them one by one (Muon, Adafactor)."""
import warnings
import numpy as np
import pytest
import torch
from minima.nn import Parameter

def to_minima(x, made=None):
    "A torch error input's params, in minima's terms (the same torch tensor twice becomes the same Parameter twice)."
    made = {} if made is None else made
    if isinstance(x, torch.Tensor):
        if id(x) not in made: made[id(x)] = Parameter(x.detach().numpy().copy())
        return made[id(x)]
    if isinstance(x, dict): return {k: to_minima(v, made) for k, v in x.items()}
    if isinstance(x, tuple): return tuple(to_minima(v, made) for v in x)
    if isinstance(x, list): return [to_minima(v, made) for v in x]
    return x

def check_error_input(cls, error):
    "`cls` raises (or, for a warning, warns) torch's exception kind for the optim_db error input `error`, naming the argument."
    inp = error.optimizer_error_input
    params = inp.params if inp.params is not None else [Parameter(np.ones((2, 3)))]
    kwargs = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in inp.kwargs.items()}
    expected = error.error_type
    if 'complex' in inp.desc:   # minima Parameters are real: a complex array is refused when it is wrapped
        with pytest.raises(TypeError, match='floating point'): to_minima(params)   # torch's complex parameter
        p = Parameter(np.ones((2, 3))); opt = cls([p]); p.grad = np.ones((2, 3))
        p.data = np.ones((2, 3), dtype=np.complex128)   # the data replaced after construction: refused at the step
        with pytest.raises(RuntimeError, match='params.*complex'): opt.step()
        assert opt.state == {}
        return
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with pytest.raises(expected) as info:
            opt = cls(to_minima(params), **kwargs)
            opt.step()
    message = str(info.value)
    assert any(name in message for name in [*kwargs, 'param']), message
