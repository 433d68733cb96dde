"Checkpoints: exact round trips, refused inputs, crafted files that would run code, crashes while saving."
import json, os, pickle, random, signal, time, zipfile
from pathlib import Path

import numpy as np
import pytest

from minima.checkpoint import save, load, CheckpointError, META, FORMAT, VERSION


def same(a, b):
    "Exact structural equality: types, keys in order, array dtype/shape/bytes, float bits (nan == nan)."
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b) and [type(k) for k in a] == [type(k) for k in b]
        for k in a: same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b): same(x, y)
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    elif isinstance(a, float):
        assert np.float64(a).tobytes() == np.float64(b).tobytes() or (a != a and b != b)
    else:
        assert a == b


STATE = {
    'model': {'0.weight': np.arange(12, dtype=np.float32).reshape(3, 4), '0.bias': np.zeros(3, np.float32)},
    'optimizer': {'state': {0: {'step': 5, 'exp_avg': np.linspace(-1, 1, 12).reshape(3, 4)},
                            1: {'step': np.int64(5), 'exp_avg_sq': np.full(3, 1e-300)}},
                  'param_groups': [{'lr': 1e-3, 'betas': (0.9, 0.999), 'eps': 1e-8, 'amsgrad': False,
                                    'maximize': False, 'foreach': None, 'params': [0, 1],
                                    'names': ['0.weight', '0.bias']}]},
    'scheduler': {'last_epoch': 3, 'base_lrs': [0.1], '_last_lr': [0.0999], 'milestones': {10: 1, 20: 2}},
    'numbers': [float('inf'), float('-inf'), float('nan'), -0.0, 5e-324, 2**80, -7, True, False, None],
    'keys': {1: 'int one', '1': 'str one', '': 'empty', 'ü∂': 'unicode'},
    'empty': [[], (), {}, ''],
    'nested': ((1, [2, (3,)]), [{'a': (None,)}]),
    'arrays': [np.array(True), np.array([True, False]), np.arange(5, dtype=np.int8), np.arange(3, dtype=np.uint16),
               np.arange(4, dtype=np.int64), np.ones(2, np.float16), np.array([1 + 2j]), np.zeros((0, 3)),
               np.array(2.5), np.asfortranarray(np.arange(6.).reshape(2, 3)), np.arange(10.)[::3],
               np.arange(3, dtype='>f8'), np.array([np.nan, np.inf, -0.0], np.float32)],
    'scalars': [np.float32(0.1), np.float64(0.1), np.int32(-3), np.uint8(255), np.bool_(True), np.complex64(1j)],
}


def test_round_trip_is_exact(tmp_path):
    save(STATE, tmp_path / 'a.ckpt')
    same(STATE, load(tmp_path / 'a.ckpt'))


def test_memmap_is_saved_as_an_array(tmp_path):
    m = np.memmap(tmp_path / 'm.dat', dtype=np.float32, mode='w+', shape=(3,)); m[:] = [1, 2, 3]
    save({'m': m}, tmp_path / 'c')
    same({'m': np.array([1, 2, 3], np.float32)}, load(tmp_path / 'c'))


def test_round_trip_accepts_str_and_pathlike(tmp_path):
    save([1, np.ones(2)], str(tmp_path / 'a.npz'))
    same([1, np.ones(2)], load(str(tmp_path / 'a.npz')))


def test_loaded_arrays_are_fresh_and_writable(tmp_path):
    a = np.arange(4.)
    save({'a': a}, tmp_path / 'c')
    b = load(tmp_path / 'c')['a']
    b[0] = 99
    assert a[0] == 0 and b.flags.writeable and not np.shares_memory(a, b)


def test_same_state_same_bytes(tmp_path):
    save(STATE, tmp_path / 'a'); time.sleep(0.01); save(STATE, tmp_path / 'b')
    assert (tmp_path / 'a').read_bytes() == (tmp_path / 'b').read_bytes()


def test_numpy_opens_the_file_without_pickle(tmp_path):
    save({'w': np.arange(3.)}, tmp_path / 'a.npz')
    with np.load(tmp_path / 'a.npz', allow_pickle=False) as z:
        assert sorted(z.files) == sorted([META, 'a0'])
        np.testing.assert_array_equal(z['a0'], np.arange(3.))
        assert json.loads(z[META])['format'] == FORMAT


