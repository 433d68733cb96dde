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
- the screenshot is missing, small, or blank;
- an API entry shows `VAR_POSITIONAL`/`_ParameterKind`, or its signature twice (signature block and the
  source shown with it); a table has a column that is empty in every row;
- a page's title is not its notebook's first heading (capital first letter), the sidebar names a page
  otherwise, or a home-page link to a page says something else than the page's title;
- a paragraph ends in a colon with nothing after it (a heading or the end of the page follows);
- a page other than the credits page (sources.html) speaks of the seed documents by their names;
- in Chromium, over http: a display equation has a vertical scrollbar or is cut off (scrollHeight
  above clientHeight) at 1280 or 420 px, or is wider than its box without scrolling sideways; typing
  "Nesterov" into the search box does not list first, and land on, the page titled SGD.
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
# names of the documents minima grew from: said once, on the credits page, nowhere else
SOURCE_NAMES = re.compile(r"\bdtorch\b|\bthe lab\b|\bthe lab's\b|\boriginal minima\b|\bfirst minima\b", re.I)
CREDITS = 'sources.html'
NET = re.compile(r'^\s*(https?:)?//', re.I)
SKIP_TEXT = {'code', 'pre', 'math', 'script', 'style', 'annotation', 'semantics'}

class Page(HTMLParser):
    "Collects what the checks need from one HTML page."
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.links, self.resources, self.text, self.stack, self.pre = set(), [], [], [], [], []
        self.n_math, self.n_block_math, self.imgs, self.styles, self.scripts = 0, 0, [], [], 0
        self._in_style = False
        self.pres, self.title, self._in_title, self.h3, self._in_h3, self.pre_h3 = [], '', False, [], False, []
        self.pre_src = []  # per <pre>: inside a folded 'exported source' block
        self.anchors, self._a, self.sidebar = [], None, []  # (href, text) of every link; of the sidebar's
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag not in ('br', 'img', 'hr', 'meta', 'link', 'input', 'source', 'col', 'embed', 'wbr'): self.stack.append(tag)
        if 'id' in a: self.ids.add(a['id'])
        if tag == 'a' and a.get('name'): self.ids.add(a['name'])
        if tag == 'a' and a.get('href') is not None:
            self.links.append(a['href']); self._a = [a['href'], '', 'nav' in self.stack]
        if tag == 'math':
            self.n_math += 1
            if a.get('display') == 'block': self.n_block_math += 1
        if tag == 'script':
            self.scripts += 1
        if tag == 'pre': self.pres.append(''); self.pre_h3.append(len(self.h3) - 1); self.pre_src.append('details' in self.stack)
        if tag == 'h1' and 'title' in (a.get('class') or '').split(): self._in_title = True
        if tag == 'h3': self.h3.append(''); self._in_h3 = True
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
        if tag == 'h1': self._in_title = False
        if tag == 'h3': self._in_h3 = False
        if tag == 'a' and self._a is not None:
            (self.sidebar if self._a[2] else self.anchors).append((self._a[0], self._a[1].strip())); self._a = None
    def handle_data(self, data):
        if self._in_title: self.title += data
        if self._in_h3: self.h3[-1] += data
        if self._a is not None: self._a[1] += data
        if 'pre' in self.stack and self.pres: self.pres[-1] += data
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
        for t in ('VAR_POSITIONAL', 'VAR_KEYWORD', '_ParameterKind'):
            if t in ' '.join(pg.text) + ''.join(pg.pre): problems.append(f'{name}: {t!r} in an API entry (write *args/**kwargs)')
        for k, entry in enumerate(map(str.strip, pg.h3)):  # an API entry whose signature repeats the source shown
            nm = entry.split('.')[-1]
            if not re.fullmatch(r'[A-Za-z_][\w.]*', entry): continue
            sig = [j for j, b in enumerate(pg.pres) if pg.pre_h3[j] == k and not pg.pre_src[j]
                   and re.match(rf'\s*(?:def\s+|class\s+)?{re.escape(entry)}\s*\(', b)][:1]
            src = [j for j, b in enumerate(pg.pres)   # the entry's source: folded, or under the entry itself (not a sketch elsewhere)
                   if j not in sig and (pg.pre_src[j] or pg.pre_h3[j] == k)
                   and re.search(rf'^\s*(?:async\s+)?(?:def|class)\s+{re.escape(nm)}\b', b, re.M)]
            if sig and '$' in pg.pres[sig[0]]: problems.append(f'{name}: raw LaTeX in the signature of {entry} (comments belong in its table)')
            if sig and src: problems.append(f'{name}: the signature of {entry} is shown twice (signature block and source)')
        for tag, attr, val in pg.resources:
            for v in (val.split(',') if attr == 'srcset' else [val]):
                v = v.strip().split(' ')[0]
                if v.startswith('data:'):
                    if tag == 'img': _check_data_uri(name, v, problems)
                    continue
                if NET.match(v) or urlsplit(v).scheme: problems.append(f'{name}: <{tag} {attr}="{v[:80]}"> needs the network')
                elif not (pages[name].parent / unquote(urlsplit(v).path)).is_file():
                    problems.append(f'{name}: <{tag} {attr}="{v}"> is missing')
        raw = pages[name].read_text(encoding='utf-8')
        check_tables(name, raw, problems)
        for m in re.finditer(r'([^>]{0,60}):</p>\s*(?:<h[1-6]|<footer|</main>)', raw):
            problems.append(f'{name}: a sentence ends in a colon with nothing after it: ...{m.group(1)!r}')
        if name != CREDITS and not name.startswith('src/'):
            from collections import Counter
            said = Counter(m.group(0).lower() for m in SOURCE_NAMES.finditer(' '.join(pg.text) + ' ' + ' '.join(pg.pres)))
            if said: problems.append(f'{name}: speaks of ' + ', '.join(f'{k!r} ({n}x)' for k, n in sorted(said.items()))
                                     + f'; the docs call everything by its minima name (the seeds are credited once, on {CREDITS})')
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
    check_titles(nbs, parsed, problems)
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

