#!/usr/bin/env python
"""Browser test of the docs site that `python tools/build_docs.py` writes to `_docs/`.

    python tests/browser_test.py [--site _docs] [--page optim_adam.html] [--shot PNG]

Checks every page's HTML, then takes a headless Chromium screenshot of the optimizer page and
checks the picture. Fails (exit code 1, one line per problem) when:
- a page is missing (`index.html`, one page per notebook) or cannot be reached from `index.html`;
- math is not MathML: a page whose notebook has `$...$` math has no `<math>` element, a display
  equation of the notebook is missing, or raw TeX (`$$`, `\\frac`, `\\theta`, ...) is left in text
  outside `<code>`/`<pre>`;
- anything needs the network: a `src`, stylesheet, CSS `url()`/`@import` or `<script>` that is not
  a relative file or a `data:` URI;
- a relative link or its `#fragment` points nowhere (this covers the API entries' source links);
- an exported function or class (a module's `__all__`) has no API entry (or no source link) on its page;
- a notebook with stored plots has no embedded image on its page, or an embedded image is corrupt;
- the screenshot is missing, small, or blank.
Chromium comes from Debian's `chromium` package (`apt-get install -y chromium`).
"""
import argparse, ast, base64, binascii, json, os, re, shutil, subprocess, sys, tempfile
from collections import deque
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit, unquote

ROOT = Path(__file__).resolve().parent.parent
TEX = [r'$$', r'\frac', r'\theta', r'\begin{', r'\end{', r'\sqrt', r'\hat', r'\beta', r'\alpha', r'\epsilon',
       r'\eta', r'\nabla', r'\sum', r'\left', r'\right', r'\mathbf', r'\odot', r'\cdot', r'\leftarrow', r'\lambda',
       r'\gamma', r'\rho', r'\text{', r'\operatorname']
RE_INLINE = re.compile(r'\$[^$\n]{1,120}?[_^\\][^$\n]{0,120}?\$')  # `$x_t$`-like leftovers
NET = re.compile(r'^\s*(https?:)?//', re.I)
SKIP_TEXT = {'code', 'pre', 'math', 'script', 'style', 'annotation', 'semantics'}

class Page(HTMLParser):
    "Collects what the checks need from one HTML page."
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.links, self.resources, self.text, self.stack, self.pre = set(), [], [], [], [], []
        self.n_math, self.n_block_math, self.imgs, self.styles, self.scripts = 0, 0, [], [], 0
        self._in_style = False
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag not in ('br', 'img', 'hr', 'meta', 'link', 'input', 'source', 'col', 'embed', 'wbr'): self.stack.append(tag)
        if 'id' in a: self.ids.add(a['id'])
        if tag == 'a' and a.get('name'): self.ids.add(a['name'])
        if tag == 'a' and a.get('href') is not None: self.links.append(a['href'])
        if tag == 'math':
            self.n_math += 1
            if a.get('display') == 'block': self.n_block_math += 1
        if tag == 'script':
            self.scripts += 1
        for k in ('src', 'data', 'poster', 'srcset'):
            if a.get(k): self.resources.append((tag, k, a[k]))
        if tag == 'link' and a.get('href'): self.resources.append((tag, 'href', a['href']))
        if tag == 'img': self.imgs.append(a.get('src', ''))
        if a.get('style'): self.styles.append(a['style'])
        self._in_style = tag == 'style'
    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if self.stack and self.stack[-1] == tag: self.stack.pop()
    def handle_endtag(self, tag):
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag: pass
        if tag == 'style': self._in_style = False
    def handle_data(self, data):
        if self._in_style: self.styles.append(data)
        if not SKIP_TEXT.intersection(self.stack): self.text.append(data)
        elif 'pre' in self.stack: self.pre.append(data)

def parse(path: Path) -> Page:
    p = Page(); p.feed(path.read_text(encoding='utf-8')); p.close(); return p

def notebook_pages(nbs: Path) -> dict:
    "Notebook path -> expected page file name (nbdev's rule: numeric prefix dropped)."
    return {nb: ('index.html' if nb.stem == 'index' else re.sub(r'^\d+[a-z]?_', '', nb.stem) + '.html')
            for nb in sorted(nbs.glob('*.ipynb')) if not nb.name.startswith(('_', '.'))}

def nb_facts(nb: Path) -> dict:
    "How much math and how many plots a notebook holds (only cells that reach the page)."
    cells = json.loads(nb.read_text())['cells']
    md = '\n'.join(''.join(c['source']) for c in cells if c['cell_type'] == 'markdown')
    md = re.sub(r'```.*?```', '', md, flags=re.S)
    md = re.sub(r'`[^`\n]*`', '', md)
    def shown(c):
        src = ''.join(c['source'])
        return not re.search(r'^\s*#\|\s*(hide|export|exporti|include:\s*false|output:\s*false)\b', src, re.M)
    pngs = sum(1 for c in cells if c['cell_type'] == 'code' and shown(c)
               for o in c.get('outputs', []) if 'image/png' in o.get('data', {}))
    n_display = len(re.findall(r'\$\$.+?\$\$', md, re.S)) + len(re.findall(r'(?<!\$)\\begin\{align', md))
    has_inline = bool(re.search(r'(?<![\\$])\$[^$\s][^$\n]*?\$', md))
    return dict(pngs=pngs, display=n_display, math=n_display > 0 or has_inline)

