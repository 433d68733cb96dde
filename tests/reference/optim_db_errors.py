"""torch's own optimizer database (torch.testing._internal.common_optimizers.optim_db) for minima's tests: an
optimizer's configurations and error inputs, the error inputs run against a minima optimizer class (for the optimizers
that take them one by one: Muon, Adafactor), and torch's signature compared with minima's."""
import inspect, warnings
import numpy as np
import pytest
import torch
from minima.nn import Parameter

def optim_db_info(name):
    "optim_db's entry for the torch optimizer class called `name`."
    from torch.testing._internal.common_optimizers import optim_db
    return next(info for info in optim_db if info.optim_cls.__name__ == name)

def optim_db_inputs(name):
    "optim_db's configurations for `name` on CPU (tensors in them made in float64): each has .desc and .kwargs."
    import make_reference as ref
    with ref.torch_default_dtype(np.float64):
        return optim_db_info(name).optim_inputs_func('cpu', torch.float64)

def optim_db_configs(name): return [oi.kwargs for oi in optim_db_inputs(name)]

def optim_db_error_inputs(name):
    "optim_db's error inputs for `name` on CPU (tensors in them made in float64)."
    import make_reference as ref
    with ref.torch_default_dtype(np.float64):
        return optim_db_info(name).optim_error_inputs_func('cpu', torch.float64)

def check_signature_is_torchs(mine, theirs, leave_out=()):
    "minima's class `mine` takes torch's arguments (but `leave_out`) in torch's order and kind, with torch's defaults; its own last."
    theirs = {k: v for k, v in inspect.signature(theirs).parameters.items() if k not in leave_out}
    ours = inspect.signature(mine).parameters
    assert list(theirs) == [k for k in ours if k not in ('nonfinite', 'clip_norm')]
    for k, v in theirs.items():
        if k != 'params': assert ours[k].default == v.default and ours[k].kind == v.kind, k

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
