#!/usr/bin/env python
"""Build minima's documentation site from the notebooks into `_docs/`, offline.

    python tools/build_docs.py            # process nbs/ -> _proc/, render _proc/ -> _docs/
    python tools/build_docs.py --no-proc  # reuse _proc/ as it is and only render

Three stages:

1. nbdev's notebook processing: the same processors `nbdev_proc_nbs` runs (`FilterDefaults`:
   front matter, `show_doc` cells added after every exported symbol and executed, `#| hide` and
   export cells removed, backticked names linked). It writes processed notebooks to `_proc/`.
   The `nbdev_proc_nbs` command itself also tries to install Quarto and to `pip install -e` the
   package, so this script calls the processing directly. Each API entry (`show_doc`) shows the
   signature once, as Python writes it (`*args`, `**kwargs`, no comments), and under it a table of
   the parameters (type, default, and the docments comment, whose math pandoc typesets), without
   the columns that are empty for every parameter. Where the page shows the source of the same
   function (nbdev's `exports` cells), the signature block is left out: the source says it.
2. pandoc (from the `pypandoc-binary` wheel) turns each processed notebook into an HTML page with
   `--mathml`: equations become MathML, which browsers typeset with no JavaScript and no network.
   Every page gets a sidebar linking all pages (ordered by file name, titled by each notebook's
   first heading), a table of contents, code cells with their outputs, plots embedded as data
   URIs, and `nbs/styles.css`. Source links point to line-numbered copies of the modules under
   `_docs/src/`, so they work offline and on a published site alike.
3. Pagefind (the `pagefind[extended]` wheel) indexes the pages for the search box in every page's
   sidebar. Search needs the site served over http (`python -m http.server -d _docs`).

Users who have Quarto can still run `nbdev_docs`: `nbs/_quarto.yml` sets the same math method.
"""
import argparse, base64, configparser, html, json, os, re, shutil, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------- stage 1: nbdev processing

class _Shown:
    "A default value that prints as `text` (so `inspect.Signature` writes it as a reader would)."
    def __init__(self, text): self.text = text
    def __repr__(self): return self.text

def _fmt_anno(a) -> str:
    "An annotation as Python source writes it: `int`, `np.ndarray`, `tuple[float, float]`."
    import inspect
    if a is inspect.Parameter.empty: return ''
    if isinstance(a, str): return a
    return inspect.formatannotation(a).replace('typing.', '').replace('numpy.', 'np.')

def _fmt_default(v) -> str:
    "A default value as Python source writes it: classes and functions by name, not `<class ...>`."
    import inspect
    if inspect.isclass(v) or inspect.isfunction(v) or inspect.isbuiltin(v):
        mod = getattr(v, '__module__', '') or ''
        mod = 'np' if mod.split('.')[0] == 'numpy' else mod
        return v.__qualname__ if mod in ('builtins', '') else f'{mod}.{v.__qualname__}'
    return repr(v)

def _param_name(p) -> str:
    "`*args` and `**kwargs` as Python writes them."
    import inspect
    return {inspect.Parameter.VAR_POSITIONAL: '*', inspect.Parameter.VAR_KEYWORD: '**'}.get(p.kind, '') + p.name

def _signature(sym):
    "The signature a caller sees (no `self`), or None."
    import inspect
    try: sig = inspect.signature(sym)
    except (TypeError, ValueError): return None
    params = list(sig.parameters.values())
    if params and params[0].name in ('self', 'cls') and not inspect.isclass(sym): params = params[1:]
    return sig.replace(parameters=params)

def _signature_md(name: str, sig) -> str:
    "A code block with the call signature as Python writes it, one parameter a line when long."
    import inspect
    if sig is None: return ''
    params = [p.replace(default=_Shown(_fmt_default(p.default))) if p.default is not p.empty else p
              for p in sig.parameters.values()]
    params = [p.replace(annotation=_Shown(_fmt_anno(p.annotation))) if p.annotation is not p.empty else p for p in params]
    ret = sig.return_annotation
    sig = sig.replace(parameters=params, return_annotation=sig.empty if ret is sig.empty else _Shown(_fmt_anno(ret)))
    text = f'{name}{sig}'
    if len(text) > 90 and len(params) > 1:  # one parameter a line, with the separators Python puts in
        inner = str(sig)[1:str(sig).rindex(')')]
        parts, depth, cur = [], 0, ''
        for ch in inner:
            if ch in '([{': depth += 1
            elif ch in ')]}': depth -= 1
            if ch == ',' and depth == 0: parts.append(cur.strip()); cur = ''
            else: cur += ch
        parts.append(cur.strip())
        text = f'{name}(\n' + ''.join(f'    {q},\n' for q in parts) + ')' + str(sig)[str(sig).rindex(')') + 1:]
    return f'```python\n{text}\n```'

