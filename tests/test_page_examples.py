"""Every example on every docs page runs when a reader copies it into a fresh interpreter.

For each notebook in nbs/ (each is one page of the docs site) this takes the code the page shows, in
order, and runs it in a new Python process (working folder: an empty temporary folder; matplotlib's
Agg backend; a timeout). The code a page shows is what nbdev's processing leaves visible:
- not cells marked `#| hide`, `#| export`, `#| exporti` or `#| default_exp` (the page leaves them out),
  nor `#| include: false` or `#| echo: false` cells, nor `show_doc` cells (the page shows their output);
- `#| exports` cells are shown, so they run; lines ending in `#| hide_line` are left out;
- `#| eval: false` cells are shown but not run (they are examples a reader adapts, not runs), and neither
  are `#| slow` cells (the long versions of a page's runs: nbdev_test runs them with `--flags slow`);
- directives and notebook magics (`%time`, `!pip`) are not Python and are dropped.
The notebook's own checks live in hidden cells, so they are not part of what runs here (nbdev_test
runs them). A failure names the page, the notebook cell (its index in the .ipynb, and its first
line) and the error; every page is run, so one run lists every page that fails.

    python -m pytest tests/test_page_examples.py -q              # all pages
    python tests/test_page_examples.py nbs/04b_optim_sgd.ipynb   # one page, with the failing cell's traceback
"""
import json, os, re, subprocess, sys, tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / 'nbs'
TIMEOUT = int(os.environ.get('MINIMA_PAGE_TIMEOUT', 600))  # seconds per page
HIDDEN = {'hide', 'export', 'exporti', 'default_exp'}
_directive = re.compile(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')

def page_notebooks():
    return sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith(('_', '.')))

def directives(src: str) -> dict:
    "The `#|` directives of a cell (nbdev reads them anywhere in the cell's leading comment lines)."
    d = {}
    for line in src.splitlines():
        m = _directive.match(line)
        if m: d[m.group(1).lower()] = m.group(2).strip('"\'').lower()
        elif line.strip() and not line.lstrip().startswith('#'): break
    return d

def visible_cells(nb_path: Path) -> list:
    "[(cell index, code, runs)] for the code cells the rendered page shows, in page order."
    out = []
    for i, c in enumerate(json.loads(nb_path.read_text())['cells']):
        if c['cell_type'] != 'code': continue
        src = ''.join(c['source'])
        d = directives(src)
        if d.keys() & HIDDEN or d.get('include') == 'false' or d.get('echo') == 'false': continue
        if re.search(r'^show_doc', src, re.M): continue  # nbdev shows the API entry, not the call
        lines = [l for l in src.splitlines()
                 if not _directive.match(l) and not re.search(r'#\|\s*hide_line\s*$', l)
                 and not re.match(r'\s*(%|!)', l)]
        code = '\n'.join(lines).strip('\n')
        if code.strip(): out.append((i, code, d.get('eval') != 'false' and 'slow' not in d))
    return out

RUNNER = r'''
import sys, traceback
cells = __CELLS__
g = {'__name__': '__main__'}
for idx, code in cells:
    try: exec(compile(code, f'<cell {idx}>', 'exec'), g)
    except BaseException as e:
        if isinstance(e, SystemExit) and not e.code: continue
        print(f'@@FAILED {idx}', file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
    finally:
        try:
            import matplotlib.pyplot as plt
            plt.close('all')
        except Exception: pass
print('@@OK')
'''

