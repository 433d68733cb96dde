"""Bad input: every case raises the documented error, names the argument (and the accepted range), and changes nothing.

Each case is a line of code run against a small world (two parameters with gradients, optimizers that have
already stepped, a scheduler, a model, a checkpoint file). Before and after the failing call the test takes a
snapshot of everything the call could touch: every parameter's values, gradient and array identity, every
optimizer's state buffers, step counts and param_groups, every scheduler's attributes, every model's
state_dict, and every file in the working directory with its bytes. The two snapshots must be equal.
The table on the docs page "Bad input" is produced by running these same cases (nbs/05a_reliability.ipynb).
"""
import copy, os, pickle, warnings, zipfile
from dataclasses import dataclass

import numpy as np
import pytest

import minima, minima.init
from minima.autograd import Tensor
from minima.nn import Parameter, Linear, Module
from minima.optim import base, sgd, adaptive, adam, lr_scheduler as sch
from minima.optim.base import Optimizer, NonFiniteGradientError
from minima.optim.sgd import SGD
from minima.optim.adam import Adam
from minima.checkpoint import save, load, CheckpointError


@dataclass
class Case:
    name: str          # what is wrong
    call: str          # the failing code, run with exec() in the world's namespace
    error: type        # the exception it must raise
    words: tuple = ()  # substrings the message must contain: the argument's name, the accepted range, ...
    setup: str = ''    # code run before the snapshot (puts the world in the state the case needs)


class Payload:
    "Unpickling this runs `cmd` in a shell."
    def __init__(self, cmd): self.cmd = cmd
    def __reduce__(self): return (os.system, (self.cmd,))


def make_world(d):
    "A namespace with parameters, gradients, stepped optimizers, a scheduler, a model and a checkpoint in `d`."
    rng = np.random.default_rng(0)
    w, b = Parameter(rng.standard_normal((3, 4))), Parameter(rng.standard_normal(3))
    w.grad, b.grad = rng.standard_normal((3, 4)), rng.standard_normal(3)
    p32 = Parameter(rng.standard_normal(5).astype(np.float32))
    p32.grad = rng.standard_normal(5).astype(np.float32)
    ns = {**{k: getattr(m, k) for m in (minima.optim, sch) for k in m.__all__},
          'np': np, 'minima': minima, 'Parameter': Parameter, 'Tensor': Tensor, 'Linear': Linear,
          'save': save, 'load': load, 'pickle': pickle, 'zipfile': zipfile, 'Payload': Payload, 'warnings': warnings,
          'd': str(d), 'w': w, 'b': b, 'p32': p32, 'params': [w, b]}
    ns['adam'] = Adam([w, b], lr=0.1)
    ns['adam'].step()
    ns['sgd'] = SGD([{'params': [w]}, {'params': [b], 'lr': 0.01}], lr=0.1, momentum=0.9)
    ns['sgd'].step()
    ns['named'] = Adam([('layer.weight', w), ('layer.bias', b)], lr=0.1)
    ns['named'].step()
    ns['sched'] = sch.StepLR(ns['sgd'], step_size=2)
    minima.init.manual_seed(0)
    ns['model'] = Linear(4, 3, dtype=np.float64)
    ns['ckpt'] = os.path.join(d, 'run.ckpt')
    save({'model': ns['model'].state_dict(), 'optimizer': ns['adam'].state_dict()}, ns['ckpt'])
    return ns