def _param_table(sym, sig=None) -> str:
    """A markdown table of the parameters of `sym`: name, type, default and the docments comment of each,
    and a row for the return value when it is annotated or commented. A column that is empty in every row
    is left out; no table when only the names would remain (the signature shows them)."""
    import inspect
    from fastcore.docments import docments
    sig = sig if sig is not None else _signature(sym)
    if sig is None: return ''
    try: comments = docments(sym, full=False) or {}
    except Exception: comments = {}
    def cell(x): return str(x).replace('|', r'\|').replace('\n', ' ')
    def code(x): return f'`{cell(x)}`' if x else ''
    rows = [(f'**{cell(_param_name(p)).replace("*", chr(92) + "*")}**', code(_fmt_anno(p.annotation)),
             '' if p.default is p.empty else code(_fmt_default(p.default)), cell(comments.get(p.name) or ''))
            for p in sig.parameters.values()]
    ret_anno, ret_doc = _fmt_anno(sig.return_annotation), comments.get('return') or ''
    if ret_anno or ret_doc: rows.append(('**Returns**', code(ret_anno), '', cell(ret_doc)))
    if not rows: return ''
    heads = ['', 'Type', 'Default', 'Details']
    keep = [0] + [i for i in (1, 2, 3) if any(r[i] for r in rows)]
    if keep == [0]: return ''
    lines = ['| ' + ' | '.join(heads[i] for i in keep) + ' |', '|' + '---|' * len(keep)]
    lines += ['| ' + ' | '.join(r[i] for i in keep) + ' |' for r in rows]
    return '\n\n' + '\n'.join(lines) + '\n'

_MODULE = None  # the module the notebook being processed exports to (its `default_exp`)

def _source_link(sym) -> str:
    """`git_url/blob/branch/<module path>#L<line>` for `sym`, or ''. `show_doc` shows the objects the
    notebook's cells define, so the same name is looked up in the exported module and found there."""
    import importlib, inspect
    cfg = _cfg()
    try:
        obj = inspect.unwrap(getattr(sym, 'fget', None) or sym)
        if _MODULE is not None and getattr(obj, '__qualname__', None):
            obj2 = importlib.import_module(_MODULE)
            for part in obj.__qualname__.split('.'): obj2 = getattr(obj2, part)
            obj = inspect.unwrap(getattr(obj2, 'fget', None) or obj2)
        src = inspect.getsourcefile(obj)
        if not src or not src.endswith('.py'): return ''
        path, line = Path(src).resolve(), inspect.getsourcelines(obj)[1]
        base = Path(importlib.import_module(cfg.get('lib_name', 'minima')).__file__).resolve().parent.parent
        rel = path.relative_to(base).as_posix()
    except (TypeError, OSError, ValueError, ImportError, AttributeError): return ''
    return f"{cfg.get('git_url', '').rstrip('/')}/blob/{cfg.get('branch', 'main')}/{rel}#L{line}"

SIG_START, SIG_END = '<!-- signature -->', '<!-- /signature -->'

def _patch_show_doc():
    """Make nbdev's markdown `show_doc` write: a source link, the heading, the signature as Python writes
    it (between SIG_START and SIG_END, so that a page showing the source right after it can drop it),
    the docstring, and a parameter table that carries the argument comments (typeset by pandoc)."""
    from nbdev.showdoc import BasicMarkdownRenderer, _ext_link
    from nbdev.doclinks import NbdevLookup
    from fastcore.docments import _ital_first
    if getattr(BasicMarkdownRenderer, '_minima_table', False): return
    def _repr_markdown_(self):
        doc = '---\n\n'
        link = NbdevLookup().code(self.fn) or _source_link(self.sym)
        if link: doc += _ext_link(link, 'source', 'style="float:right; font-size:smaller"') + '\n\n'
        doc += f"{'#' * self.title_level} {self.nm}\n\n"
        sig = _signature(self.sym)
        if sig is not None: doc += f'{SIG_START}\n\n{_signature_md(self.nm, sig)}\n\n{SIG_END}\n\n'
        if self.docs: doc += _ital_first(self.docs) + '\n'
        return doc + _param_table(self.sym, sig)
    BasicMarkdownRenderer._repr_markdown_ = _repr_markdown_
    BasicMarkdownRenderer._minima_table = True