def check_site(site: Path, nbs: Path, problems: list) -> dict:
    pages = {p.relative_to(site).as_posix(): p for p in sorted(site.rglob('*.html'))}
    if 'index.html' not in pages:
        problems.append(f'{site}/index.html does not exist'); return {}
    parsed = {k: parse(p) for k, p in pages.items()}
    expected = notebook_pages(nbs)
    for nb, page in expected.items():
        if page not in pages: problems.append(f'{nb.name}: no page {page}'); continue
        f, pg = nb_facts(nb), parsed[page]
        if f['math'] and pg.n_math == 0: problems.append(f'{page}: the notebook has math but the page has no <math>')
        if pg.n_block_math < f['display']:
            problems.append(f'{page}: {f["display"]} display equations in the notebook, {pg.n_block_math} on the page')
        n_img = sum(1 for s in pg.imgs if s.startswith('data:image/'))
        if f['pngs'] and n_img == 0: problems.append(f'{page}: the notebook has {f["pngs"]} plots, the page none')
    for name, pg in parsed.items():
        text = ' '.join(pg.text)
        for t in TEX:
            if t in text:
                i = text.index(t); problems.append(f'{name}: raw TeX {t!r} in text: ...{text[max(0, i-60):i+60]!r}...')
        for m in RE_INLINE.finditer(text): problems.append(f'{name}: unconverted math {m.group(0)!r}')
        for m in re.finditer(r'\[`[^`\n]+`\]\([^)\s]+\)', ''.join(pg.pre)):
            problems.append(f'{name}: markdown link shown as text in a code block: {m.group(0)!r}')
        for t in ('{target=', ':::', '```', '#| '):
            if t in text: problems.append(f'{name}: leftover markdown/directive {t!r} in text')
        if pg.scripts: problems.append(f'{name}: has {pg.scripts} <script> elements (the site needs no JavaScript)')
        for tag, attr, val in pg.resources:
            for v in (val.split(',') if attr == 'srcset' else [val]):
                v = v.strip().split(' ')[0]
                if v.startswith('data:'):
                    if tag == 'img': _check_data_uri(name, v, problems)
                    continue
                if NET.match(v) or urlsplit(v).scheme: problems.append(f'{name}: <{tag} {attr}="{v[:80]}"> needs the network')
                elif not (pages[name].parent / unquote(urlsplit(v).path)).is_file():
                    problems.append(f'{name}: <{tag} {attr}="{v}"> is missing')
        for css in pg.styles:
            for u in re.findall(r'(?:url\(\s*[\'"]?|@import\s+[\'"])([^\'")\s]+)', css):
                if NET.match(u): problems.append(f'{name}: CSS loads {u} from the network')
        for href in pg.links:
            sp = urlsplit(href)
            if sp.scheme or href.startswith('//') or href.startswith('mailto:'): continue
            target = (pages[name].parent / unquote(sp.path)).resolve() if sp.path else pages[name].resolve()
            rel = target.relative_to(site.resolve()).as_posix() if target.is_relative_to(site.resolve()) else None
            if not target.exists(): problems.append(f'{name}: link {href} -> missing file'); continue
            if sp.fragment and rel in parsed and unquote(sp.fragment) not in parsed[rel].ids:
                problems.append(f'{name}: link {href} -> no id {sp.fragment!r} in {rel}')
    # reachability from the index
    seen, todo = {'index.html'}, deque(['index.html'])
    while todo:
        cur = todo.popleft()
        for href in parsed[cur].links:
            sp = urlsplit(href)
            if sp.scheme or not sp.path: continue
            t = (pages[cur].parent / unquote(sp.path)).resolve()
            if t.is_relative_to(site.resolve()):
                r = t.relative_to(site.resolve()).as_posix()
                if r in parsed and r not in seen: seen.add(r); todo.append(r)
    for name in sorted(set(parsed) - seen): problems.append(f'{name}: not reachable from index.html')
    return parsed

def _check_data_uri(name, uri, problems):
    head, _, b64 = uri.partition(',')
    try: raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError): problems.append(f'{name}: an embedded image is not valid base64'); return
    if 'png' in head and not raw.startswith(b'\x89PNG\r\n\x1a\n'): problems.append(f'{name}: an embedded PNG is corrupt')

