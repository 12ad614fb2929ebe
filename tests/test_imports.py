"""Dependencies point one way, and the rule is a test (STYLE 13, DESIGN "Layout").

Every module's imports are read with `ast` (top-level and inside functions alike, since a
lazy import is still an arrow), resolved to project modules, and checked for cycles,
forbidden arrows between packages and `_private` names used across packages.
Run as a script to print the counts: `python tests/test_imports.py`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bench_core", "harness", "trainers", "tasks", "leaderboards", "containers", "ci")

# importer package -> packages it must not import (DESIGN: harness -> trainers -> tasks;
# leaderboards reads records only; the leaf layer imports nothing of the project).
FORBIDDEN = {
    "tasks": {"trainers", "harness", "leaderboards"},
    "leaderboards": {"trainers", "tasks", "harness"},
    "trainers": {"harness"},
    "bench_core": set(PACKAGES) - {"bench_core"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            out[_module_name(path)] = path
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) for every project import in the file."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub, None) if sub in modules else (base, alias.name))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.append((node.args[0].value, None))
    return [(m, n) for m, n in found if m.split(".")[0] in PACKAGES]


def graph() -> tuple[dict[str, set[str]], list[str], list[str]]:
    """The module graph, plus forbidden arrows and cross-package private imports found."""
    modules = project_modules()
    edges: dict[str, set[str]] = {m: set() for m in modules}
    forbidden, private = [], []
    for name, path in modules.items():
        top = name.split(".")[0]
        for target, imported in imports(name, path, modules):
            other = target.split(".")[0]
            if target in modules and target != name:
                edges[name].add(target)
            if other in FORBIDDEN.get(top, ()):
                forbidden.append(f"{name} -> {target}")
            crossed = [p for p in target.split(".") if _private(p)]
            if imported and _private(imported):
                crossed.append(imported)
            if other != top and crossed:
                private.append(f"{name} -> {target}" + (f".{imported}" if imported else ""))
    return edges, sorted(set(forbidden)), sorted(set(private))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(out)


def test_every_project_file_is_read():
    modules = project_modules()
    assert {"harness.cli", "trainers", "tasks.math.utils", "leaderboards.store"} <= set(modules)
    assert all(name.split(".")[0] in PACKAGES for name in modules)


def test_resolver_sees_relative_lazy_and_private_imports(tmp_path, monkeypatch):
    # A tiny fake tree: the checker must catch a function-level relative import, an
    # import_module string and a private name taken across packages.
    for rel, text in {
        "tasks/__init__.py": "",
        "tasks/a.py": "def f():\n    from .b import g\n",
        "tasks/b.py": "import importlib\nimportlib.import_module('tasks.a')\n",
        "harness/__init__.py": "",
        "harness/c.py": "from tasks.b import _hidden\n",
        "trainers/__init__.py": "import harness.c\n",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    edges, forbidden, private = graph()
    assert cycles(edges) == [["tasks.a", "tasks.b"]]
    assert forbidden == ["trainers -> harness.c"]
    assert private == ["harness.c -> tasks.b._hidden"]


def test_no_module_cycles():
    found = cycles(graph()[0])
    assert not found, "module cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_forbidden_arrows():
    found = graph()[1]
    assert not found, "imports against the layering (DESIGN.md Layout): " + ", ".join(found)


def test_no_private_imports_across_packages():
    found = graph()[2]
    assert not found, "make these public or move them: " + ", ".join(found)


if __name__ == "__main__":
    edges, forbidden, private = graph()
    found = cycles(edges)
    print(
        f"modules {len(edges)}  cycles {len(found)}  forbidden {len(forbidden)}  private {len(private)}"
    )
    for component in found:
        print("cycle:", " <-> ".join(component))
    for line in forbidden:
        print("forbidden:", line)
    for line in private:
        print("private:", line)
