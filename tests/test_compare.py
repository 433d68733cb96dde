"""`python -m minima.compare` / `minima-compare`: quick runs, the plot, MNIST from IDX files, bad arguments."""
import shutil, subprocess, sys
from pathlib import Path

import numpy as np
import pytest

from minima.compare import run, parse_args, OPTIMIZERS, DEFAULT_OPTIMIZERS
from minima.data import write_idx

def run_cli(*args, exe=(sys.executable, '-m', 'minima.compare'), cwd=None):
    return subprocess.run([*exe, *args], capture_output=True, text=True, timeout=300, cwd=cwd)

def png_stats(path):
    from matplotlib import image
    img = image.imread(str(path))[..., :3]
    return img.shape, float(img.std())

def test_quick_run_table_and_plot(tmp_path, capsys):
    out = tmp_path / 'curves.png'
    res = run(['--optimizers', 'sgd,adam', '--epochs', '1', '--out', str(out), '--no-progress', '--seed', '3'])
    assert [r['name'] for r in res] == ['sgd', 'adam']
    for r in res:
        assert len(r['losses']) == r['steps_per_epoch'] == int(np.ceil(1438 / 32))
        assert np.isfinite(r['losses']).all() and r['losses'][-5:].mean() < r['losses'][:5].mean()
        assert 0.5 < r['test_acc'] <= 1 and r['seconds'] > 0
        assert r['lr'] == OPTIMIZERS[r['name']][2]
    text = capsys.readouterr().out
    assert 'test acc' in text and 'train loss' in text
    assert text.count('\nsgd ') == 1 and text.count('\nadam ') == 1
    assert out.stat().st_size > 10_000
    shape, std = png_stats(out)
    assert shape[0] > 300 and shape[1] > 600 and std > 0.05

def test_same_seed_same_curve_and_lr_override():
    a = run(['--optimizers', 'momentum', '--epochs', '1', '--no-plot', '--no-progress', '--lr', '0.02'])
    b = run(['--optimizers', 'momentum', '--epochs', '1', '--no-plot', '--no-progress', '--lr', '0.02'])
    assert a[0]['lr'] == 0.02
    np.testing.assert_array_equal(a[0]['losses'], b[0]['losses'])

def test_module_runs_with_progress_bar(tmp_path):
    r = run_cli('--optimizers', 'adagrad', '--epochs', '1', '--out', str(tmp_path / 'p.png'), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'adagrad' in r.stdout and (tmp_path / 'p.png').exists()
    assert '45/45' in r.stderr  # tqdm's bar reached the last of the 45 steps

def test_console_script(tmp_path):
    exe = shutil.which('minima-compare')
    if exe is None: pytest.skip('minima-compare is not installed (pip install -e .)')
    r = run_cli('--optimizers', 'rmsprop', '--epochs', '1', '--no-plot', '--no-progress', exe=(exe,))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3 and lines[2].startswith('rmsprop'), r.stdout

@pytest.mark.parametrize('args, words', [
    (['--optimizers', 'adam,lbfgs'], "unknown optimizer 'lbfgs'"),
    (['--lr', '-0.1'], '--lr: must be positive'),
    (['--lr', '0'], '--lr: must be positive'),
    (['--lr', 'inf'], '--lr: must be positive'),
    (['--epochs', '-1'], '--epochs: must be positive'),
    (['--batch-size', 'x'], 'expected an integer'),
    (['--seed', '-2'], '--seed must be >= 0'),
    (['--root', '/no/such/folder/anywhere'], 'no such folder'),
    (['--out', '/no/such/folder/x.png'], 'does not exist'),
])
def test_bad_arguments_exit_2_with_one_line(args, words):
    r = run_cli(*args)
    assert r.returncode == 2
    assert r.stdout == ''
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith('minima-compare: error: ') and words in lines[0], r.stderr

def test_root_without_mnist_files(tmp_path):
    (tmp_path / 'train-images-idx3-ubyte').write_bytes(b'')
    with pytest.raises(SystemExit) as e: parse_args(['--root', str(tmp_path)])
    assert e.value.code == 2

def test_mnist_from_idx_files(tmp_path, capsys):
    "A small MNIST-format data set (two classes told apart by a bright square) trains through --root."
    rng = np.random.default_rng(0)
    def images(n):
        y = rng.integers(0, 2, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        x[y == 1, 4:12, 4:12] = 255
        return x, y
    (x, y), (xt, yt) = images(256), images(64)
    write_idx(tmp_path / 'train-images-idx3-ubyte.gz', x); write_idx(tmp_path / 'train-labels-idx1-ubyte.gz', y)
    write_idx(tmp_path / 't10k-images-idx3-ubyte', xt); write_idx(tmp_path / 't10k-labels-idx1-ubyte', yt)
    res = run(['--root', str(tmp_path), '--optimizers', 'adam', '--epochs', '2', '--no-plot', '--no-progress'])
    assert res[0]['steps_per_epoch'] == 8 and res[0]['test_acc'] > 0.9

def test_defaults():
    a = parse_args([])
    assert a.optimizers == list(DEFAULT_OPTIMIZERS) and a.epochs == 20 and a.lr is None
    assert set(DEFAULT_OPTIMIZERS) == {'sgd', 'momentum', 'adagrad', 'adadelta', 'rmsprop', 'adam', 'adamw', 'nadam'}