def run_page(nb_path: Path) -> dict:
    "Run the visible code of one page in a fresh interpreter; {'ok', 'cell', 'first_line', 'error', 'seconds'}."
    import time
    cells = [(i, code) for i, code, runs in visible_cells(nb_path) if runs]
    first = {i: code.splitlines()[0] for i, code in cells}
    env = {**os.environ, 'MPLBACKEND': 'Agg', 'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]).rstrip(os.pathsep),
           'OPENBLAS_NUM_THREADS': os.environ.get('OPENBLAS_NUM_THREADS', '1')}
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / '_page.py'
        script.write_text(RUNNER.replace('__CELLS__', repr(cells)))
        try:
            r = subprocess.run([sys.executable, script.name], cwd=tmp, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            return dict(ok=False, cell=None, first_line='', error=f'timed out after {TIMEOUT} s', seconds=time.time() - t0)
    m = re.search(r'@@FAILED (\d+)', r.stderr)
    if r.returncode == 0 and '@@OK' in r.stdout: return dict(ok=True, seconds=time.time() - t0)
    idx = int(m.group(1)) if m else None
    tb = r.stderr[m.end():] if m else r.stderr
    last = [l for l in tb.strip().splitlines() if l.strip()]
    return dict(ok=False, cell=idx, first_line=first.get(idx, ''), error=last[-1] if last else f'exit code {r.returncode}',
                traceback=tb[-3000:], seconds=time.time() - t0)

def describe(nb_path: Path, res: dict) -> str:
    page = 'index.html' if nb_path.stem == 'index' else re.sub(r'^\d+[a-z]?_', '', nb_path.stem) + '.html'
    where = f'cell {res["cell"]} ({res["first_line"][:70]!r})' if res.get('cell') is not None else 'the page'
    return f'{nb_path.name} (page {page}): {where} fails when copied into a fresh interpreter: {res["error"]}'

_results = {}

@pytest.fixture(scope='module')
def results(request):
    "Run every selected page once, two at a time (the machine has two cores)."
    wanted = [item.callspec.params['nb'] for item in request.session.items
              if getattr(item, 'originalname', '') == 'test_page_examples_run' and hasattr(item, 'callspec')]
    todo = [NBS / nb for nb in wanted if nb not in _results]
    with ThreadPoolExecutor(max_workers=2) as ex:
        for nb, res in zip(todo, ex.map(run_page, todo)): _results[nb.name] = res
    return _results

@pytest.mark.parametrize('nb', [p.name for p in page_notebooks()])
def test_page_examples_run(nb, results):
    res = results[nb]
    assert res['ok'], describe(NBS / nb, res) + '\n' + res.get('traceback', '')

CHECKS = re.compile(r'^\s*(?:assert\b|test_(?:eq|close|fail|ne|is|warns|eq_type|shuffled|stdout|fig_exists)\s*\()', re.M)

def visible_checks(nb_path: Path) -> list:
    "[(cell index, line)] for each test assertion in a cell the page shows (they belong in `#| hide` cells)."
    return [(i, m.group(0).strip()) for i, code, _ in visible_cells(nb_path) for m in CHECKS.finditer(code)]

@pytest.mark.parametrize('nb', [p.name for p in page_notebooks()])
def test_checks_are_hidden(nb):
    "The notebook's own checks (assert, test_eq, test_close, ...) are in hidden cells, not in the reader's path."
    found = visible_checks(NBS / nb)
    cells = sorted({i for i, _ in found})
    assert not found, (f'{nb}: {len(found)} checks in {len(cells)} visible cells (cells {cells[:12]}); '
                       f'move them to `#| hide` cells right after the example')

def test_extraction_follows_the_page(tmp_path):
    "What counts as visible code, on a small notebook."
    cells = [('#| default_exp x', None), ('#| export\ndef f(): return 1', None), ('#| exports\ndef g(): return 2', 'g'),
             ('#| hide\nfrom fastcore.test import *\ntest_eq(g(), 2)', None), ('import numpy as np', 'numpy'),
             ('#| eval: false\nwhile True: pass', 'while'), ('#| echo: false\nprint(1)', None), ('show_doc(g)', None),
             ('%time x = 1\ny = 2 #| hide_line\nz = 3', 'z = 3'), ('#| include: false\nsecret = 1', None),
             ('#| code-fold: true\nw = 4', 'w = 4')]
    nb = tmp_path / 'nb.ipynb'
    nb.write_text(json.dumps(dict(cells=[dict(cell_type='code', source=s, metadata={}, outputs=[]) for s, _ in cells])))
    got = visible_cells(nb)
    assert [i for i, _, _ in got] == [i for i, (_, want) in enumerate(cells) if want]
    for (i, code, runs), want in zip(got, [w for _, w in cells if w]): assert want in code and '#|' not in code
    assert [runs for _, _, runs in got] == [True, True, False, True, True]
    assert next(code for i, code, _ in got if i == 8) == 'z = 3'
    assert visible_checks(nb) == []                     # the test_eq sits in the hidden cell
    nb.write_text(json.dumps(dict(cells=[dict(cell_type='code', source='x = 1\nassert x == 1\ntest_close(x, 1)', metadata={}, outputs=[])])))
    assert visible_checks(nb) == [(0, 'assert'), (0, 'test_close(')]

def test_a_failing_page_names_its_cell(tmp_path):
    nb = tmp_path / '01_demo.ipynb'
    nb.write_text(json.dumps(dict(cells=[dict(cell_type='code', source=s, metadata={}, outputs=[]) for s in
                                         ['#| hide\nfrom sklearn.datasets import load_digits', 'x = 1', 'load_digits()']])))
    res = run_page(nb)
    assert not res['ok'] and res['cell'] == 2 and "NameError: name 'load_digits' is not defined" in res['error']
    assert describe(nb, res).startswith("01_demo.ipynb (page demo.html): cell 2 ('load_digits()')")
    ok = tmp_path / 'index.ipynb'
    ok.write_text(json.dumps(dict(cells=[dict(cell_type='code', source='import os\nopen("f.txt", "w").write("in a temporary folder")',
                                              metadata={}, outputs=[])])))
    assert run_page(ok)['ok'] and not (ROOT / 'f.txt').exists()

if __name__ == '__main__':
    nbs = [Path(a) for a in sys.argv[1:]] or page_notebooks()
    failed = 0
    for nb in nbs:
        res = run_page(nb)
        print(f'ok   {nb.name} ({res["seconds"]:.0f} s)' if res['ok'] else 'FAIL ' + describe(nb, res) + '\n' + res['traceback'])
        failed += not res['ok']
    sys.exit(1 if failed else 0)