def _patch_mixed_cells():
    """nbdev runs a cell that mixes imports with other code in full (and warns) so that `show_doc`
    sees the imported names; run only its top-level imports instead, so a plotting cell that uses
    names from cells nbdev does not run cannot break the docs."""
    import ast
    import nbdev.processors as P
    if getattr(P.exec_show_docs, '_minima_mixed', False): return
    orig = P.exec_show_docs.__call__
    imports = (ast.Import, ast.ImportFrom)
    def __call__(self, cell):
        if (cell.cell_type == 'code' and cell.source and P.cell_lang(cell) == 'python'
                and not cell.directives_.keys() & {'export', 'exports', 'exporti', 'exec_doc'}):
            trees = cell.parsed_()
            if (trees and P._ast_contains(trees, imports) and not P._show_docs(trees)
                    and not all(isinstance(t, imports) for t in trees)):
                if not self.nb.has_docs_ or not hasattr(self, 'k'): return
                res = self.k.run_cell('\n'.join(ast.unparse(t) for t in trees if isinstance(t, imports)))
                if res.result.error_in_exec is not None:
                    raise Exception(f"Error in the imports of cell {cell.idx_}:\n{cell.source}") from res.result.error_in_exec
                return
        return orig(self, cell)
    P.exec_show_docs.__call__ = __call__
    P.exec_show_docs._minima_mixed = True

def _complete_modidx():
    """nbdev 2.4's symbol index skips every cell of a notebook whose path contains 'auto' (meant for the
    `# %% auto` cell, it also drops 00_autograd), so its names get no doc links. Add them, in memory."""
    import ast, importlib
    from nbdev.config import get_config
    from nbdev.doclinks import _iter_py_cells, _nbpath2html, patch_name
    cfg = get_config()
    try: idx = importlib.import_module(f"{cfg.lib_name}._modidx").d
    except ImportError: return
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for py in sorted(cfg.lib_path.rglob('*.py')):
        if py.name == '_modidx.py' or '__pycache__' in py.parts: continue
        rel = py.relative_to(cfg.lib_path.parent).as_posix()
        mod = '.'.join(rel[:-3].split('/')).replace('.__init__', '')
        syms = idx['syms'].setdefault(mod, {})
        try:
            for cell in _iter_py_cells(py):
                loc = _nbpath2html(cell.nb_path.relative_to(cfg.nbs_path.resolve())).as_posix()
                for tree in ast.parse(cell.code).body:
                    if not isinstance(tree, kinds): continue
                    names = [patch_name(tree)] + ([f'{tree.name}.{t.name}' for t in tree.body if isinstance(t, kinds)]
                                                  if isinstance(tree, ast.ClassDef) else [])
                    for n in names: syms.setdefault(f'{mod}.{n}', (f'{loc}#{n.lower()}', rel))
        except (ValueError, SyntaxError): continue

def _proc_one(src: Path, dst: Path):
    "Process one notebook with nbdev's default processors (what `nbdev_proc_nbs` does per file)."
    os.chdir(ROOT)
    _patch_show_doc()
    _patch_mixed_cells()
    _complete_modidx()
    from execnb.nbio import read_nb, write_nb
    from nbdev.processors import FilterDefaults
    os.environ['IN_TEST'] = '1'
    nb = read_nb(src)
    global _MODULE
    code = '\n'.join(c.source for c in nb.cells if c.cell_type == 'code')
    if m := re.search(r'^\s*#\|\s*default_exp\s+(\S+)', code, re.M):
        _MODULE = f"{_cfg().get('lib_name', 'minima')}.{m.group(1)}".replace('.__init__', '')
    FilterDefaults()(nb)
    write_nb(nb, dst)