def snapshot(ns):
    "Everything a failing call could have changed, as plain copies."
    snap = {}
    for k, v in ns.items():
        if isinstance(v, Tensor):
            snap[k] = ('tensor', v.data.copy(), id(v.data), None if v.grad is None else v.grad.copy(),
                       None if v.grad is None else id(v.grad))
        elif isinstance(v, Optimizer):
            snap[k] = ('optimizer', [{id(p): copy.deepcopy(s) for p, s in v.state.items()}],
                       [{kk: [id(p) for p in vv] if kk == 'params' else copy.deepcopy(vv) for kk, vv in g.items()}
                        for g in v.param_groups], copy.deepcopy(v.defaults), getattr(v, 'skipped_steps', None))
        elif isinstance(v, Module):
            snap[k] = ('module', {n: (p.data.copy(), id(p.data)) for n, p in v.named_parameters()})
        elif hasattr(v, 'optimizer') and hasattr(v, 'state_dict') and not isinstance(v, type):
            snap[k] = ('scheduler', {kk: copy.deepcopy(vv) for kk, vv in vars(v).items() if kk != 'optimizer'})
    d = ns['d']
    snap['files'] = {f: open(os.path.join(d, f), 'rb').read() for f in sorted(os.listdir(d))}
    return snap


def same(a, b, where='world'):
    "Exact equality of snapshots: types, keys, array dtype/shape/bytes, NaN equal to NaN."
    assert type(a) is type(b), f'{where}: {type(a).__name__} != {type(b).__name__}'
    if isinstance(a, dict):
        assert list(a) == list(b), f'{where}: keys {list(a)} != {list(b)}'
        for k in a: same(a[k], b[k], f'{where}[{k!r}]')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f'{where}: length {len(a)} != {len(b)}'
        for i, (x, y) in enumerate(zip(a, b)): same(x, y, f'{where}[{i}]')
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), f'{where}: array changed'
    elif isinstance(a, float):
        assert a == b or (a != a and b != b), f'{where}: {a} != {b}'
    else:
        assert a == b, f'{where}: {a!r} != {b!r}'


def run_case(case, d):
    "Run `case` in a fresh world in directory `d`; return (exception, before, after) snapshots."
    ns = make_world(d)
    exec(case.setup, ns)
    before = snapshot(ns)
    try: exec(case.call, ns)
    except Exception as e: err = e
    else: err = None
    return err, before, snapshot(ns)


FLIP = "data = bytearray(open(ckpt, 'rb').read()); data[-200] ^= 1; open(d + '/flipped.ckpt', 'wb').write(bytes(data))"
CUT = "data = open(ckpt, 'rb').read(); open(d + '/cut.ckpt', 'wb').write(data[:len(data) // 2])"
PICKLE_NPY = ("import io; f = io.BytesIO(); np.save(f, np.array([Payload('touch ' + d + '/marker')], dtype=object), allow_pickle=True)\n"
              "z = zipfile.ZipFile(d + '/evil.ckpt', 'w'); z.writestr('__minima__.json', '{\"format\": \"minima.checkpoint\", "
              "\"version\": 1, \"tree\": {\"t\": \"array\", \"key\": \"a0\"}, \"arrays\": {\"a0\": {\"dtype\": \"<f8\", \"shape\": [1]}}}'); "
              "z.writestr('a0.npy', f.getvalue()); z.close()")
PICKLE_RAW = "open(d + '/evil.pkl', 'wb').write(pickle.dumps(Payload('touch ' + d + '/marker')))"