class WithState:
    def __init__(self, d): self.d = d
    def state_dict(self): return self.d


def test_objects_with_state_dict_are_saved_as_their_state(tmp_path):
    save({'model': WithState({'w': np.ones(2)}), 'epoch': 1}, tmp_path / 'c')
    same({'model': {'w': np.ones(2)}, 'epoch': 1}, load(tmp_path / 'c'))


def test_overwrite_replaces_and_leaves_no_temporary(tmp_path):
    p = tmp_path / 'c'
    save({'v': 1}, p); save({'v': 2}, p)
    assert load(p) == {'v': 2} and os.listdir(tmp_path) == ['c']


def test_permissions_kept_on_overwrite(tmp_path):
    p = tmp_path / 'c'
    save(1, p); os.chmod(p, 0o640); save(2, p)
    assert os.stat(p).st_mode & 0o777 == 0o640
    umask = os.umask(0o022)
    try: save(3, tmp_path / 'new')
    finally: os.umask(umask)
    assert os.stat(tmp_path / 'new').st_mode & 0o777 == 0o644


class Weird: pass


cyc = []; cyc.append(cyc)
UNSAVEABLE = {
    'object array': ({'a': np.array([1, 'x'], dtype=object)}, TypeError, "obj['a']: cannot save an array of dtype object"),
    'string array': ([np.array(['a', 'b'])], TypeError, 'obj[0]: cannot save an array of dtype <U1'),
    'structured array': (np.zeros(2, [('x', 'f4')]), TypeError, 'cannot save an array of dtype'),
    'datetime array': (np.array(['2020-01-01'], 'datetime64[D]'), TypeError, 'cannot save an array of dtype'),
    'set': ({'s': {1, 2}}, TypeError, "obj['s']: cannot save an object of type set"),
    'custom object': ([1, Weird()], TypeError, 'obj[1]: cannot save an object of type Weird'),
    'bytes': (b'raw', TypeError, 'cannot save an object of type bytes'),
    'float key': ({1.5: 1}, TypeError, 'dict key 1.5 of type float'),
    'bool key': ({True: 1}, TypeError, 'dict key True of type bool'),
    'tuple key': ({(1, 2): 1}, TypeError, 'dict key (1, 2) of type tuple'),
    'None key': ({None: 1}, TypeError, 'dict key None'),
    'cycle': (cyc, ValueError, 'obj[0]: contains itself'),
    'dict subclass': (__import__('collections').OrderedDict(a=1), TypeError, 'type OrderedDict'),
    'masked array': ({'m': np.ma.masked_array([1.0, 2.0], mask=[0, 1])}, TypeError, "obj['m']: cannot save a MaskedArray"),
    'a Parameter itself': ({'w': __import__('minima').nn.Parameter(np.zeros(2))}, TypeError, 'type Parameter'),
}


@pytest.mark.parametrize('name', list(UNSAVEABLE))
def test_save_refuses_unsupported_values_and_changes_nothing(tmp_path, name):
    obj, err, msg = UNSAVEABLE[name]
    p = tmp_path / 'c'
    save({'old': np.arange(3)}, p)
    before = p.read_bytes()
    with pytest.raises(err) as e: save(obj, p)
    assert msg in str(e.value)
    assert p.read_bytes() == before and os.listdir(tmp_path) == ['c']


def test_save_into_missing_directory_raises(tmp_path):
    with pytest.raises(FileNotFoundError): save(1, tmp_path / 'no' / 'c')
    assert os.listdir(tmp_path) == []


def test_save_onto_a_directory_raises_and_cleans_up(tmp_path):
    (tmp_path / 'd').mkdir()
    with pytest.raises(OSError): save(1, tmp_path / 'd')
    assert os.listdir(tmp_path) == ['d'] and os.listdir(tmp_path / 'd') == []


def test_shared_array_is_saved_twice_and_loads_as_two_arrays(tmp_path):
    a = np.ones(2)
    save([a, a], tmp_path / 'c')
    x, y = load(tmp_path / 'c')
    assert not np.shares_memory(x, y)
    np.testing.assert_array_equal(x, y)


