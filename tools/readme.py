"""Write README.md from nbs/index.ipynb, the docs home: markdown cells as they are, code cells as
Python blocks with their text output, cells marked `#| hide` left out. Links are written for the
notebook's folder (`04b_optim_sgd.ipynb`, `../benchmarks/...`), so they work on the docs site and in
nbs/; the README sits one folder up, so they become `nbs/04b_optim_sgd.ipynb` and `benchmarks/...`.
`python tools/readme.py --check` fails when README.md is not what the notebook gives."""
import json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent

def cell_text(cell):
    src = ''.join(cell['source']).strip('\n')
    if cell['cell_type'] == 'markdown': return src
    lines = src.splitlines()
    if any(re.match(r'#\|\s*(hide|exporti?|include:\s*false)\b', l) for l in lines): return None
    code = '\n'.join(l for l in lines if not l.startswith('#|')).strip('\n')
    out = ''.join(''.join(o.get('text', '')) for o in cell.get('outputs', []) if o.get('output_type') == 'stream')
    return f"```python\n{code}\n```" + (f"\n\n```\n{out.rstrip()}\n```" if out.strip() else '')

def relink(md: str) -> str:
    "Relative markdown links from nbs/ rewritten for the repository's root (absolute links and anchors unchanged)."
    def fix(m):
        text, url = m.group(1), m.group(2)
        if re.match(r'[a-z][a-z0-9+.-]*:|#|/', url): return m.group(0)
        return f'[{text}]({url[3:] if url.startswith("../") else "nbs/" + url})'
    return re.sub(r'\[([^\]\n]*)\]\(([^)\s]+)\)', fix, md)

def readme_text():
    nb = json.loads((root/'nbs'/'index.ipynb').read_text())
    parts = [relink(t) if c['cell_type'] == 'markdown' else t
             for c, t in zip(nb['cells'], map(cell_text, nb['cells'])) if t]
    first = parts[0].splitlines()
    # the notebook's `> summary` line becomes a plain paragraph under the title
    parts[0] = '\n'.join(l[2:] if l.startswith('> ') else l for l in first)
    return '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    text, readme = readme_text(), root/'README.md'
    if '--check' in sys.argv:
        if readme.read_text() != text: sys.exit('README.md is out of date: run python tools/readme.py')
        print('README.md matches nbs/index.ipynb')
    else: readme.write_text(text)