CASES = [
    # -- hyperparameters at construction --
    Case('lr < 0', "SGD(params, lr=-0.1)", ValueError, ('lr', '[0, inf)', '-0.1')),
    Case('lr < 0 (Adam)', "Adam(params, lr=-1e-3)", ValueError, ('lr', '[0, inf)')),
    Case('lr NaN', "Adam(params, lr=float('nan'))", ValueError, ('lr', 'nan')),
    Case('lr infinite', "SGD(params, lr=float('inf'))", ValueError, ('lr', 'inf')),
    Case('lr a string', "SGD(params, lr='0.1')", TypeError, ('lr', "'0.1'")),
    Case('lr a bool', "Adam(params, lr=True)", TypeError, ('lr', 'True')),
    Case('lr None', "Adam(params, lr=None)", TypeError, ('lr', 'None')),
    Case('lr an array of two', "Adam(params, lr=np.array([1e-3, 1e-3]))", ValueError, ('lr', 'only with one element')),
    Case('eps < 0 (Adam)', "Adam(params, eps=-1e-8)", ValueError, ('eps', '-1e-08')),
    Case('eps < 0 (RMSprop)', "RMSprop(params, eps=-1.0)", ValueError, ('eps',)),
    Case('eps < 0 (Adagrad)', "Adagrad(params, eps=-1.0)", ValueError, ('eps',)),
    Case('eps NaN (Adadelta)', "Adadelta(params, eps=float('nan'))", ValueError, ('eps',)),
    Case('beta1 = 1', "Adam(params, betas=(1.0, 0.999))", ValueError, ('betas', '[0, 1)')),
    Case('beta2 < 0', "AdamW(params, betas=(0.9, -0.1))", ValueError, ('betas', '[0, 1)')),
    Case('betas not a pair', "Adam(params, betas=(0.9,))", TypeError, ('betas', 'pair')),
    Case('betas a triple', "Adam(params, betas=(0.9, 0.99, 0.1))", TypeError, ('betas', 'pair')),
    Case('betas a float', "NAdam(params, betas=0.9)", TypeError, ('betas',)),
    Case('momentum = 1', "SGD(params, lr=0.1, momentum=1.0)", ValueError, ('momentum', '[0, 1)')),
    Case('momentum < 0', "SGD(params, lr=0.1, momentum=-0.5)", ValueError, ('momentum', '[0, 1)')),
    Case('momentum < 0 (RMSprop)', "RMSprop(params, momentum=-0.1)", ValueError, ('momentum',)),
    Case('alpha > 1 (RMSprop)', "RMSprop(params, alpha=1.5)", ValueError, ('alpha', '[0, 1]')),
    Case('rho > 1 (Adadelta)', "Adadelta(params, rho=1.1)", ValueError, ('rho', '[0, 1]')),
    Case('rho < 0 (Adadelta)', "Adadelta(params, rho=-0.1)", ValueError, ('rho', '[0, 1]')),
    Case('weight_decay < 0', "Adam(params, weight_decay=-0.1)", ValueError, ('weight_decay', '[0, inf)')),
    Case('dampening > 1', "SGD(params, lr=0.1, momentum=0.9, dampening=1.5)", ValueError, ('dampening',)),
    Case('Nesterov without momentum', "SGD(params, lr=0.1, nesterov=True)", ValueError, ('nesterov', 'momentum')),
    Case('Nesterov with dampening', "SGD(params, lr=0.1, momentum=0.9, dampening=0.5, nesterov=True)", ValueError,
         ('nesterov', 'dampening')),
    Case('maximize not a bool', "Adam(params, maximize=1)", TypeError, ('maximize', 'True or False')),
    Case('amsgrad a string', "Adam(params, amsgrad='yes')", TypeError, ('amsgrad',)),
    Case('unknown keyword', "SGD(params, lr=0.1, learning_rate=0.1)", TypeError, ('learning_rate',)),
    Case('unknown key in a param group', "Adam([{'params': [w], 'learnig_rate': 0.1}])", TypeError, ('learnig_rate',)),
    Case('unknown nonfinite policy', "Adam(params, nonfinite='ignore')", ValueError, ('nonfinite', "'skip'")),
    Case('clip_norm = 0', "Adam(params, clip_norm=0.0)", ValueError, ('clip_norm', '(0, inf)')),
    # -- parameters --
    Case('empty params', "Adam([])", ValueError, ('empty',)),
    Case('empty generator', "Adam(p for p in [])", ValueError, ('empty',)),
    Case('a numpy array, not a Parameter', "Adam([np.zeros(3)])", TypeError, ('ndarray', 'Parameter')),
    Case('a Tensor, not a Parameter', "Adam([Tensor(np.zeros(3), requires_grad=True)])", TypeError, ('Tensor', 'Parameter')),
    Case('an integer Parameter', "Adam([Parameter(np.arange(3))])", TypeError, ('dtype', 'int64')),
    Case('a parameter twice in one group (a warning, as in torch; raised here)',
         "with warnings.catch_warnings(action='error'): Adam([w, b, w])", UserWarning,
         ('position 2', 'position 0', 'a parameter group with duplicate parameters')),
    Case('a parameter in two groups', "Adam([{'params': [w]}, {'params': [w, b]}])", ValueError,
         ('param group 0', 'one parameter group only')),
    Case('a set of parameters', "Adam({w, b})", TypeError, ('set', 'order')),
    Case('a single Parameter, not a list', "Adam(w)", TypeError, ('Parameter',)),
    Case('add_param_group overlap', "adam.add_param_group({'params': [b]})", ValueError, ('param group 1', 'one parameter group only')),
    Case('add_param_group bad lr', "adam.add_param_group({'params': [p32], 'lr': -1.0})", ValueError, ('lr', 'param group 1')),
    Case('add_param_group not a dict', "adam.add_param_group([p32])", TypeError, ("'params'",)),
    # -- settings a user edited in param_groups, found at step() --
    Case('edited lr < 0', "adam.step()", ValueError, ('lr', 'param group 0', '[0, inf)'),
         setup="adam.param_groups[0]['lr'] = -0.5"),
    Case('edited betas out of range', "adam.step()", ValueError, ('betas', '[0, 1)'),
         setup="adam.param_groups[0]['betas'] = (0.9, 1.0)"),
    Case('edited momentum a string', "sgd.step()", TypeError, ('momentum', 'param group 1'),
         setup="sgd.param_groups[1]['momentum'] = '0.9'"),
    Case('edited lr NaN (second group)', "sgd.step()", ValueError, ('lr', 'param group 1', 'nan'),
         setup="sgd.param_groups[1]['lr'] = float('nan')"),
    Case('edited group lost a key', "adam.step()", ValueError, ('eps', 'param group 0'),
         setup="del adam.param_groups[0]['eps']"),
    Case('edited nesterov without momentum', "sgd.step()", ValueError, ('nesterov',),
         setup="sgd.param_groups[0]['nesterov'] = True; sgd.param_groups[0]['momentum'] = 0.0"),
    Case('edited params: a parameter added to a second group', "sgd.step()", ValueError,
         ('position 1 of param group 1', 'one parameter group only'), setup="sgd.param_groups[1]['params'].append(w)"),
    Case('edited params: not a list', "adam.step()", TypeError, ("'params'", 'list'),
         setup="adam.param_groups[0]['params'] = (w, b)"),
    Case('edited params: not a Parameter', "adam.step()", TypeError, ('Parameter',),
         setup="adam.param_groups[0]['params'].append(np.zeros(3))"),
    # -- gradients and state at step() --
    Case('parameter reshaped after its state was created', "adam.step()", ValueError, ('exp_avg', '(2, 6)'),
         setup="w.data = np.zeros((2, 6)); w.grad = np.zeros((2, 6))"),
    Case('grad of the wrong shape', "adam.step()", ValueError, ('shape', '(4, 3)', '(3, 4)'),
         setup="w.grad = np.zeros((4, 3))"),
    Case('grad of the wrong shape, second parameter', "adam.step()", ValueError, ('shape', '(4,)', '(3,)'),
         setup="b.grad = np.zeros(4)"),
    Case('grad of the wrong dtype', "adam.step()", TypeError, ('dtype', 'float32', 'float64'),
         setup="b.grad = b.grad.astype(np.float32)"),
    Case('grad not an array', "adam.step()", TypeError, ('grad', 'list'),
         setup="b.grad = [0.0, 0.0, 0.0]"),
    Case('NaN grad, nonfinite=raise', "opt.step()", NonFiniteGradientError, ('NaN or infinite', 'position 1', "nonfinite='raise'"),
         setup="opt = Adam(params, nonfinite='raise'); opt.step(); b.grad[1] = np.nan"),
    Case('inf grad, nonfinite=raise (SGD)', "opt.step()", NonFiniteGradientError, ('NaN or infinite', 'position 0'),
         setup="opt = SGD(params, lr=0.1, momentum=0.9, nonfinite='raise'); opt.step(); w.grad[2, 3] = -np.inf"),
    Case('clip_grad_norm_ of a NaN grad, error_if_nonfinite', "clip_grad_norm_(params, 1.0, error_if_nonfinite=True)",
         NonFiniteGradientError, ('nan', 'error_if_nonfinite'), setup="b.grad[0] = np.nan"),
    Case('clip_grad_norm_ max_norm < 0', "clip_grad_norm_(params, -1.0)", ValueError, ('max_norm',)),
    Case('clip_grad_value_ clip_value < 0', "clip_grad_value_(params, -1.0)", ValueError, ('clip_value',)),
    Case('clip_grad_norm_ norm_type < 0', "clip_grad_norm_(params, 1.0, norm_type=-1)", ValueError, ('norm_type', '(0, inf]')),
    Case('clip_grad_norm_ max_norm NaN', "clip_grad_norm_(params, float('nan'))", ValueError, ('max_norm', 'nan')),
    Case('step closure not callable', "adam.step(closure=3)", TypeError, ('closure', 'int')),
    # -- optimizer.load_state_dict --
    Case('load_state_dict: group count', "adam.load_state_dict(sd)", ValueError, ('group',),
         setup="sd = Adam([{'params': [w]}, {'params': [b]}]).state_dict()"),
    Case('load_state_dict: group sizes', "sgd.load_state_dict(sd)", ValueError, ('param group 0', '2 parameters', '1 in this'),
         setup="sd = SGD([{'params': [w, b]}, {'params': [p32]}], lr=0.1).state_dict()"),
    Case('load_state_dict: buffer shape', "adam.load_state_dict(sd)", ValueError, ('exp_avg', 'shape', '(2, 2)'),
         setup="sd = adam.state_dict(); sd['state'][0]['exp_avg'] = np.zeros((2, 2))"),
    Case('load_state_dict: buffer dtype', "adam.load_state_dict(sd)", (TypeError, ValueError), ('exp_avg_sq', 'float32'),
         setup="sd = adam.state_dict(); sd['state'][1]['exp_avg_sq'] = sd['state'][1]['exp_avg_sq'].astype(np.float32)"),
    Case('load_state_dict: missing buffer', "adam.load_state_dict(sd)", (KeyError, ValueError), ('exp_avg',),
         setup="sd = adam.state_dict(); del sd['state'][0]['exp_avg']"),
    Case('load_state_dict: an entry Adam never keeps', "adam.load_state_dict(sd)", ValueError,
         ("'momentum_buffer'", 'Adam never keeps', "'exp_avg'"),
         setup="sd = adam.state_dict(); sd['state'][0]['momentum_buffer'] = np.zeros((3, 4))"),
    Case('load_state_dict: names differ', "named.load_state_dict(sd)", ValueError, ('layer.bias', 'other.bias'),
         setup="sd = Adam([('layer.weight', w), ('other.bias', b)], lr=0.1).state_dict()"),
    Case('load_state_dict: bad lr inside', "adam.load_state_dict(sd)", ValueError, ('lr',),
         setup="sd = adam.state_dict(); sd['param_groups'][0]['lr'] = -1.0"),
    Case('load_state_dict: not a state dict', "adam.load_state_dict({'state': {}})", (TypeError, ValueError, KeyError),
         ('param_groups',)),
    Case('load_state_dict: a list', "adam.load_state_dict([1])", TypeError, ('dict', 'list')),
    Case('load_state_dict: negative step', "adam.load_state_dict(sd)", ValueError, ('step=-1', 'integer >= 0'),
         setup="sd = adam.state_dict(); sd['state'][0]['step'] = -1"),
    Case('load_state_dict: state for an unknown id', "adam.load_state_dict(sd)", ValueError, ('id 5',),
         setup="sd = adam.state_dict(); sd['state'][5] = sd['state'][0]"),
    Case('load_state_dict: state of another optimizer', "adam.load_state_dict(sd)", ValueError, ('momentum', 'unknown key'),
         setup="sd = SGD(params, lr=0.1, momentum=0.9).state_dict()"),
    # -- schedulers --
    Case('StepLR step_size = 0', "StepLR(sgd, step_size=0)", ValueError, ('step_size',)),
    Case('StepLR gamma < 0', "StepLR(sgd, step_size=2, gamma=-0.5)", ValueError, ('gamma',)),
    Case('CosineAnnealingLR T_max = 0', "CosineAnnealingLR(sgd, T_max=0)", ValueError, ('T_max',)),
    Case('MultiStepLR negative milestone', "MultiStepLR(sgd, milestones=[3, -5])", ValueError, ('milestones', '-5')),
    Case('LinearLR start_factor = 0', "LinearLR(sgd, start_factor=0.0)", ValueError, ('start_factor',)),
    Case('OneCycleLR past total_steps', "s.step()", ValueError, ('total_steps', '3'),
         setup="s = OneCycleLR(adam, max_lr=0.1, total_steps=3); [s.step() for _ in range(3)]"),
    Case('ReduceLROnPlateau unknown mode', "ReduceLROnPlateau(sgd, mode='avg')", ValueError, ('mode', "'avg'")),
    Case('LambdaLR: lr_lambda not callable', "LambdaLR(sgd, 3)", ValueError, ('lr_lambda', 'int')),
    Case('LambdaLR: lr_lambda returns a string', "LambdaLR(adam, lambda e: 'x')", TypeError, ('lr_lambda', "'x'", 'epoch 0')),
    Case('LambdaLR: lr_lambda raises', "LambdaLR(adam, lambda e: 1 / 0)", ZeroDivisionError, ()),
    Case('ReduceLROnPlateau.step of a string', "s.step('abc')", (TypeError, ValueError), ('metrics', "'abc'"),
         setup="s = ReduceLROnPlateau(sgd)"),
    Case('ReduceLROnPlateau.step of None', "s.step(None)", TypeError, ('metrics', 'None'), setup="s = ReduceLROnPlateau(sgd)"),
    Case('CosineAnnealingWarmRestarts.step to a negative epoch', "s.step(-1)", ValueError, ('epoch', '-1'),
         setup="s = CosineAnnealingWarmRestarts(sgd, T_0=3)"),
    Case('scheduler step after the optimizer gained a group', "s1.step()", ValueError, ('2 param groups', 'built for 1'),
         setup="s1 = StepLR(adam, step_size=2); adam.add_param_group({'params': [p32]})"),
    Case('scheduler on a non-optimizer', "StepLR([w, b], step_size=2)", TypeError, ('optimizer', 'param_groups')),
    Case('scheduler load_state_dict of another kind', "sched.load_state_dict(sd)", ValueError, ('step_size', 'T_max'),
         setup="sd = CosineAnnealingLR(adam, T_max=5).state_dict()"),
    # -- checkpoints --
    Case('load a missing file', "load(d + '/missing.ckpt')", FileNotFoundError, ('missing.ckpt',)),
    Case('load a corrupted file', "load(d + '/flipped.ckpt')", CheckpointError, ('flipped.ckpt', 'invalid checkpoint'), setup=FLIP),
    Case('load a truncated file', "load(d + '/cut.ckpt')", CheckpointError, ('cut.ckpt', 'invalid checkpoint'), setup=CUT),
    Case('load a checkpoint holding a pickle payload', "load(d + '/evil.ckpt')", CheckpointError,
         ('evil.ckpt', 'dtype object'), setup=PICKLE_NPY),
    Case('load a raw pickle file', "load(d + '/evil.pkl')", CheckpointError, ('evil.pkl', 'not a zip archive'), setup=PICKLE_RAW),
    Case('save an object array over a checkpoint', "save({'model': np.array([None])}, ckpt)", TypeError,
         ("obj['model']", 'dtype object')),
    Case('save a set', "save({'tags': {1, 2}}, ckpt)", TypeError, ("obj['tags']", 'set')),
    Case('save into a missing directory', "save({'w': w.data}, d + '/no/such/dir/run.ckpt')", FileNotFoundError, ('no/such/dir',)),
    # -- model.load_state_dict --
    Case('model.load_state_dict: missing key', "model.load_state_dict(sd)", (KeyError, ValueError), ('bias',),
         setup="sd = model.state_dict(); del sd['bias']"),
    Case('model.load_state_dict: unexpected key', "model.load_state_dict(sd)", (KeyError, ValueError), ('extra',),
         setup="sd = model.state_dict(); sd['extra'] = np.zeros(1)"),
    Case('model.load_state_dict: wrong shape', "model.load_state_dict(sd)", ValueError, ('weight', '(4, 3)'),
         setup="sd = model.state_dict(); sd['weight'] = np.zeros((4, 3))"),
    Case('model.load_state_dict: a list', "model.load_state_dict([1])", TypeError, ('state_dict', 'list', 'dict of name -> array')),
    Case('model.load_state_dict: wrong dtype', "model.load_state_dict(sd)", (TypeError, ValueError), ('bias', 'float32'),
         setup="sd = model.state_dict(); sd['bias'] = sd['bias'].astype(np.float32)"),
]