def check_api(nbs: Path, parsed: dict, problems: list) -> int:
    """Every public function and class a notebook exports (its module's `__all__`, defined there under
    that name) has an API entry on the notebook's page: an element whose id is the lowercased name."""
    import importlib, inspect
    sys.path.insert(0, str(ROOT))
    n = 0
    for nb, page in notebook_pages(nbs).items():
        src = '\n'.join(''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code')
        m = re.search(r'^\s*#\|\s*default_exp\s+(\S+)', src, re.M)
        if not m or page not in parsed: continue
        modname = f"minima.{m.group(1)}".replace('.__init__', '')
        try: mod = importlib.import_module(modname)
        except Exception as e: problems.append(f'{nb.name}: cannot import {modname}: {e}'); continue
        for name in getattr(mod, '__all__', []):
            obj = getattr(mod, name, None)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or name.startswith('_'): continue
            if getattr(obj, '__module__', None) != modname or getattr(obj, '__name__', None) != name: continue
            n += 1
            ids = parsed[page].ids  # a function patched onto a class is documented as Class.name
            if name.lower() not in ids and not any(i.endswith('.' + name.lower()) for i in ids):
                problems.append(f'{page}: no API entry for {modname}.{name}')
        if n and not any(h.startswith('src/') and '#L-' in h for h in parsed[page].links) and any(
                name.lower() in parsed[page].ids for name in getattr(mod, '__all__', [])):
            problems.append(f'{page}: API entries without source links')
    return n

def find_chromium():
    for c in ('chromium', 'chromium-browser', 'google-chrome'):
        if shutil.which(c): return shutil.which(c)
    if Path('/usr/bin/chromium').exists(): return '/usr/bin/chromium'

def screenshot(page: Path, out: Path, size=(1280, 1600)) -> None:
    exe = find_chromium()
    if not exe: raise SystemExit('FAIL: chromium not found (Debian: apt-get install -y chromium)')
    if out.exists(): out.unlink()
    with tempfile.TemporaryDirectory() as prof:
        cmd = [exe, '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
               '--disable-component-update', '--disable-sync', '--no-first-run', '--hide-scrollbars',
               f'--user-data-dir={prof}', f'--screenshot={out}', f'--window-size={size[0]},{size[1]}',
               page.resolve().as_uri()]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if not out.exists(): raise SystemExit(f'FAIL: chromium wrote no screenshot (rc={r.returncode}): {r.stderr[-2000:]}')

def check_png(path: Path, problems: list) -> dict:
    import numpy as np
    from matplotlib import image
    size = path.stat().st_size
    img = image.imread(str(path))[..., :3].astype(np.float64)
    gray = img.mean(-1)
    ink = float((gray < 0.9).mean())          # share of pixels that are not (near) white
    std = float(gray.std())
    rows = float(((gray < 0.9).mean(1) > 0.002).mean())  # share of rows with something drawn
    if size < 20_000: problems.append(f'{path}: screenshot only {size} bytes')
    if std < 0.05 or ink < 0.02: problems.append(f'{path}: screenshot looks blank (std {std:.3f}, ink {ink:.3f})')
    if rows < 0.3: problems.append(f'{path}: screenshot mostly empty ({rows:.0%} of rows drawn)')
    return dict(bytes=size, shape=img.shape[:2], std=round(std, 3), ink=round(ink, 3), rows=round(rows, 2))

def main(argv=None):
    ap = argparse.ArgumentParser(description='Check the docs site and screenshot the optimizer page.')
    ap.add_argument('--site', default=str(ROOT / '_docs'))
    ap.add_argument('--nbs', default=str(ROOT / 'nbs'))
    ap.add_argument('--page', default=None, help='page to screenshot (default: the first optim page with math)')
    ap.add_argument('--shot', default=None, help='PNG path (default: <site>/browser_screenshot.png)')
    a = ap.parse_args(argv)
    site, nbs, problems = Path(a.site), Path(a.nbs), []
    parsed = check_site(site, nbs, problems)
    if not parsed: sys.exit('FAIL: ' + '\n'.join(problems))
    n_api = check_api(nbs, parsed, problems)
    cands = [a.page] if a.page else ['optim_adam.html', 'optim.html', 'optim_adaptive.html', 'optim_sgd.html']
    page = next((c for c in cands if c in parsed and parsed[c].n_math), None)
    if page is None: problems.append(f'no page with equations to screenshot among {cands}')
    else:
        shot = Path(a.shot) if a.shot else site / 'browser_screenshot.png'
        screenshot(site / page, shot)
        stats = check_png(shot, problems)
        print(f'screenshot of {page}: {shot} {stats}')
    n_math = sum(p.n_math for p in parsed.values())
    print(f'{len(parsed)} pages checked, {n_math} MathML equations, {n_api} API entries')
    if problems:
        print(f'FAIL: {len(problems)} problems', file=sys.stderr)
        for p in problems: print('  ' + p, file=sys.stderr)
        sys.exit(1)
    print('docs site OK')

if __name__ == '__main__': main()
