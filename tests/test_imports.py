"The package's import graph: no cycle, and the core never imports the lab."

import ast
from pathlib import Path
import networkx as nx

PKG = Path(__file__).resolve().parent.parent / "lynx_lite"


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    "Every lynx_lite module `path` imports, anywhere in the file (functions included)."
    name, out = module_name(path), set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("lynx_lite")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("lynx_lite"):
                out.add(mod)
                out |= {
                    f"{mod}.{a.name}"
                    for a in node.names
                    if (PKG.parent / f"{mod}.{a.name}".replace(".", "/")).with_suffix(".py").exists()
                }
    return out


def graph() -> nx.DiGraph:
    g = nx.DiGraph()
    for path in PKG.rglob("*.py"):
        if path.name == "_modidx.py":
            continue
        g.add_node(module_name(path))
        for target in imports(path):
            if target != module_name(path):
                g.add_edge(module_name(path), target)
    return g


def test_the_graph_is_read():
    g = graph()
    assert {"lynx_lite.model", "lynx_lite.lab.quickstart"} <= set(g) and g.has_edge(
        "lynx_lite.model", "lynx_lite.resampler"
    )


def test_no_import_cycle():
    assert list(nx.simple_cycles(graph())) == []


def test_the_core_never_imports_the_lab():
    g = graph()
    core = [m for m in g if not m.startswith("lynx_lite.lab") and m not in ("lynx_lite.cli", "lynx_lite")]
    bad = [(m, t) for m in core for t in g.successors(m) if t.startswith("lynx_lite.lab")]
    assert bad == []