@pytest.mark.parametrize('case', CASES, ids=[c.name for c in CASES])
def test_bad_input(case, tmp_path):
    err, before, after = run_case(case, tmp_path)
    assert err is not None, f'{case.call} raised nothing'
    assert isinstance(err, case.error), f'{case.call} raised {type(err).__name__}: {err}'
    for word in case.words: assert word in str(err), f'{word!r} not in the message: {err}'
    same(before, after)


def test_enough_cases():
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


def test_snapshot_sees_a_change(tmp_path):
    "The snapshot is sensitive: a step, an edited buffer, a new file are each detected."
    ns = make_world(tmp_path)
    for change in ["adam.step()", "adam.state[w]['exp_avg'][0, 0] += 1", "open(d + '/x', 'w').write('x')",
                   "sched.step()", "model.weight.data[0, 0] = 7.0", "w.grad[0, 0] = 5.0",
                   "sgd.param_groups[1]['lr'] = 0.5"]:
        before = snapshot(ns)
        exec(change, ns)
        with pytest.raises(AssertionError): same(before, snapshot(ns))


# ---- the same checks across every optimizer class ----------------------------------------------------------------

OPTIMIZERS = [getattr(m, n) for m in (sgd, adaptive, adam) for n in m.__all__
              if isinstance(getattr(m, n), type) and issubclass(getattr(m, n), Optimizer)]