# ---- loading refuses anything that is not exactly a checkpoint -------------------------------------------------

def write_zip(path, members, meta=None):
    "A zip with the given {name: bytes} members, plus a JSON member from `meta` if given."
    with zipfile.ZipFile(path, 'w') as z:
        if meta is not None: z.writestr(META, json.dumps(meta))
        for n, b in members.items(): z.writestr(n, b)
    return path


def npy(a, allow_pickle=False):
    import io
    f = io.BytesIO(); np.lib.format.write_array(f, a, allow_pickle=allow_pickle); return f.getvalue()


def meta(tree, arrays=None, **kw):
    return {'format': FORMAT, 'version': VERSION, 'tree': tree, 'arrays': arrays or {}, **kw}


ONE = meta({'t': 'array', 'key': 'a0'}, {'a0': {'dtype': '<f8', 'shape': [3]}})
CRAFTED = {
    'empty file': lambda p: p.write_bytes(b''),
    'random bytes': lambda p: p.write_bytes(bytes(range(256)) * 4),
    'text file': lambda p: p.write_text('{"format": "minima.checkpoint"}'),
    'bare npy': lambda p: p.write_bytes(npy(np.arange(3.))),
    'numpy savez without metadata': lambda p: np.savez(str(p) + '.npz', a0=np.arange(3.)) or os.replace(str(p) + '.npz', p),
    'zip without metadata': lambda p: write_zip(p, {'a0.npy': npy(np.arange(3.))}),
    'metadata not json': lambda p: write_zip(p, {META: b'{not json', 'a0.npy': npy(np.arange(3.))}),
    'metadata not utf-8': lambda p: write_zip(p, {META: b'\xff\xfe', 'a0.npy': npy(np.arange(3.))}),
    'metadata a list': lambda p: write_zip(p, {META: b'[]'}),
    'wrong format name': lambda p: write_zip(p, {'a0.npy': npy(np.arange(3.))}, {**ONE, 'format': 'other'}),
    'future version': lambda p: write_zip(p, {'a0.npy': npy(np.arange(3.))}, {**ONE, 'version': 2}),
    'version as float': lambda p: write_zip(p, {'a0.npy': npy(np.arange(3.))}, {**ONE, 'version': 1.0}),
    'extra metadata field': lambda p: write_zip(p, {'a0.npy': npy(np.arange(3.))}, {**ONE, 'x': 1}),
    'extra member': lambda p: write_zip(p, {'a0.npy': npy(np.arange(3.)), 'evil.pkl': b'x'}, ONE),
    'missing member': lambda p: write_zip(p, {}, ONE),
    'duplicate member': lambda p: write_zip(p, {'a0.npy': npy(np.arange(3.)), 'a0.npy ': b''}, ONE)
        and _rename_member(p, 'a0.npy ', 'a0.npy'),
    'declared object dtype': lambda p: write_zip(p, {'a0.npy': npy(np.arange(3.))},
                                                 meta({'t': 'array', 'key': 'a0'}, {'a0': {'dtype': '|O', 'shape': [3]}})),
    'declared string dtype': lambda p: write_zip(p, {'a0.npy': npy(np.array(['a']))},
                                                 meta({'t': 'array', 'key': 'a0'}, {'a0': {'dtype': '<U1', 'shape': [1]}})),
    'shape mismatch': lambda p: write_zip(p, {'a0.npy': npy(np.arange(4.))}, ONE),
    'dtype mismatch': lambda p: write_zip(p, {'a0.npy': npy(np.arange(3, dtype=np.float32))}, ONE),
    'negative shape': lambda p: write_zip(p, {'a0.npy': npy(np.arange(3.))},
                                          meta({'t': 'array', 'key': 'a0'}, {'a0': {'dtype': '<f8', 'shape': [-3]}})),
    'bad array key': lambda p: write_zip(p, {'../x.npy': npy(np.arange(3.))},
                                         meta({'t': 'array', 'key': '../x'}, {'../x': {'dtype': '<f8', 'shape': [3]}})),
    'undeclared array in tree': lambda p: write_zip(p, {'a0.npy': npy(np.arange(3.))},
                                                    {**ONE, 'tree': {'t': 'list', 'items': [{'t': 'array', 'key': 'a0'}, {'t': 'array', 'key': 'a1'}]}}),
    'array used twice': lambda p: write_zip(p, {'a0.npy': npy(np.arange(3.))},
                                            {**ONE, 'tree': {'t': 'list', 'items': [{'t': 'array', 'key': 'a0'}] * 2}}),
    'array never used': lambda p: write_zip(p, {'a0.npy': npy(np.arange(3.))}, {**ONE, 'tree': {'t': 'none'}}),
    'unknown node type': lambda p: write_zip(p, {}, meta({'t': 'pickle', 'v': 'cos\nsystem'})),
    'node with extra field': lambda p: write_zip(p, {}, meta({'t': 'int', 'v': 1, 'x': 0})),
    'int node holding a string': lambda p: write_zip(p, {}, meta({'t': 'int', 'v': '1'})),
    'bool node holding an int': lambda p: write_zip(p, {}, meta({'t': 'bool', 'v': 1})),
    'float node not hex': lambda p: write_zip(p, {}, meta({'t': 'float', 'v': 'abc'})),
    'float node a number': lambda p: write_zip(p, {}, meta({'t': 'float', 'v': 0.5})),
    'duplicate dict key': lambda p: write_zip(p, {}, meta({'t': 'dict', 'items': [['a', {'t': 'none'}], ['a', {'t': 'none'}]]})),
    'dict key a float': lambda p: write_zip(p, {}, meta({'t': 'dict', 'items': [[1.5, {'t': 'none'}]]})),
    'scalar node with a vector': lambda p: write_zip(p, {'a0.npy': npy(np.arange(3.))}, {**ONE, 'tree': {'t': 'scalar', 'key': 'a0'}}),
    'deeply nested metadata': lambda p: write_zip(p, {META: ('{"t":"list","items":[' * 100000 + ']}' * 100000).encode()}),
    'compressed member': lambda p: _compressed(p),
    'header claims huge array': lambda p: write_zip(p, {'a0.npy': _huge_header()},
                                                    meta({'t': 'array', 'key': 'a0'}, {'a0': {'dtype': '<f8', 'shape': [10**12]}})),
}