def process_notebooks(nbs: Path, proc: Path, n_workers: int = 2) -> list:
    "Process every notebook in `nbs` into `proc` (cleared first), one process per notebook."
    import subprocess
    from concurrent.futures import ThreadPoolExecutor
    if proc.exists(): shutil.rmtree(proc)
    proc.mkdir(parents=True)
    srcs = sorted(p for p in nbs.glob('*.ipynb') if not p.name.startswith(('_', '.')))
    for p in nbs.iterdir():  # static files (css, yml) travel with the notebooks, as in nbdev
        if p.is_file() and p.suffix != '.ipynb': shutil.copy2(p, proc / p.name)
    env = {**os.environ, 'MPLBACKEND': 'Agg'}
    def run(src):
        r = subprocess.run([sys.executable, __file__, '--proc-one', str(src), str(proc / src.name)],
                           cwd=ROOT, env=env, capture_output=True, text=True)
        return src, r
    failed = []
    with ThreadPoolExecutor(max_workers=max(1, n_workers)) as ex:
        for src, r in ex.map(run, srcs):
            if r.returncode: failed.append(f'{src.name}:\n{r.stderr[-3000:]}')
    if failed: sys.exit('error: processing failed for\n' + '\n'.join(failed))
    return [proc / s.name for s in srcs]

# ---------------------------------------------------------------- stage 2: pandoc -> HTML

def _cfg():
    cp = configparser.ConfigParser(); cp.read(ROOT / 'settings.ini')
    return cp['DEFAULT']