def generic_cases(cls):
    "(keywords, error, words) that every optimizer class must refuse at construction."
    cases = [({'lr': -1.0}, ValueError, ('lr', '-1.0', '[0, inf)')), ({'lr': float('nan')}, ValueError, ('lr', 'nan')),
             ({'lr': '0.1'}, TypeError, ('lr',)), ({'lr': [0.1]}, TypeError, ('lr',)),
             ({'lr': np.array([0.1, 0.1])}, ValueError, ('lr', 'only with one element')),
             ({'weight_decay': -0.1}, ValueError, ('weight_decay', '[0, inf)')),
             ({'maximize': 'yes'}, TypeError, ('maximize',)), ({'nonfinite': 'bad'}, ValueError, ('nonfinite',)),
             ({'clip_norm': -1.0}, ValueError, ('clip_norm',)), ({'not_an_option': 1}, TypeError, ('not_an_option',))]
    hyper = cls.hyperparameters
    if 'eps' in hyper: cases.append(({'eps': -1e-8}, ValueError, ('eps',)))
    if 'betas' in hyper: cases += [({'betas': (0.9, 1.0)}, ValueError, ('betas', '[0, 1)')),
                                   ({'betas': (float('nan'), 0.9)}, ValueError, ('betas',))]
    if 'momentum' in hyper: cases.append(({'momentum': -0.1}, ValueError, ('momentum',)))
    for k in ('alpha', 'rho'):
        if k in hyper: cases.append(({k: 1.5}, ValueError, (k, '[0, 1]')))
    return cases


