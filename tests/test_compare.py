"""`python -m minima.compare`: the quick run of every problem, the report, bad input, diverged and failed
trials, user-registered optimizers in worker processes, resuming a killed sweep, and a Dask cluster
giving the local run's results trial by trial."""
import json, os, shutil, signal, subprocess, sys, textwrap, time
from pathlib import Path

import numpy as np
import pytest

from minima.compare import (DEFAULT_PROBLEMS, Trial, compare, find_optimizer, load_record, parse_args, register_optimizer, run_trial,
                            summarize, format_table, DEFAULT_OPTIMIZERS, _REGISTERED)
from minima.data import write_idx
from minima.problems import PROBLEMS

ENV = {**os.environ, 'PYTHONWARNINGS': 'default'}  # a warning that leaks must show on stderr


def run_cli(*args, cwd=None, exe=(sys.executable, '-m', 'minima.compare'), timeout=300):
    return subprocess.run([*exe, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=ENV)


def png_std(path):
    from matplotlib import image
    return float(image.imread(str(path))[..., :3].std())


def records_in(out):
    return {p.name: json.loads(p.read_text()) for p in sorted((Path(out) / 'trials').glob('*.json'))}


def test_quick_all_problems_in_the_default_folder(tmp_path):
    "The CI run: every problem, --quick, no --out: everything lands in ./compare_out (git-ignored)."
    r = run_cli('--problem', 'all', '--quick', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'Warning' not in r.stderr
    assert os.listdir(tmp_path) == ['compare_out']
    out = tmp_path / 'compare_out'
    recs = records_in(out)
    assert len(recs) == len(PROBLEMS) * 2 * 3  # problems x (sgd, adam) x 3 learning rates, one seed
    assert {(r['problem'], r['optimizer']) for r in recs.values()} == {(p, o) for p in PROBLEMS for o in ('sgd', 'adam')}
    for p in PROBLEMS:
        assert f'\n{p}: ' in r.stdout
        assert png_std(out / f'curves_{p}.png') > 0.02 and png_std(out / f'lr_{p}.png') > 0.02
    assert png_std(out / 'profile.png') > 0.02
    md, page = (out / 'report.md').read_text(), (out / 'report.html').read_text()
    for p in PROBLEMS: assert f'## {p}' in md and f'<h2>{p}</h2>' in page and f'curves_{p}.png' in page
    assert 'nan' not in md.lower().replace('nadam', '')
    gitignore = Path(__file__).resolve().parents[1] / '.gitignore'
    assert 'compare_out/' in gitignore.read_text().split()


def test_defaults_and_quick_settings():
    a = parse_args([])
    assert a.problems == list(DEFAULT_PROBLEMS) and a.optimizers == list(DEFAULT_OPTIMIZERS) and a.seeds == 3
    assert parse_args(['--problem', 'all']).problems == list(PROBLEMS) and {'cnn', 'charlm'} <= set(PROBLEMS)
    assert a.lrs[0] == 1e-4 and a.lrs[-1] == 1.0 and len(a.lrs) == 9 and a.out == 'compare_out'
    q = parse_args(['--quick', '--optimizers', 'AdamW,momentum'])
    assert q.optimizers == ['AdamW', 'momentum'] and q.seeds == 1 and len(q.lrs) == 3


def write_mnist(root, n_train=256, n_test=64):
    rng = np.random.default_rng(0)
    for split, n in (('train', n_train), ('t10k', n_test)):
        y = rng.integers(0, 2, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        x[y == 1, 4:12, 4:12] = 255
        write_idx(root / f'{split}-images-idx3-ubyte.gz', x); write_idx(root / f'{split}-labels-idx1-ubyte.gz', y)


@pytest.fixture
def corrupt_mnist(tmp_path):
    root = tmp_path / 'mnist'; root.mkdir(); write_mnist(root)
    raw = (root / 'train-images-idx3-ubyte.gz').read_bytes()
    (root / 'train-images-idx3-ubyte.gz').write_bytes(raw[:len(raw) // 2])  # a download cut short
    return root


@pytest.mark.parametrize('args, words', [
    (['--problem', 'cifar'], "--problem: unknown problem 'cifar'"),
    (['--optimizers', 'adam,adamx'], "unknown optimizer 'adamx'"),
    (['--optimizers', 'adam,adam'], "'adam' is given twice"),
    (['--optimizers', 'adam,Adam'], "'Adam' is given twice"),
    (['--problem', 'mlp,mlp'], "'mlp' is given twice"),
    (['--sweep', 'momentum'], 'only the learning rate can be swept'),
    (['--sweep', 'lr:1:1e-3'], '0 < low < high'),
    (['--sweep', 'lr:1e-3:1:1'], 'at least 2 points'),
    (['--sweep', 'lr:x:1'], 'must be numbers'),
    (['--lr', '0.1', '--sweep', 'lr'], 'not allowed with argument'),
    (['--sweep', 'cifar=lr'], "--sweep: unknown problem 'cifar'"),
    (['--sweep', 'lr', '--sweep', 'lr:1e-3:1'], '--sweep: two grids for every problem'),
    (['--sweep', 'mlp=lr', '--sweep', 'logreg,mlp=none'], '--sweep: two grids for mlp'),
    (['--sweep', 'mlp=lr:1:1e-3'], '0 < low < high'),
    (['--lr', '-1'], 'must be positive'),
    (['--seeds', '0'], 'must be positive'),
    (['--epochs', '2', '--steps', '5'], 'not allowed with argument'),
    (['--root', '/no/such/folder'], 'no such folder'),
    (['--scheduler', 'tcp://127.0.0.1:9'], 'cannot reach the Dask scheduler at tcp://127.0.0.1:9'),
])
def test_bad_input_one_line_exit_2(args, words):
    r = run_cli(*args, '--quick', '--no-progress')
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert r.stdout == ''
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith('minima-compare: error: ') and words in lines[0], r.stderr


def test_corrupt_idx_one_line_exit_2(corrupt_mnist, tmp_path):
    r = run_cli('--root', str(corrupt_mnist), '--problem', 'mlp', '--quick', '--out', str(tmp_path / 'o'))
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and len(lines) == 1 and 'corrupt gzip data' in lines[0] and 'train-images' in lines[0], r.stderr
    assert not (tmp_path / 'o').exists()


def test_out_must_be_a_folder(tmp_path):
    (tmp_path / 'f').write_text('x')
    r = run_cli('--quick', '--out', str(tmp_path / 'f'))
    assert r.returncode == 2 and 'is not a folder' in r.stderr and len(r.stderr.splitlines()) == 1


def test_mnist_from_idx_files(tmp_path):
    root = tmp_path / 'mnist'; root.mkdir(); write_mnist(root)
    recs = compare(['mlp'], ['adam'], [1e-3], epochs=2, root=str(root), out=tmp_path / 'o', workers=1, progress=False)
    assert recs[0]['root'] == str(root) and recs[0]['steps_per_epoch'] == 8 and recs[0]['metric'] > 0.9


def test_every_run_diverged_exit_1_without_warnings(tmp_path):
    r = run_cli('--problem', 'mlp,quadratic', '--optimizers', 'adam,sgd', '--lr', '1e6', '--quick', '--out', str(tmp_path))
    assert r.returncode == 1, r.stderr
    assert 'RuntimeWarning' not in r.stderr and 'Warning' not in r.stderr
    assert 'every one diverged' in r.stderr.splitlines()[-1]
    table = r.stdout.split('\nmlp: ')[1].split('\n\n')[0].splitlines()[1:]
    assert len({len(line) for line in table}) == 1  # header, rule and rows line up
    assert all('diverged' in line for line in table[2:]) and 'nan' not in r.stdout.lower().replace('nadam', '')
    assert {rec['status'] for rec in records_in(tmp_path).values()} == {'diverged'}


def test_some_runs_diverged_exit_0(tmp_path):
    "SGD diverges on the quadratic at lr 1 (its largest curvature is about 60) but not on logistic regression."
    r = run_cli('--problem', 'quadratic,logreg', '--optimizers', 'sgd', '--lr', '1', '--quick', '--out', str(tmp_path), '--no-progress')
    assert r.returncode == 0, r.stderr
    assert '1 trial(s) diverged' in r.stderr and 'Warning' not in r.stderr
    status = {rec['problem']: rec['status'] for rec in records_in(tmp_path).values()}
    assert status == {'quadratic': 'diverged', 'logreg': 'ok'}


def test_a_problem_with_its_own_grid(tmp_path):
    "--sweep PROBLEMS=SPEC: those problems run their own grid, the others the grid for every problem; the report says which."
    r = run_cli('--problem', 'logreg,quadratic', '--optimizers', 'sgd', '--sweep', 'lr:0.01:0.1:2', '--sweep', 'quadratic=lr:1e-3:1e-1:3',
                '--quick', '--out', str(tmp_path), '--no-progress')
    assert r.returncode == 0, r.stderr
    lrs = {}
    for rec in records_in(tmp_path).values(): lrs.setdefault(rec['problem'], set()).add(rec['lr'])
    assert lrs == {'logreg': {0.01, 0.1}, 'quadratic': {1e-3, 1e-2, 0.1}}
    assert 'lr 0.01, 0.1 on logreg; lr 0.001, 0.01, 0.1 on quadratic' in (tmp_path / 'report.md').read_text()


SCRIPT = '''
import sys
from minima import optim
from minima.compare import register_optimizer, main

def broken(params, lr):
    raise RuntimeError('this optimizer is broken')

register_optimizer('heavyball', lambda params, lr: optim.SGD(params, lr=lr, momentum=0.5), lr=0.05)
register_optimizer('broken', broken)
main(sys.argv[1:])
'''


def test_registered_optimizers_in_worker_processes_and_failed_trials(tmp_path):
    script = tmp_path / 'mine.py'; script.write_text(SCRIPT)
    r = run_cli('--problem', 'logreg,quadratic', '--optimizers', 'heavyball,broken,adam', '--sweep', 'none', '--seeds', '2',
                '--quick', '--workers', '2', '--out', str(tmp_path / 'o'), '--no-progress', exe=(sys.executable, str(script)))
    assert r.returncode == 0, r.stderr
    recs = list(records_in(tmp_path / 'o').values())
    mine = [x for x in recs if x['optimizer'] == 'heavyball']
    assert len(mine) == 4 and all(x['status'] == 'ok' and x['lr'] == 0.05 for x in mine)
    bad = [x for x in recs if x['optimizer'] == 'broken']
    assert len(bad) == 2 and all(x['status'] == 'failed' and x['error'] == 'RuntimeError: this optimizer is broken' for x in bad)
    assert 'failed' in r.stdout and '2 failed' in r.stderr
    md = (tmp_path / 'o' / 'report.md').read_text()
    assert 'Failed: broken: RuntimeError: this optimizer is broken' in md


def test_same_trial_same_record_and_seeds_differ():
    a = run_trial(Trial('autoencoder', 'adam', 1e-3, 0, steps=20))
    b = run_trial(Trial('autoencoder', 'adam', 1e-3, 0, steps=20))
    c = run_trial(Trial('autoencoder', 'adam', 1e-3, 1, steps=20))
    assert a['losses'] == b['losses'] and a['losses'] != c['losses'] and len(a['losses']) == 20


def test_resume_after_kill_recomputes_nothing_finished(tmp_path):
    out = tmp_path / 'o'
    args = ('--problem', 'autoencoder,mlp', '--optimizers', 'sgd,adam', '--sweep', 'lr:1e-3:1e-1:4', '--seeds', '1',
            '--epochs', '3', '--workers', '1', '--out', str(out), '--no-progress')
    proc = subprocess.Popen([sys.executable, '-m', 'minima.compare', *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        deadline = time.time() + 120
        while len(list((out / 'trials').glob('*.json'))) < 3 and time.time() < deadline and proc.poll() is None: time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL); proc.wait()
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / 'trials').glob('*.json')}
    assert 3 <= len(before) < 16, len(before)  # killed midway
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / 'trials').glob('*.json')}
    assert len(after) == 16
    for name, stamp in before.items(): assert after[name] == stamp, f'{name} was computed again'
    # a third run computes nothing: every record is read back
    r = run_cli(*args)
    assert r.returncode == 0 and {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / 'trials').glob('*.json')} == after


def test_a_record_for_other_settings_is_not_reused(tmp_path):
    t = Trial('logreg', 'sgd', 0.1, 0, steps=5)
    compare(['logreg'], ['sgd'], [0.1], steps=5, out=tmp_path, workers=1, progress=False)
    assert load_record(tmp_path, t) is not None
    assert load_record(tmp_path, Trial('logreg', 'sgd', 0.1, 0, steps=6)) is None


def test_dask_local_cluster_gives_the_local_results(tmp_path):
    distributed = pytest.importorskip('dask.distributed')
    register_optimizer('test-momentum', lambda params, lr: find_optimizer('sgd')[0](params, lr=lr, momentum=0.8), lr=0.05)
    try:
        kw = dict(problems=['quadratic', 'logreg', 'autoencoder'], optimizers=['adam', 'test-momentum'], lrs=[1e-2, 1e6], seeds=2,
                  steps=40, progress=False)
        local = compare(out=tmp_path / 'local', workers=2, **kw)
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
             distributed.Client(cluster) as client:
            remote = compare(out=tmp_path / 'dask', scheduler=client, **kw)
    finally:
        _REGISTERED.pop('test-momentum')
    assert len(local) == len(remote) == 3 * 2 * 2 + 3 * 2
    assert {r['status'] for r in local} == {'ok', 'diverged'}
    for a, b in zip(local, remote):
        for k in ('problem', 'optimizer', 'lr', 'seed', 'status', 'losses', 'val_curve', 'train_loss', 'val_loss', 'metric'):
            assert a[k] == b[k], (k, a['problem'], a['optimizer'], a['lr'], a['seed'])


def test_console_script(tmp_path):
    exe = shutil.which('minima-compare')
    if exe is None: pytest.skip('minima-compare is not installed')
    r = run_cli('--problem', 'logreg', '--quick', '--out', str(tmp_path), '--no-progress', exe=(exe,))
    assert r.returncode == 0, r.stderr
    assert 'logreg: ' in r.stdout and (tmp_path / 'report.html').exists()


def test_table_of_a_problem_where_all_diverged():
    rows = [dict(optimizer='sgd', status='diverged'), dict(optimizer='adam', status='failed')]
    lines = format_table(rows, 'accuracy').splitlines()
    assert len({len(l) for l in lines}) == 1 and 'diverged' in lines[2] and 'failed' in lines[3]


def test_interrupt_exits_130_with_one_line_and_keeps_finished_trials(tmp_path):
    proc = subprocess.Popen([sys.executable, '-m', 'minima.compare', '--problem', 'mlp', '--workers', '2', '--out', str(tmp_path), '--no-progress'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not list((tmp_path / 'trials').glob('*.json')) and time.time() < deadline: time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    t0 = time.time()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and time.time() - t0 < 60  # the queued trials were dropped, not run
    assert err.strip().splitlines()[-1].startswith('minima-compare: interrupted; the finished trials are saved')
    assert 'Traceback' not in err
    assert all(json.loads(p.read_text())['status'] == 'ok' for p in (tmp_path / 'trials').glob('*.json'))
