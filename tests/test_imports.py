"""imgscan's modules import one way: no circle between two modules, however hidden.

Every import counts, at module level or inside a function, under
``TYPE_CHECKING`` or not: an import placed inside a function to dodge a circle
is still a circle in the design. ``.py`` files are read with :mod:`ast`,
``.pyx``/``.pxd`` files with a regular expression over their ``import``,
``from ... import`` and ``cimport`` lines. A failure names the circle.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "imgscan"
ROOT = PACKAGE.name

Graph = dict[str, set[str]]


def _module_name(path: Path) -> tuple[str, bool]:
    """The dotted name of ``path`` and whether it is a package's ``__init__``."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of ``from <level dots><name> import ...`` in ``module``."""
    if level == 0:
        return name or ""
    base = module.split(".")
    if not is_package:
        base.pop()
    if level > 1:
        base = base[:len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _python_imports(path: Path, module: str, is_package: bool) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node.level, node.module)
            out.update(_from_targets(target, [alias.name for alias in node.names]))
    return out


def _from_targets(target: str, names: list[str]) -> set[str]:
    """What ``from target import names`` depends on: the submodules among ``names``,
    and ``target`` itself unless every name is one of its submodules (a parent
    package is imported before any submodule anyway; that is not an edge). No
    names (a parenthesised list the Cython pattern did not follow): ``target``."""
    submodules = {f"{target}.{name}" for name in names if _is_module(f"{target}.{name}")}
    return submodules if names and len(submodules) == len(names) else {target, *submodules}


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.is_dir() or any(path.with_suffix(s).is_file() for s in (".py", ".pyx", ".pxd"))


_CYTHON_IMPORT = re.compile(
    r"^\s*(?:from\s+(?P<dots>\.*)(?P<from>[\w.]*)\s+c?import\s+(?P<names>[\w, ()]+)"
    r"|c?import\s+(?P<plain>[\w.]+))", re.MULTILINE)


def _cython_imports(path: Path, module: str, is_package: bool) -> set[str]:
    out: set[str] = set()
    for m in _CYTHON_IMPORT.finditer(path.read_text(encoding="utf-8")):
        if m["plain"]:
            out.add(m["plain"])
            continue
        target = _resolve(module, is_package, len(m["dots"]), m["from"] or None)
        names = m["names"].replace("(", "").replace(")", "")
        out.update(_from_targets(target, [n.split()[0] for n in names.split(",") if n.strip()]))
    return out


def import_graph() -> Graph:
    """Module -> the imgscan modules it imports (names that are not modules dropped)."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix not in (".py", ".pyx", ".pxd") or "build" in path.parts:
            continue
        module, is_package = _module_name(path)
        read = _python_imports if path.suffix == ".py" else _cython_imports
        found.setdefault(module, set()).update(read(path, module, is_package))
    return {m: {t for t in targets if t in found and t != m} for m, targets in found.items()}


def circles(graph: Graph) -> list[list[str]]:
    """Each strongly connected group of more than one module, as a path round it
    (Tarjan's algorithm, iterative: the graph has a few hundred modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(_round(graph, set(group)))
    return groups


def _round(graph: Graph, group: set[str]) -> list[str]:
    """A path from the group's first module back to itself, through the group."""
    first = min(group)
    paths = {first: [first]}
    todo = [first]
    while todo:
        node = todo.pop(0)
        for child in sorted(graph[node] & group):
            if child == first:
                return [*paths[node], first]
            if child not in paths:
                paths[child] = [*paths[node], child]
                todo.append(child)
    return sorted(group)


def test_the_graph_sees_the_package() -> None:
    graph = import_graph()
    assert "imgscan.image" in graph and "imgscan._core.ntfs" in graph
    assert "imgscan.contract" in graph["imgscan.image"]
    # imports inside functions count (the guest inspector is imported lazily)
    assert "imgscan.guest.windows" in graph["imgscan.guest"]


def test_the_circle_finder_names_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c", "a"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles() -> None:
    found = circles(import_graph())
    assert not found, "import circles:\n" + "\n".join(" -> ".join(c) for c in found)
