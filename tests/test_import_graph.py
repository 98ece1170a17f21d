"""The package's import graph: no import cycles between agentprm modules, at module level or hidden in
functions, and a CLI that starts without torch or numpy (its options come from torch-free configs)."""

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def modules(src: Path) -> dict[str, Path]:
    out = {}
    for p in (src / "agentprm").rglob("*.py"):
        parts = list(p.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def import_graph(deep: bool, src: Path = SRC) -> dict[str, set[str]]:
    """module -> agentprm modules it imports at module level (`deep`: in functions too); TYPE_CHECKING
    blocks never count. Importing a.b.c also runs a/__init__ and a/b/__init__: that implicit edge to
    one's own package is no cycle, an explicit import of it is."""
    mods = modules(src)

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    def imports(node: ast.AST) -> list[ast.Import | ast.ImportFrom]:
        found: list[ast.Import | ast.ImportFrom] = []
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append(child)
            elif deep or isinstance(child, ast.If | ast.Try | ast.With | ast.ExceptHandler):
                found += imports(child)
        return found

    graph = {}
    for m, path in mods.items():
        pkg = m if path.name == "__init__.py" else m.rpartition(".")[0]
        explicit: set[str | None] = set()
        for node in imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                explicit |= {resolve(a.name) for a in node.names if a.name.startswith("agentprm")}
                continue
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            if base.startswith("agentprm"):
                explicit |= {resolve(f"{base}.{a.name}") for a in node.names}
        named = {d for d in explicit if d is not None}
        deps = set(named)
        for d in named:
            parts = d.split(".")
            deps |= {".".join(parts[:i]) for i in range(1, len(parts))}
        graph[m] = {d for d in deps - {m} if not m.startswith(d + ".") or d in named}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out = []
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_graph_reader_sees_cycles(tmp_path):
    pkg = tmp_path / "agentprm"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from agentprm.b import x\n")
    (pkg / "b.py").write_text("def f():\n    from agentprm import a\n")
    (pkg / "sub" / "__init__.py").write_text("from agentprm.sub import c\n")
    (pkg / "sub" / "c.py").write_text("from agentprm.sub import thing\nif TYPE_CHECKING:\n    from agentprm import a\n")
    (pkg / "d.py").write_text("from agentprm.sub.c import y\n")  # runs sub/__init__ first: no cycle
    assert cycles(import_graph(deep=False, src=tmp_path)) == [{"agentprm.sub", "agentprm.sub.c"}]
    deep = cycles(import_graph(deep=True, src=tmp_path))
    assert sorted(map(sorted, deep)) == [["agentprm.a", "agentprm.b"], ["agentprm.sub", "agentprm.sub.c"]]


def test_no_module_level_import_cycles():
    assert cycles(import_graph(deep=False)) == []


def test_no_cycles_hidden_in_functions():
    # The last one (pipeline -> report -> pipeline for the stage keys) is gone: the report reads the keys
    # and `Provenance` from agentprm.stage_keys, which imports neither.
    assert cycles(import_graph(deep=True)) == []


def test_the_cli_starts_without_torch_or_numpy():
    code = "import sys, agentprm.cli; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
