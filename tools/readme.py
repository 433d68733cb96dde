"""Write README.md from nbs/index.ipynb, the docs home: markdown cells as they are, code cells as
Python blocks with their text output, cells marked `#| hide` left out.
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

def readme_text():
    nb = json.loads((root/'nbs'/'index.ipynb').read_text())
    parts = [t for t in map(cell_text, nb['cells']) if t]
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
