"""The package's imports run one way: no import circles, and the library never imports the command line."""

import ast
import os
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parent.parent / "spicelearn"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, name: str) -> set:
    """Modules of the package that ``path`` imports (at any depth of its code), as dotted names."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("spicelearn"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("spicelearn"):
                continue
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # `from . import x` may name a module
    return out


def import_graph() -> nx.DiGraph:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    g = nx.DiGraph()
    g.add_nodes_from(files)
    for name, path in files.items():
        for target in _imports(path, name):
            while target and target not in files:  # `from x import name` where name is not a module
                target = target.rpartition(".")[0]
            if target and target != name and not (name.startswith(target + ".") and target.count(".") == 0):
                g.add_edge(name, target)
    return g


def test_there_are_no_import_circles():
    g = import_graph()
    # a package's __init__ imported by its own modules is how Python loads them, not a circle of ours:
    # only imports between modules count, and the top-level __init__ (the public API) re-exports.
    g.remove_node("spicelearn")
    cycles = list(nx.simple_cycles(g))
    assert not cycles, f"import circles: {cycles[:3]}"


def test_the_library_never_imports_the_command_line():
    g = import_graph()
    command_line = ("spicelearn.cli", "spicelearn.__main__")  # (python -m spicelearn: an entry point, as the script)
    bad = [(a, b) for a, b in g.edges if b.startswith("spicelearn.cli") and not a.startswith(command_line)]
    assert not bad, f"library modules importing the CLI: {bad}"


def test_the_check_finds_a_circle(tmp_path, monkeypatch):
    """The walker is not blind: two modules importing each other are found."""
    pkg = tmp_path / "spicelearn"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", pkg)
    g = import_graph()
    g.remove_node("spicelearn")
    assert list(nx.simple_cycles(g))
    assert os.path.exists(pkg / "a.py")
