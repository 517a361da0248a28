"""What the notebooks teach with, counted: exported cells over 60 lines, figures per notebook, and core notebooks that
import the lab (`lynx_lite.lab`). `--check` exits 1 when a cell is over the limit or a core notebook imports the lab.

    python tools/nb_report.py [--check] [--limit 60]
"""

import argparse, json, re, sys
from pathlib import Path

NBS = Path(__file__).resolve().parent.parent / "nbs"
LAB_IMPORT = re.compile(r"^\s*(from|import)\s+lynx_lite\.lab\b", re.M)


def cells(nb: Path) -> list[dict]:
    return json.loads(nb.read_text())["cells"]


def exported(cell: dict) -> bool:
    return cell["cell_type"] == "code" and re.match(r"\s*#\|\s*export", "".join(cell["source"])) is not None


def figures(cell: dict) -> int:
    "Figures a cell draws (matplotlib), shows (markdown images) or holds as a stored image."
    src = "".join(cell["source"])
    if cell["cell_type"] == "markdown":
        return len(re.findall(r"!\[[^\]]*\]\(", src))
    stored = any("image/png" in o.get("data", {}) for o in cell.get("outputs", []))
    return int(stored or bool(re.search(r"plt\.subplots?\(|plt\.figure\(|\.imshow\(", src)))


def is_lab(nb: Path) -> bool:
    return any(re.match(r"\s*#\|\s*default_exp\s+lab\.", "".join(c["source"])) for c in cells(nb))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true")
    p.add_argument("--limit", type=int, default=60)
    args = p.parse_args()
    long, lab_users, rows = [], [], []
    for nb in sorted(NBS.glob("[0-9]*.ipynb")):
        cs = cells(nb)
        over = [(i, len("".join(c["source"]).splitlines())) for i, c in enumerate(cs) if exported(c)]
        over = [(i, n) for i, n in over if n > args.limit]
        long += [(nb.name, i, n) for i, n in over]
        core = not is_lab(nb) and not nb.name.startswith("40_")
        imports_lab = core and any(c["cell_type"] == "code" and LAB_IMPORT.search("".join(c["source"])) for c in cs)
        if imports_lab:
            lab_users.append(nb.name)
        rows.append((nb.name, sum(exported(c) for c in cs), len(over), sum(figures(c) for c in cs), imports_lab))
    print(f"{'notebook':<22}{'exported':>9}{'> ' + str(args.limit):>7}{'figures':>9}  imports the lab")
    for name, n, o, f, lab in rows:
        print(f"{name:<22}{n:>9}{o:>7}{f:>9}  {'yes' if lab else ''}")
    print(f"exported cells over {args.limit} lines: {len(long)}")
    for name, i, n in long:
        print(f"  {name} cell {i}: {n} lines")
    print(f"figures: {sum(r[3] for r in rows)} in {sum(r[3] > 0 for r in rows)} of {len(rows)} notebooks")
    print(f"core notebooks importing the lab: {len(lab_users)}" + (f" ({', '.join(lab_users)})" if lab_users else ""))
    return 1 if args.check and (long or lab_users) else 0


if __name__ == "__main__":
    sys.exit(main())