def two_params():
    rng = np.random.default_rng(1)
    w, b = Parameter(rng.standard_normal((3, 4))), Parameter(rng.standard_normal(3).astype(np.float32))
    w.grad, b.grad = rng.standard_normal((3, 4)), rng.standard_normal(3).astype(np.float32)
    return w, b


@pytest.mark.parametrize('cls', OPTIMIZERS, ids=lambda c: c.__name__)
def test_every_optimizer_refuses_bad_settings(cls, tmp_path):
    w, b = two_params()
    ns = {'d': str(tmp_path), 'w': w, 'b': b}
    before = snapshot(ns)
    for kw, error, words in generic_cases(cls):
        with pytest.raises(error) as e: cls([w, b], **kw)
        for word in words: assert word in str(e.value), (cls.__name__, kw, str(e.value))
    for params, error, word in [([], ValueError, 'empty'), ({w, b}, TypeError, 'set'), ([w.data], TypeError, 'Parameter'),
                                ([{'params': [w]}, {'params': [b, w]}], ValueError, 'one parameter group only')]:
        with pytest.raises(error) as e: cls(params)
        assert word in str(e.value), (cls.__name__, str(e.value))
    with pytest.warns(UserWarning, match='a parameter group with duplicate parameters'): cls([w, b, w])   # as torch
    same(before, snapshot(ns))