_re_ansi = re.compile(r'\x1B(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])')
_re_directive = re.compile(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')

def _text(x): return ''.join(x) if isinstance(x, list) else (x or '')

def _clean_stream(s: str) -> str:
    "Strip ANSI codes and keep what a terminal shows after carriage returns (progress bars)."
    s = _re_ansi.sub('', s)
    return '\n'.join(line.split('\r')[-1] if '\r' in line.rstrip('\r') else line.rstrip('\r')
                     for line in s.split('\n'))

def _split_directives(src: str):
    "Quarto-style `#| key: value` lines at the top of a cell -> (dict, remaining source)."
    lines, d = src.split('\n'), {}
    i = 0
    while i < len(lines) and (m := _re_directive.match(lines[i])):
        key, value = m.group(1).lower(), m.group(2).strip('"\'') if m.group(2) else ''
        d[key] = value if key == 'code-summary' else value.lower()  # a summary is shown as written
        i += 1
    return d, '\n'.join(lines[i:]).strip('\n')

def _fence(code: str, attrs: str) -> str:
    n = max([3] + [len(m) + 1 for m in re.findall(r'`{3,}', code)])
    return f"{'`'*n}{attrs}\n{code}\n{'`'*n}"

def _raw_html(s: str) -> str: return _fence(s, '{=html}')

_re_env = re.compile(r'(?<!\$)(\\begin\{(align\*?|aligned|equation\*?|gather\*?|split|alignat\*?)\}.*?\\end\{\2\})',
                     re.S)

def _fix_math(md: str) -> str:
    "Wrap bare LaTeX environments (which MathJax accepts outside dollars) in `$$` for pandoc."
    out, pos = [], 0
    for m in re.finditer(r'\$\$.*?\$\$', md, re.S):  # leave existing display math alone
        out.append(_re_env.sub(lambda e: f'$${e.group(1)}$$', md[pos:m.start()])); out.append(m.group(0)); pos = m.end()
    out.append(_re_env.sub(lambda e: f'$${e.group(1)}$$', md[pos:]))
    return ''.join(out)

class LinkMap:
    "Rewrites nbdev's absolute doc and source links to relative ones inside the site."
    def __init__(self, cfg):
        host = cfg.get('doc_host', '').rstrip('/') + '/' + cfg.get('doc_baseurl', '').strip('/')
        self.doc_prefixes = [host.rstrip('/') + '/']
        git = cfg.get('git_url', '').rstrip('/')
        self.src_re = re.compile(re.escape(git) + r'/(?:blob|tree)/[^/]+/([^)#\s"]+?)(?:#L(\d+))?(?=[)\s"])')
    def __call__(self, s: str, depth: str = '') -> str:
        for p in self.doc_prefixes: s = s.replace(p, depth)
        def src(m):
            path, line = m.group(1), m.group(2)
            return f"{depth}src/{path}.html" + (f"#L-{line}" if line else '')
        return self.src_re.sub(src, s)

def _output_md(o, links) -> str:
    t = o.get('output_type')
    if t == 'stream':
        txt = _clean_stream(_text(o.get('text'))).rstrip('\n')
        if not txt.strip(): return ''
        cls = '.cell-output .cell-output-stderr' if o.get('name') == 'stderr' else '.cell-output .cell-output-stdout'
        return _fence(txt, '{' + cls + '}')
    if t == 'error':
        tb = _re_ansi.sub('', '\n'.join(o.get('traceback', [])) or f"{o.get('ename')}: {o.get('evalue')}")
        return _fence(tb, '{.cell-output .cell-output-error}')
    data = o.get('data', {})
    for mime in ('image/png', 'image/jpeg', 'image/gif'):
        if mime in data:
            b64 = _text(data[mime]).replace('\n', '')
            base64.b64decode(b64, validate=True)  # fail loudly on a corrupt image
            return _raw_html(f'<div class="cell-output cell-output-display"><img alt="" src="data:{mime};base64,{b64}"></div>')
    if 'image/svg+xml' in data:
        return _raw_html(f'<div class="cell-output cell-output-display">{_text(data["image/svg+xml"])}</div>')
    if 'text/html' in data:
        return _raw_html(f'<div class="cell-output cell-output-display">{links(_text(data["text/html"]))}</div>')
    if 'text/markdown' in data:
        md = re.sub(r'```(\w*)\n\n+', r'```\1\n', _text(data['text/markdown']))  # no blank lines around
        md = re.sub(r'\n\n+```\n', '\n```\n', md)                                # show_doc signatures
        md = re.sub(r'```.*?```', lambda m: re.sub(r'\[(`[^`\n]+`)\]\([^)\s]+\)', r'\1', m.group(0)), md, flags=re.S)
        return '\n' + _fix_math(links(md)) + '\n'
    if 'text/latex' in data:
        return _fix_math(_text(data['text/latex']))
    if 'text/plain' in data:
        return _fence(_text(data['text/plain']), '{.cell-output .cell-output-display}')
    return ''

def _shown_sources(cells) -> str:
    "The code of every cell the page shows as exported source (nbdev's `exports` cells), joined."
    shown = []
    for c in cells:
        if c['cell_type'] != 'code': continue
        d, code = _split_directives(_text(c.get('source')))
        if d.get('code-summary', '').lower() == 'exported source': shown.append(code)
    return '\n'.join(shown)

def _drop_signature(md: str, source: str) -> str:
    """Remove the signature block of an API entry when the page shows the source that defines the same
    name (the signature would appear twice); keep it otherwise. The markers go either way."""
    m = re.search(re.escape(SIG_START) + r'(.*?)' + re.escape(SIG_END), md, re.S)
    if not m: return md
    head = re.search(r'^#+\s+(\S+)', md, re.M)
    name = head.group(1).split('.')[-1].replace('\\_', '_') if head else None
    defines = bool(name and re.search(rf'^\s*(?:async\s+)?(?:def|class)\s+{re.escape(name)}\b', source, re.M))
    return md[:m.start()] + ('' if defines else m.group(1).strip('\n')) + md[m.end():]

def notebook_markdown(nb: dict, links) -> tuple:
    "A processed notebook -> (front matter dict, pandoc markdown body)."
    import yaml
    fm, parts = {}, []
    cells = nb['cells']
    shown = _shown_sources(cells)
    for c in cells:
        src = _text(c.get('source'))
        if c['cell_type'] == 'raw':
            m = re.match(r'^\s*---\n(.*?)\n---', src, re.S)
            if m and not fm: fm = yaml.safe_load(m.group(1)) or {}
            continue
        if c['cell_type'] == 'markdown':
            if src.strip().startswith('<!-- WARNING: THIS FILE WAS AUTOGENERATED'): continue
            parts.append(_fix_math(links(src)))
            continue
        d, code = _split_directives(src)
        if d.get('include') == 'false': continue
        out = []
        if code.strip() and d.get('echo') != 'false':
            block = _fence(code, '{.python}')
            if 'code-fold' in d:
                summ = html.escape(d.get('code-summary') or 'Code')
                opn = ' open' if d['code-fold'] == 'show' else ''
                block = (_raw_html(f'<details class="code-fold"{opn}><summary>{summ}</summary>') + '\n\n' + block
                         + '\n\n' + _raw_html('</details>'))
            out.append(block)
        if d.get('output') != 'false':
            mds = [s for s in (_output_md(o, links) for o in c.get('outputs', [])) if s]
            out += [_drop_signature(s, shown) for s in mds]
        if out: parts.append(':::::::: {.cell}\n\n' + '\n\n'.join(out) + '\n\n::::::::')
    return fm, '\n\n'.join(parts) + '\n'

TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$pagetitle$ – $sitename$</title>
<style>
$highlighting-css$
</style>
<style>
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
       color: #212529; line-height: 1.55; }
.layout { display: flex; min-height: 100vh; }
nav.sidebar { flex: 0 0 15rem; background: #f6f8fa; border-right: 1px solid #dee2e6; padding: 1rem;
              position: sticky; top: 0; align-self: flex-start; height: 100vh; overflow-y: auto; box-sizing: border-box; }
nav.sidebar .site { font-weight: 700; font-size: 1.25rem; display: block; margin-bottom: .75rem; color: #2c3e50; text-decoration: none; }
nav.sidebar ul { list-style: none; padding: 0; margin: 0; }
nav.sidebar li a { display: block; padding: .2rem .4rem; border-radius: .25rem; color: #2c3e50; text-decoration: none; font-size: .93rem; }
nav.sidebar li a:hover { background: #e9ecef; }
nav.sidebar li a.active { background: #2780e3; color: #fff; }
main { flex: 1 1 auto; min-width: 0; max-width: 58rem; padding: 1.5rem 2.5rem 4rem; }
header.page h1 { margin-bottom: .2rem; }
header.page p.description { color: #6c757d; font-size: 1.1rem; margin-top: 0; }
nav#TOC { font-size: .9rem; border-left: 3px solid #dee2e6; padding-left: .75rem; margin: 1rem 0 2rem; }
nav#TOC ul { padding-left: 1rem; margin: .1rem 0; }
pre { background: #f8f9fa; padding: .6rem .8rem; border-radius: .3rem; overflow-x: auto; font-size: .88rem; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; }
.cell-output pre, pre.cell-output { background: #fff; border: 1px solid #e9ecef; }
.cell-output-stderr { color: #6c757d; }
.cell-output-display img { max-width: min(100%, 46rem); height: auto; }
table { border-collapse: collapse; margin: .75rem 0; }
col { width: auto !important; }  /* pandoc sets equal column widths on long pipe tables */
th, td { border-bottom: 1px solid #dee2e6; padding: .3rem .6rem; text-align: left; vertical-align: top; }
/* display math scrolls sideways when wider than the page; overflow-x alone would make overflow-y auto
   too (CSS turns a `visible` partner into `auto`), which gave every equation a small vertical scrollbar */
math[display="block"] { margin: .5rem 0; padding: .75em 0; overflow-x: auto; overflow-y: hidden; }
nav.sidebar .search { margin: 0 0 .75rem; }
@media (max-width: 50rem) { .layout { flex-direction: column; }
  nav.sidebar { position: static; height: auto; flex: none; width: 100%; border-right: 0; border-bottom: 1px solid #dee2e6; }
  main { padding: 1rem; } }
math { font-family: "STIX Two Math", "Latin Modern Math", "DejaVu Math TeX Gyre", math; font-size: 1.08em; }
hr { border: 0; border-top: 1px solid #dee2e6; margin: 2rem 0 1rem; }
details.sources { margin-top: 1rem; font-size: .9rem; }
details.sources summary { cursor: pointer; color: #495057; }
details.code-fold > summary { cursor: pointer; color: #6c757d; font-size: .9rem; }
footer { color: #6c757d; font-size: .85rem; margin-top: 3rem; border-top: 1px solid #dee2e6; padding-top: .5rem; }
</style>
<link rel="stylesheet" href="$root$styles.css">
<link rel="stylesheet" href="$root$pagefind/pagefind-ui.css">
<script src="$root$pagefind/pagefind-ui.js"></script>
<script>window.addEventListener('DOMContentLoaded', () => new PagefindUI({element: '#search', showSubResults: true, showImages: false}));</script>
</head>
<body>
<div class="layout">
@@SIDEBAR@@
<main$if(indexed)$ data-pagefind-body$endif$>
<header class="page">
<h1 class="title">$if(title)$$title$$else$$pagetitle$$endif$</h1>
$if(description)$<p class="description" data-pagefind-weight="7">$description$</p>$endif$
</header>
$if(toc)$
<nav id="TOC" aria-label="Contents">
$table-of-contents$
</nav>
$endif$
$body$
<footer>$sitename$ · $sitedescription$</footer>
</main>
</div>
</body>
</html>
"""

def _sidebar(pages, current: str, root: str = '', sources=()) -> str:
    "The navigation: every notebook page, then the line-numbered module sources."
    active = ' class="active"'
    items = '\n'.join(f'<li><a href="{root}{p["file"]}"{active if p["file"] == current else ""}>'
                      f'{html.escape(p["title"])}</a></li>' for p in pages)
    srcs = '\n'.join(f'<li><a href="{root}src/{s}.html"{active if "src/"+s+".html" == current else ""}>'
                     f'<code>{html.escape(s)}</code></a></li>' for s in sources)
    src_part = (f'\n<details class="sources"><summary>Source files</summary>\n<ul>\n{srcs}\n</ul></details>'
                if sources else '')
    return (f'<nav class="sidebar" aria-label="Pages"><a class="site" href="{root}index.html">'
            f'{html.escape(_cfg().get("title", "docs"))}</a>\n<div id="search" class="search" role="search"></div>\n<ul>\n{items}\n</ul>{src_part}</nav>')

def _pandoc(md: str, template: Path, toc: bool, variables: dict) -> str:
    import pypandoc
    args = ['--standalone', '--mathml', f'--template={template}', '--syntax-highlighting=pygments',
            '--toc-depth=3', '--wrap=none']
    if toc: args.append('--toc')
    for k, v in variables.items(): args += ['-V', f'{k}={v}']
    # raw_tex off: stray TeX outside $...$ stays visible as text (and the browser test flags it)
    return pypandoc.convert_text(md, 'html5', format='markdown-raw_tex', extra_args=args)

def _title_of(fm, name):
    "A page's title: its notebook's first heading (nbdev puts it in the front matter), with a capital first letter."
    t = str(fm.get('title') or re.sub(r'^\d+[a-z]?_', '', Path(name).stem).replace('_', ' ')).strip()
    return t if t.split(' ')[0] == _cfg().get('lib_name', 'minima') else t[:1].upper() + t[1:]

def _sources(lib: str) -> list:
    return [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / lib).rglob('*.py'))
            if '__pycache__' not in p.parts and p.name != '_modidx.py']

def _source_pages(out: Path, pages, tmpl: Path, sources):
    "Line-numbered copies of the package's modules, the targets of the API entries' source links."
    cfg = _cfg()
    for rel in sources:
        dst = out / 'src' / (rel + '.html')
        dst.parent.mkdir(parents=True, exist_ok=True)
        depth = '../' * len(Path(rel).parts)
        md = _fence((ROOT / rel).read_text().rstrip('\n'), '{#L .python .numberLines}')
        page = _pandoc(md, tmpl, False, {'pagetitle': html.escape(rel), 'root': depth,
                                         'sitename': html.escape(cfg.get('title', '')),
                                         'sitedescription': html.escape(cfg.get('description', ''))})
        dst.write_text(page.replace('@@SIDEBAR@@', _sidebar(pages, f'src/{rel}.html', depth, sources)))

_re_id = re.compile(r'\bid="([^"]+)"')
_re_doclink = re.compile(r'<a href="([\w.-]+\.html)#([^"]+)"[^>]*>(.*?)</a>', re.S)

def _unlink_dead_anchors(out: Path, files):
    "nbdev links every backticked name it knows, private ones too; keep only links whose target exists."
    ids = {f: set(_re_id.findall((out / f).read_text())) for f in files}
    for f in files:
        s = (out / f).read_text()
        s2 = _re_doclink.sub(lambda m: m.group(0) if m.group(2) in ids.get(m.group(1), {m.group(2)}) else m.group(3), s)
        if s2 != s: (out / f).write_text(s2)

def render_site(proc: Path, out: Path, nbs: Path) -> list:
    "Render every processed notebook in `proc` into `out`; return the page list."
    cfg, links = _cfg(), LinkMap(_cfg())
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    tmpl = out / '.template.html'
    tmpl.write_text(TEMPLATE)
    nbfiles = sorted(proc.glob('*.ipynb'), key=lambda p: (p.stem != 'index', p.name))
    pages = []
    for p in nbfiles:
        nb = json.loads(p.read_text())
        fm, md = notebook_markdown(nb, links)
        file = str(fm.get('output-file') or re.sub(r'^\d+[a-z]?_', '', p.stem) + '.html')
        pages.append(dict(src=p, file=file, title=_title_of(fm, p.name), description=fm.get('description', ''), md=md))
    sources = _sources(cfg.get('lib_path', 'minima'))
    nb_pages = {pg['src'].name: pg['file'] for pg in pages}  # links to notebooks become links to their pages
    repo = f"{cfg.get('git_url', '').rstrip('/')}/blob/{cfg.get('branch', 'main')}/"
    def nb_links(h: str) -> str:
        "Links to notebooks become links to their pages; links to repository files (`../x`) go to the repository."
        h = re.sub(r'href="(?:\./)?([\w.-]+\.ipynb)(#[^"]*)?"',
                   lambda m: f'href="{nb_pages[m.group(1)]}{m.group(2) or ""}"' if m.group(1) in nb_pages else m.group(0), h)
        return re.sub(r'href="\.\./([^"#]+)"', lambda m: f'href="{repo}{m.group(1)}"', h)
    for pg in pages:
        meta = f"---\ntitle: {json.dumps(pg['title'])}\ndescription: {json.dumps(str(pg['description']))}\n---\n\n"
        html_s = _pandoc(meta + pg['md'], tmpl, True, {
            'pagetitle': html.escape(pg['title']), 'root': '', 'indexed': 'true',
            'sitename': html.escape(cfg.get('title', '')), 'sitedescription': html.escape(cfg.get('description', ''))})
        (out / pg['file']).write_text(nb_links(html_s).replace('@@SIDEBAR@@', _sidebar(pages, pg['file'], '', sources)))
    _source_pages(out, pages, tmpl, sources)
    _unlink_dead_anchors(out, [pg['file'] for pg in pages])
    tmpl.unlink()
    if (nbs / 'styles.css').exists(): shutil.copy2(nbs / 'styles.css', out / 'styles.css')
    (out / '.nojekyll').write_text('')
    return pages

def build_search_index(out: Path):
    """Index the site with Pagefind (the `pagefind[extended]` wheel ships its binary; no network). It writes
    `pagefind/` with the search box every page loads. Only the notebook pages are indexed (their `<main>`
    carries `data-pagefind-body`), not the source listings; a page's one-line summary weighs as much as
    its title, so a word the summary names finds that page before pages that merely mention it. Search runs where the site is served over
    http(s), e.g. `python -m http.server -d _docs`; browsers refuse its requests on `file://` pages."""
    import subprocess
    r = subprocess.run([sys.executable, '-m', 'pagefind', '--site', str(out)], capture_output=True, text=True)
    if r.returncode or not (out / 'pagefind' / 'pagefind-ui.js').is_file():
        sys.exit(f'error: pagefind failed (is pagefind[extended] installed?):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}')
    n = re.search(r'Indexed (\d+) pages?', r.stdout)
    print(f'search index: {n.group(0) if n else "built"} into {out.name}/pagefind/')

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--no-proc', action='store_true', help='reuse _proc/ instead of processing the notebooks again')
    ap.add_argument('--workers', type=int, default=min(4, os.cpu_count() or 1), help='processes for stage 1')
    ap.add_argument('--proc-one', nargs=2, metavar=('SRC', 'DST'), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.proc_one: return _proc_one(Path(a.proc_one[0]), Path(a.proc_one[1]))
    cfg = _cfg()
    nbs, proc, out = ROOT / cfg.get('nbs_path', 'nbs'), ROOT / '_proc', ROOT / cfg.get('doc_path', '_docs')
    t0 = time.time()
    if not a.no_proc:
        done = process_notebooks(nbs, proc, a.workers)
        print(f'processed {len(done)} notebooks into {proc.relative_to(ROOT)}/ in {time.time()-t0:.1f}s')
    elif not proc.exists(): sys.exit('error: _proc/ does not exist; run without --no-proc')
    t1 = time.time()
    pages = render_site(proc, out, nbs)
    print(f'wrote {len(pages)} pages to {out.relative_to(ROOT)}/ in {time.time()-t1:.1f}s: '
          + ', '.join(p['file'] for p in pages))
    build_search_index(out)

if __name__ == '__main__': main()