def _rename_member(p, old, new):
    b = p.read_bytes().replace(old.encode(), new.encode())
    p.write_bytes(b)


def _compressed(p):
    with zipfile.ZipFile(p, 'w', zipfile.ZIP_DEFLATED) as z:
        z.writestr(META, json.dumps(ONE)); z.writestr('a0.npy', npy(np.arange(3.)))


def _huge_header():
    "A .npy header declaring 10**12 float64 values (8 TB), followed by only 24 bytes of data."
    import io
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {'descr': '<f8', 'fortran_order': False, 'shape': (10**12,)})
    return f.getvalue() + np.arange(3.).tobytes()


@pytest.mark.parametrize('name', list(CRAFTED))
def test_load_refuses_invalid_files(tmp_path, name):
    p = tmp_path / 'c.ckpt'
    CRAFTED[name](p)
    with pytest.raises(CheckpointError) as e: load(p)
    assert str(p) in str(e.value) and 'checkpoint' in str(e.value)


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError): load(tmp_path / 'nope')
    with pytest.raises(IsADirectoryError): load(tmp_path)


def test_every_truncation_is_refused(tmp_path):
    save(STATE, tmp_path / 'c')
    data = (tmp_path / 'c').read_bytes()
    for n in list(range(0, len(data), max(1, len(data) // 300))):
        (tmp_path / 't').write_bytes(data[:n])
        with pytest.raises(CheckpointError): load(tmp_path / 't')


def test_every_single_byte_flip_is_refused_or_harmless(tmp_path):
    "A damaged byte either makes load raise, or (zip bookkeeping such as timestamps) changes nothing loaded."
    obj = {'w': np.arange(6, dtype=np.float32), 'step': 3, 'betas': (0.9, 0.999)}
    save(obj, tmp_path / 'c')
    data = (tmp_path / 'c').read_bytes()
    refused = 0
    for i in range(len(data)):
        b = bytearray(data); b[i] ^= 0x10
        (tmp_path / 'f').write_bytes(bytes(b))
        try: same(obj, load(tmp_path / 'f'))
        except CheckpointError: refused += 1
    assert refused > len(data) // 2


# ---- files crafted to execute code on load -----------------------------------------------------------------

class Payload:
    "Unpickling this runs `cmd` in a shell."
    def __init__(self, cmd): self.cmd = cmd
    def __reduce__(self): return (os.system, (self.cmd,))


def pickle_attacks(tmp_path, marker):
    cmd = f'touch {marker}'
    obj_npy = npy(np.array([Payload(cmd)], dtype=object), allow_pickle=True)
    attacks = {}
    attacks['object member declared as float'] = write_zip(tmp_path / 'a1.ckpt', {'a0.npy': obj_npy},
                                                           meta({'t': 'array', 'key': 'a0'}, {'a0': {'dtype': '<f8', 'shape': [1]}}))
    attacks['object member declared as object'] = write_zip(tmp_path / 'a2.ckpt', {'a0.npy': obj_npy},
                                                            meta({'t': 'array', 'key': 'a0'}, {'a0': {'dtype': '|O', 'shape': [1]}}))
    attacks['object member, no metadata (np.savez layout)'] = write_zip(tmp_path / 'a3.ckpt', {'a0.npy': obj_npy})
    attacks['raw pickle file'] = tmp_path / 'a4.ckpt'
    attacks['raw pickle file'].write_bytes(pickle.dumps(Payload(cmd)))
    attacks['bare object .npy'] = tmp_path / 'a5.ckpt'
    attacks['bare object .npy'].write_bytes(obj_npy)
    attacks['pickle member beside a valid checkpoint'] = tmp_path / 'a6.ckpt'
    save({'w': np.ones(2)}, attacks['pickle member beside a valid checkpoint'])
    with zipfile.ZipFile(attacks['pickle member beside a valid checkpoint'], 'a') as z:
        z.writestr('a1.npy', obj_npy); z.writestr('x.pkl', pickle.dumps(Payload(cmd)))
    return attacks


def test_payloads_are_real(tmp_path):
    "The crafted files do run code when opened the unsafe way, so the refusal test below means something."
    marker = tmp_path / 'marker'
    attacks = pickle_attacks(tmp_path, marker)
    with np.load(attacks['object member declared as float'], allow_pickle=True) as z: z['a0']
    assert marker.exists(); marker.unlink()
    pickle.loads(attacks['raw pickle file'].read_bytes())
    assert marker.exists(); marker.unlink()
    np.load(attacks['bare object .npy'], allow_pickle=True)
    assert marker.exists()


@pytest.mark.parametrize('name', ['object member declared as float', 'object member declared as object',
                                  'object member, no metadata (np.savez layout)', 'raw pickle file',
                                  'bare object .npy', 'pickle member beside a valid checkpoint'])
def test_pickle_payload_is_refused_and_nothing_runs(tmp_path, name):
    marker = tmp_path / 'marker'
    p = pickle_attacks(tmp_path, marker)[name]
    with pytest.raises(CheckpointError): load(p)
    assert not marker.exists()


# ---- a process killed while saving never leaves a broken checkpoint ------------------------------------------

def saver(path, step, ready):
    "Save consistent checkpoints to `path` forever (runs in a forked child until it is killed)."
    big = np.empty(1_000_000)
    os.write(ready, b'r')
    while True:
        step += 1
        big.fill(step)
        save({'step': step, 'big': big, 'small': [np.full(3, step, np.int32)], 'loss': float(step) / 7}, path)


def check_consistent(obj):
    "A checkpoint written by `saver`: every part must come from the same save."
    s = obj['step']
    assert type(s) is int and obj['loss'] == float(s) / 7
    assert obj['big'].shape == (1_000_000,) and (obj['big'] == s).all() and (obj['small'][0] == s).all()
    return s


def test_sigkill_during_save_leaves_old_or_new_checkpoint(tmp_path):
    "A process saving 8 MB checkpoints in a loop is killed with SIGKILL at random instants, 40 times (or more)."
    p = tmp_path / 'run.ckpt'
    save({'step': 0, 'big': np.zeros(1_000_000), 'small': [np.zeros(3, np.int32)], 'loss': 0.0}, p)
    rng, step, advanced, torn, kills = random.Random(0), 0, 0, 0, 0
    while kills < 40 or (kills < 150 and (advanced < 10 or torn < 5)):  # more kills only on a very slow or loaded machine
        kills += 1
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: save until killed, never return into pytest
            try: os.close(r); saver(p, step, w)
            finally: os._exit(1)
        os.close(w)
        assert os.read(r, 1) == b'r'; os.close(r)
        time.sleep(rng.uniform(0.0, 0.2))
        os.kill(pid, signal.SIGKILL)
        assert os.waitpid(pid, 0)[1] == signal.SIGKILL  # it was still saving when it was killed
        new = check_consistent(load(p))  # never corrupt, never a mix of two saves
        assert new >= step
        advanced += new > step
        step = new
        leftovers = [f for f in os.listdir(tmp_path) if f.endswith('.tmp')]
        torn += bool(leftovers)  # the kill landed while a temporary file was being written
        for f in leftovers: os.unlink(tmp_path / f)
    assert advanced >= 10 and torn >= 5, (advanced, torn)


def test_loading_while_another_process_saves_sees_whole_checkpoints(tmp_path):
    "A reader never sees a half-written file: 150 loads while a child process keeps replacing the checkpoint."
    p = tmp_path / 'run.ckpt'
    save({'step': 0, 'big': np.zeros(1_000_000), 'small': [np.zeros(3, np.int32)], 'loss': 0.0}, p)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try: os.close(r); saver(p, 0, w)
        finally: os._exit(1)
    os.close(w); os.read(r, 1); os.close(r)
    try:
        steps = [check_consistent(load(p)) for _ in range(150)]
    finally:
        os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)
    assert steps == sorted(steps) and len(set(steps)) > 5  # saves went on during the loads, and only forward


def test_top_level_names():
    import minima
    assert minima.save is save and minima.load is load


# ---- resuming from a checkpoint file is bit-identical to the uninterrupted run ------------------------------

import minima.init
from minima.autograd import Tensor
from minima.nn import Linear, Tanh, Sequential, MSELoss
from minima.optim import sgd, adaptive, adam, lr_scheduler as sch
from minima.optim.base import Optimizer

OPTIMIZERS = {n: getattr(m, n) for m in (sgd, adaptive, adam) for n in m.__all__
              if isinstance(getattr(m, n), type) and issubclass(getattr(m, n), Optimizer)}
EXTRA = {  # option combinations beyond the defaults, by class
    'SGD': [dict(lr=0.1, momentum=0.9), dict(lr=0.1, momentum=0.9, dampening=0.0, nesterov=True, weight_decay=1e-2),
            dict(lr=0.1, momentum=0.5, dampening=0.3, maximize=True, clip_norm=0.5)],
    'Adagrad': [dict(lr_decay=0.01, initial_accumulator_value=0.1, weight_decay=1e-2)],
    'AdaGrad': [dict(lr=0.01, weight_decay=1e-3, decoupled_weight_decay=True)],
    'RMSprop': [dict(centered=True, momentum=0.5), dict(weight_decay=0.1, decoupled_weight_decay=True)],
    'RMSProp': [dict(alpha=0.8, momentum=0.9, centered=True)],
    'Adadelta': [dict(rho=0.5, weight_decay=1e-2)],
    'Adam': [dict(amsgrad=True, weight_decay=0.1), dict(lr=1e-2, maximize=True, decoupled_weight_decay=True, weight_decay=0.1)],
    'AdamW': [dict(amsgrad=True)], 'Adamax': [dict(weight_decay=1e-2)], 'NAdam': [dict(decoupled_weight_decay=True, weight_decay=0.1)],
    'RAdam': [dict(decoupled_weight_decay=True, weight_decay=0.1, clip_norm=0.1)],
}
OPT_CONFIGS = [(n, {}, ()) for n in OPTIMIZERS] + [(n, {**kw, 'nonfinite': 'skip'}, (2, 8))
                                                   for n in OPTIMIZERS for kw in [{}] + EXTRA.get(n, [])]

N_STEPS, SAVE_AT = 12, 5
rng_data = np.random.default_rng(42)
X, Y = rng_data.standard_normal((12 * 4, 4)).astype(np.float32), rng_data.standard_normal((12 * 4, 2)).astype(np.float32)


def new_model(seed):
    minima.init.manual_seed(seed)
    return Sequential(Linear(4, 8), Tanh(), Linear(8, 2))


def train(model, opt, sched, steps, nan_at, lrs):
    "Train for the given step numbers; a NaN is put in a gradient at the steps in `nan_at`."
    loss_fn = MSELoss()
    for t in steps:
        opt.zero_grad()
        loss = loss_fn(model(Tensor(X[4 * t:4 * t + 4])), Tensor(Y[4 * t:4 * t + 4]))
        loss.backward()
        if t in nan_at: next(iter(model.parameters())).grad[0, 0] = np.nan
        opt.step()
        if sched is not None: sched.step(loss.item()) if isinstance(sched, (sch.ReduceLROnPlateau, sch.KingLR)) else sched.step()
        lrs.append([g['lr'] for g in opt.param_groups])


def compare_runs(make_opt, make_sched, nan_at, tmp_path):
    "Run N_STEPS uninterrupted, and SAVE_AT steps + save + load into fresh objects + the rest: the results are equal bit for bit."
    model_a = new_model(0); opt_a = make_opt(model_a); sched_a = make_sched(opt_a)
    lrs_a = []
    train(model_a, opt_a, sched_a, range(N_STEPS), nan_at, lrs_a)

    model_b = new_model(0); opt_b = make_opt(model_b); sched_b = make_sched(opt_b)
    lrs_b = []
    train(model_b, opt_b, sched_b, range(SAVE_AT), nan_at, lrs_b)
    save({'model': model_b, 'optimizer': opt_b, 'scheduler': sched_b, 'step': SAVE_AT}, tmp_path / 'run.ckpt')
    del model_b, opt_b, sched_b

    model_c = new_model(1); opt_c = make_opt(model_c); sched_c = make_sched(opt_c)  # fresh objects, other weights
    ck = load(tmp_path / 'run.ckpt')
    model_c.load_state_dict(ck['model'])
    opt_c.load_state_dict(ck['optimizer'])
    if sched_c is not None: sched_c.load_state_dict(ck['scheduler'])
    train(model_c, opt_c, sched_c, range(ck['step'], N_STEPS), nan_at, lrs_b)

    for (n, p), (n2, q) in zip(model_a.named_parameters(), model_c.named_parameters()):
        assert n == n2 and p.data.dtype == q.data.dtype and p.data.tobytes() == q.data.tobytes(), n
    same(opt_a.state_dict(), opt_c.state_dict())
    if sched_a is not None: same(sched_a.state_dict(), sched_c.state_dict())
    assert lrs_a == lrs_b
    return opt_a


@pytest.mark.parametrize('name,kw,nan_at', OPT_CONFIGS,
                         ids=[f'{n}-{i}' for i, (n, kw, _) in enumerate(OPT_CONFIGS)])
def test_resume_is_bit_identical_for_every_optimizer(name, kw, nan_at, tmp_path):
    cls = OPTIMIZERS[name]
    opt = compare_runs(lambda m: cls(m.named_parameters(), **kw), lambda o: None, nan_at, tmp_path)
    if nan_at: assert opt.skipped_steps == len(nan_at)
    assert all(s['step'] == N_STEPS - len(nan_at) for s in opt.state.values())


SCHEDULERS = {
    'StepLR': lambda o: sch.StepLR(o, step_size=3, gamma=0.5),
    'MultiStepLR': lambda o: sch.MultiStepLR(o, milestones=[2, 5, 7], gamma=0.5),
    'ConstantLR': lambda o: sch.ConstantLR(o, factor=0.5, total_iters=4),
    'LinearLR': lambda o: sch.LinearLR(o, start_factor=0.1, total_iters=7),
    'ExponentialLR': lambda o: sch.ExponentialLR(o, gamma=0.9),
    'PolynomialLR': lambda o: sch.PolynomialLR(o, total_iters=9, power=2.0),
    'CosineAnnealingLR': lambda o: sch.CosineAnnealingLR(o, T_max=7, eta_min=1e-3),
    'CosineAnnealingWarmRestarts': lambda o: sch.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2),
    'CyclicLR': lambda o: sch.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3, mode='exp_range', gamma=0.9),
    'OneCycleLR': lambda o: sch.OneCycleLR(o, max_lr=0.1, total_steps=N_STEPS, three_phase=True),
    'LambdaLR': lambda o: sch.LambdaLR(o, lambda e: 1 / (1 + e)),
    'MultiplicativeLR': lambda o: sch.MultiplicativeLR(o, lambda e: 0.9),
    'ExponentialDecayLR': lambda o: sch.ExponentialDecayLR(o, stage_length=3, staircase=True, decay=0.5),
    'NoamLR': lambda o: sch.NoamLR(o, model_dim=16, warmup_steps=4),
    'SequentialLR': lambda o: sch.SequentialLR(o, [sch.LinearLR(o, start_factor=0.1, total_iters=3),
                                                   sch.CosineAnnealingLR(o, T_max=5)], milestones=[3]),
    'ChainedScheduler': lambda o: sch.ChainedScheduler([sch.ExponentialLR(o, gamma=0.9), sch.StepLR(o, step_size=4)]),
    'ReduceLROnPlateau': lambda o: sch.ReduceLROnPlateau(o, factor=0.5, patience=1),
    'KingLR': lambda o: sch.KingLR(o, patience=3, decay=0.5),
}
SCHED_CONFIGS = [(s, o) for s in SCHEDULERS for o in ('SGD', 'Adam')]