FAULTS = {  # (what goes wrong before the failing step, the error)
    'edited lr < 0': ("opt.param_groups[0]['lr'] = -1.0", ValueError),
    'edited weight_decay NaN': ("opt.param_groups[0]['weight_decay'] = float('nan')", ValueError),
    'grad of the wrong shape (last parameter)': ("b.grad = np.zeros(4, np.float32)", ValueError),
    'grad of the wrong dtype (last parameter)': ("b.grad = b.grad.astype(np.float64)", TypeError),
    'NaN grad in the last parameter, nonfinite=raise': ("opt = cls([w, b], nonfinite='raise'); opt.step(); b.grad[2] = np.nan",
                                                        NonFiniteGradientError),
}


@pytest.mark.parametrize('fault', list(FAULTS))
@pytest.mark.parametrize('cls', OPTIMIZERS, ids=lambda c: c.__name__)
def test_every_optimizer_steps_atomically(cls, fault, tmp_path):
    "A step that raises leaves parameters, gradients, state buffers, step counts and groups exactly as they were."
    w, b = two_params()
    ns = {'d': str(tmp_path), 'w': w, 'b': b, 'np': np, 'cls': cls, 'opt': cls([w, b])}
    ns['opt'].step(); ns['opt'].step()
    setup, error = FAULTS[fault]
    exec(setup, ns)
    before = snapshot(ns)
    with pytest.raises(error): ns['opt'].step()
    same(before, snapshot(ns))


@pytest.mark.parametrize('bad_value', [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize('cls', OPTIMIZERS, ids=lambda c: c.__name__)
def test_every_optimizer_skips_a_non_finite_step_completely(cls, bad_value, tmp_path):
    "nonfinite='skip': a NaN or inf in the last parameter's gradient skips the whole step; only the counter moves."
    w, b = two_params()
    ns = {'d': str(tmp_path), 'w': w, 'b': b, 'opt': cls([w, b], nonfinite='skip')}
    ns['opt'].step(); ns['opt'].step()
    b.grad[1] = bad_value
    before = snapshot(ns)
    ns['opt'].step()
    assert ns['opt'].skipped_steps == 1
    ns['opt'].skipped_steps = 0
    same(before, snapshot(ns))
