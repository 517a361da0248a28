"""Write README.md from nbs/index.ipynb (Quarto, which `nbdev_readme` needs, is not required).

    python tools/readme.py          # regenerate README.md
    python tools/readme.py --check  # exit 1 if README.md is out of date
Cells marked `#| hide` are left out; other `#| ` directive lines are dropped; code cells become ```python blocks;
image links into nbs/images are rewritten for the README's place.
"""

import sys
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parent.parent


def render(nb_path: Path = ROOT / "nbs" / "index.ipynb") -> str:
    parts = []
    for cell in nbformat.read(nb_path, as_version=4).cells:
        lines = cell.source.splitlines()
        if any(l.strip().replace(" ", "") in ("#|hide", "#|hide_input") for l in lines):
            continue
        body = "\n".join(l for l in lines if not l.lstrip().startswith("#|")).strip("\n")
        if not body:
            continue
        if cell.cell_type == "markdown":
            body = body.replace("](images/", "](nbs/images/")  # README sits one folder up
        parts.append(body if cell.cell_type == "markdown" else f"```python\n{body}\n```")
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    text, readme = render(), ROOT / "README.md"
    if "--check" in sys.argv:
        if readme.read_text() != text:
            sys.exit("README.md is out of date with nbs/index.ipynb: run `python tools/readme.py`")
        print("README.md matches nbs/index.ipynb")
    else:
        readme.write_text(text)
        print(f"wrote {readme}")
