"""Project habits checked on the source: no import cycle among the project's modules (imports
inside functions count: hiding a cycle in a function does not remove it; `if TYPE_CHECKING:`
imports do not, they never run), and no production file over 500 lines."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("collectors", "advisors", "thoxdash")
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                out[_module_name(path)] = path
    return out


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[tuple[str, str]]:
    """(name, fallback) per import: `import m` -> (m, m); `from m import a` -> (m.a, m): the
    submodule m.a when there is one, else the module m that defines `a`."""
    found: set[tuple[str, str]] = set()
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking_only(node):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update((alias.name, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.update((f"{base}.{alias.name}", base) for alias in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = set()
        for imported, fallback in _imports(tree, name, path.name == "__init__.py"):
            # `from pkg import mod` imports the module pkg.mod when there is one, else pkg itself
            target = imported if imported in modules else fallback
            if target in modules:
                targets.add(target)
        targets.discard(name)
        # importing a package's submodule also runs the package's __init__, which is fine: edges
        # go to the modules named, so `pkg/__init__ -> pkg.sub` is not a cycle with `pkg.sub -> pkg.x`
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function(tmp_path):
    tree = ast.parse("import os\n\ndef f():\n    from collectors import b\n")
    assert ("collectors.b", "collectors") in _imports(tree, "collectors.a", False)
    guarded = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from collectors import b\n")
    assert ("collectors.b", "collectors") not in _imports(guarded, "collectors.a", False)
    relative = ast.parse("from .c import d\nfrom . import e\n")
    assert _imports(relative, "collectors.x.a", False) >= {("collectors.x.c.d", "collectors.x.c"),
                                                           ("collectors.x.e", "collectors.x")}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_project_modules():
    found = cycles(import_graph())
    assert not found, "import cycles (break them; TYPE_CHECKING imports for annotations): " + \
        "; ".join(" <-> ".join(c) for c in found)


def test_no_production_file_over_500_lines():
    long = {str(p.relative_to(ROOT)): n for p in project_modules().values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"production files over {MAX_LINES} lines: {long}"


def test_no_code_cites_a_document_the_repository_does_not_have():
    cited = {}
    for path in [*project_modules().values(), *(ROOT / "scripts").glob("*.py")]:
        for doc in set(re.findall(r"\b([\w/]*[A-Z][A-Z_]+\.md)\b", path.read_text(encoding="utf-8"))):
            if not any((base / doc).exists() for base in (ROOT, ROOT / "docs", path.parent)):
                cited.setdefault(doc, []).append(str(path.relative_to(ROOT)))
    assert not cited, f"documents cited but missing: {cited}"