def first_heading(nb: Path) -> str:
    for c in json.loads(nb.read_text())['cells']:
        if c['cell_type'] == 'markdown':
            m = re.search(r'^#\s+(.+?)\s*$', ''.join(c['source']), re.M)
            if m: return m.group(1)
    return ''

def check_titles(nbs: Path, parsed: dict, problems: list):
    """One naming scheme: a page's title is its notebook's first heading with a capital first letter (the
    project's name stays as it is written); the sidebar names every page by that title, on every page;
    titles are unique; a link from the home page to a page uses the page's title as its text."""
    titles = {}
    for nb, page in notebook_pages(nbs).items():
        if page not in parsed: continue
        h = first_heading(nb)
        want = h if h.split(' ')[0] == 'minima' else h[:1].upper() + h[1:]
        if parsed[page].title.strip() != want: problems.append(f'{page}: title {parsed[page].title.strip()!r}, its notebook\'s first heading is {h!r}')
        titles[page] = parsed[page].title.strip()
    for t in {t for t in titles.values() if list(titles.values()).count(t) > 1}: problems.append(f'two pages are titled {t!r}')
    for name, pg in parsed.items():
        side = {urlsplit(h).path.split('/')[-1]: t for h, t in pg.sidebar if h.endswith('.html') and '/src/' not in h and not h.startswith('src/')}
        for page, t in titles.items():
            if page == 'index.html': continue
            if side.get(page) != t: problems.append(f'{name}: the sidebar names {page} {side.get(page)!r}, its title is {t!r}')
    for href, text in parsed.get('index.html', Page()).anchors:
        page = urlsplit(href).path
        if page in titles and not urlsplit(href).fragment and text != titles[page]:
            problems.append(f'index.html: the link to {page} says {text!r}, the page is titled {titles[page]!r}')

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

def check_tables(name: str, raw: str, problems: list):
    "A table column whose body cells are all empty (an API table's Type, Default or Details) is a problem."
    for t in re.findall(r'<table\b.*?</table>', raw, re.S):
        rows = [re.findall(r'<t[dh]\b[^>]*>(.*?)</t[dh]>', r, re.S) for r in re.findall(r'<tr\b.*?</tr>', t, re.S)]
        head, body = (rows[0], rows[1:]) if '<th' in t else ([], rows)
        if not body: continue
        for j in range(1, max(len(r) for r in body)):
            if all(not re.sub(r'<[^>]+>|\s|&nbsp;', '', r[j] if j < len(r) else '') for r in body):
                label = re.sub(r'<[^>]+>', '', head[j]).strip() if j < len(head) else str(j)
                problems.append(f'{name}: a table has an empty column {label!r}')