def test_every_scheduler_is_covered():
    classes = {n for n in sch.__all__ if isinstance(getattr(sch, n), type) and n not in ('LRScheduler',)}
    assert classes == set(SCHEDULERS)


@pytest.mark.parametrize('sname,oname', SCHED_CONFIGS, ids=[f'{s}-{o}' for s, o in SCHED_CONFIGS])
def test_resume_is_bit_identical_for_every_scheduler(sname, oname, tmp_path):
    make_opt = {'SGD': lambda m: sgd.SGD([{'params': list(m.parameters())[:2]}, {'params': list(m.parameters())[2:], 'lr': 0.05}],
                                         lr=0.1, momentum=0.9, nonfinite='skip'),
                'Adam': lambda m: adam.Adam(m.parameters(), lr=0.01, nonfinite='skip')}[oname]
    compare_runs(make_opt, SCHEDULERS[sname], (3,), tmp_path)


def test_state_dicts_neither_share_nor_keep_arrays():
    "Editing a state dict after state_dict() or after load_state_dict() never reaches the live model or optimizer."
    model = new_model(0); opt = adam.Adam(model.parameters(), lr=0.01)
    train(model, opt, None, range(2), (), [])
    msd, osd = model.state_dict(), opt.state_dict()
    before = [p.data.copy() for p in model.parameters()], [s['exp_avg'].copy() for s in opt.state.values()]
    for a in msd.values(): a += 1
    for s in osd['state'].values(): s['exp_avg'] += 1
    assert all((p.data == q).all() for p, q in zip(model.parameters(), before[0]))
    assert all((s['exp_avg'] == q).all() for s, q in zip(opt.state.values(), before[1]))
    model2 = new_model(1); opt2 = adam.Adam(model2.parameters(), lr=0.01)
    model2.load_state_dict(msd); opt2.load_state_dict(osd)
    for a in msd.values(): a += 1
    for s in osd['state'].values(): s['exp_avg'] += 1
    assert all((p.data == q + 1).all() for p, q in zip(model2.parameters(), before[0]))
    assert all((s['exp_avg'] == q + 1).all() for s, q in zip(opt2.state.values(), before[1]))


def test_save_never_changes_the_process_umask(tmp_path, monkeypatch):
    "Other threads may create files during a save: the umask must never be touched, even briefly."
    def refuse(*args): raise AssertionError('os.umask called during save')
    monkeypatch.setattr(os, 'umask', refuse)
    save({'w': np.ones(2)}, tmp_path / 'fresh')
    same({'w': np.ones(2)}, load(tmp_path / 'fresh'))