PROBE = r"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>probe</title></head><body><script>
const PAGES = @@PAGES@@, SEARCH_PAGE = @@SEARCH_PAGE@@, QUERY = @@QUERY@@;
const sleep = ms => new Promise(r => setTimeout(r, ms));
function frame(src, width) {
  const f = document.createElement('iframe');
  f.style.width = width + 'px'; f.style.height = '900px';
  document.body.appendChild(f);
  return new Promise(r => { f.onload = () => r(f); f.src = src; });
}
async function until(test, ms) {
  for (let t = 0; t < ms; t += 100) { const v = test(); if (v) return v; await sleep(100); }
  return null;
}
async function run() {
  const out = {math: {}, search: null};
  for (const page of PAGES) {
    for (const width of [1280, 420]) {
      const f = await frame(page, width), doc = f.contentDocument, eqs = [...doc.querySelectorAll('math[display="block"]')];
      const res = out.math[page] = out.math[page] || {n: eqs.length, vertical: [], sideways: []};
      eqs.forEach((m, i) => {
        const st = f.contentWindow.getComputedStyle(m), tex = (m.querySelector('annotation') || m).textContent.slice(0, 60);
        // a vertical scrollbar, or content cut off at the top or bottom
        if (m.scrollHeight > m.clientHeight + 1) res.vertical.push([width, i, m.scrollHeight, m.clientHeight, st.overflowY, tex]);
        // an equation wider than its box must scroll sideways, not spill over the page
        if (m.scrollWidth > m.clientWidth + 1 && !['auto', 'scroll'].includes(st.overflowX)) res.sideways.push([width, i, st.overflowX, tex]);
      });
      f.remove();
    }
  }
  const f = await frame(SEARCH_PAGE, 1280), doc = f.contentDocument;
  const input = await until(() => doc.querySelector('#search input'), 15000);
  if (!input) { out.search = {error: 'no search box on ' + SEARCH_PAGE}; return out; }
  input.value = QUERY; input.dispatchEvent(new Event('input', {bubbles: true}));
  const link = await until(() => doc.querySelector('.pagefind-ui__result-link'), 30000);
  if (!link) { out.search = {error: 'no result for ' + QUERY}; return out; }
  const href = link.getAttribute('href');
  await new Promise(r => { f.onload = r; link.click(); });
  const h1 = f.contentDocument.querySelector('h1.title');
  out.search = {first: href, results: [...doc.querySelectorAll('.pagefind-ui__result-link')].map(a => a.getAttribute('href')),
                landed: f.contentWindow.location.pathname, title: h1 ? h1.textContent.trim() : null};
  return out;
}
run().catch(e => ({error: String(e)})).then(r => fetch('/__result__', {method: 'POST', body: JSON.stringify(r)}));
</script></body></html>"""

def live_checks(site: Path, parsed: dict, problems: list, query='Nesterov', want_title='SGD', timeout=300) -> dict:
    """Open the site in headless Chromium over http (Pagefind's search needs http; browsers refuse it on
    file://) and check what only a browser shows: no display equation with a vertical scrollbar or cut
    off (scrollHeight against clientHeight, at 1280 and 420 px wide), wide equations scroll sideways, and
    searching for `query` in the search box lists first, and clicking lands on, the page titled `want_title`."""
    import http.server, threading, time
    pages = sorted(n for n in parsed if '/' not in n)
    target = [n for n in pages if parsed[n].title.strip() == want_title]
    if len(target) != 1: problems.append(f'search: {len(target)} pages titled {want_title!r}, expected one'); return {}
    probe = (PROBE.replace('@@PAGES@@', json.dumps(['/' + n for n in pages if parsed[n].n_block_math]))
                  .replace('@@SEARCH_PAGE@@', json.dumps('/index.html')).replace('@@QUERY@@', json.dumps(query)))
    result = {}
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k): super().__init__(*a, directory=str(site), **k)
        def log_message(self, *a): pass
        def do_GET(self):
            if self.path.startswith('/__probe__.html'):
                body = probe.encode(); self.send_response(200)
                self.send_header('Content-Type', 'text/html; charset=utf-8'); self.send_header('Content-Length', str(len(body)))
                self.end_headers(); self.wfile.write(body)
            else: super().do_GET()
        def do_POST(self):
            data = self.rfile.read(int(self.headers.get('Content-Length', 0)))
            result['data'] = json.loads(data or b'null'); self.send_response(204); self.end_headers()
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    exe = find_chromium()
    if not exe: raise SystemExit('FAIL: chromium not found (Debian: apt-get install -y chromium)')
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as prof:
        proc = subprocess.Popen([exe, '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                                 '--disable-component-update', '--disable-sync', '--no-first-run', f'--user-data-dir={prof}',
                                 '--window-size=1400,1000', f'http://127.0.0.1:{server.server_port}/__probe__.html'],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        t0 = time.time()
        while 'data' not in result and time.time() - t0 < timeout and proc.poll() is None: time.sleep(0.2)
        import signal
        try: os.killpg(proc.pid, signal.SIGTERM)  # chromium and the helper processes it started
        except ProcessLookupError: pass
        try: proc.wait(20)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait()
        time.sleep(0.5)
    server.shutdown()
    r = result.get('data')
    if not r: problems.append(f'browser: the probe page reported nothing within {timeout} s'); return {}
    if r.get('error'): problems.append(f'browser: the probe failed: {r["error"]}'); return r
    for page, m in r['math'].items():
        for w, i, sh, ch, oy, tex in m['vertical']:
            problems.append(f'{page.lstrip("/")}: display equation {i} at {w}px has a vertical scrollbar or is cut off '
                            f'(scrollHeight {sh} > clientHeight {ch}, overflow-y {oy}): {tex!r}')
        for w, i, ox, tex in m['sideways']:
            problems.append(f'{page.lstrip("/")}: display equation {i} at {w}px is wider than the page and does not scroll (overflow-x {ox}): {tex!r}')
    sr = r.get('search') or {}
    want = '/' + target[0]
    if sr.get('error'): problems.append(f'search: {sr["error"]}')
    elif urlsplit(sr['first']).path != want or urlsplit(sr['landed']).path != want or sr['title'] != want_title:
        problems.append(f'search: {query!r} should land on {target[0]} (titled {want_title}); first result {sr["first"]}, '
                        f'landed on {sr["landed"]} titled {sr["title"]!r}; results {sr["results"]}')
    return r

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
    ap.add_argument('--query', default='Nesterov', help='the search the browser types into the search box')
    ap.add_argument('--search-title', default='SGD', help='the title of the page the search must land on')
    ap.add_argument('--no-browser', action='store_true', help='only the checks that need no browser')
    a = ap.parse_args(argv)
    site, nbs, problems = Path(a.site), Path(a.nbs), []
    parsed = check_site(site, nbs, problems)
    if not parsed: sys.exit('FAIL: ' + '\n'.join(problems))
    n_api = check_api(nbs, parsed, problems)
    cands = [a.page] if a.page else ['optim_adam.html', 'optim.html', 'optim_adaptive.html', 'optim_sgd.html']
    page = next((c for c in cands if c in parsed and parsed[c].n_math), None)
    if page is None: problems.append(f'no page with equations to screenshot among {cands}')
    elif not a.no_browser:
        shot = Path(a.shot) if a.shot else site / 'browser_screenshot.png'
        screenshot(site / page, shot)
        stats = check_png(shot, problems)
        print(f'screenshot of {page}: {shot} {stats}')
    live = live_checks(site, parsed, problems, a.query, a.search_title) if not a.no_browser else {}
    if live.get('search'):
        n_eq = sum(m['n'] for m in live['math'].values())
        print(f"browser: {n_eq} display equations on {len(live['math'])} pages measured at 1280 and 420 px; "
              f"search for {a.query!r} -> {live['search'].get('first')} titled {live['search'].get('title')!r}")
    n_math = sum(p.n_math for p in parsed.values())
    print(f'{len(parsed)} pages checked, {n_math} MathML equations, {n_api} API entries')
    if problems:
        print(f'FAIL: {len(problems)} problems', file=sys.stderr)
        for p in problems: print('  ' + p, file=sys.stderr)
        sys.exit(1)
    print('docs site OK')

if __name__ == '__main__': main()
