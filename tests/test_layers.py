"""The code's shape (issue 11): no import cycle among trunkwatch's modules, the data flows one
way (probes/ never imports monitor/; store/ imports nothing from tickets/ or sla/), and
app.py only wires."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("probes", "monitor")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[module_name(path)] = path
    return found


def _module_level(tree: ast.Module) -> Iterator[ast.stmt]:
    """Statements run at import: not under `if TYPE_CHECKING`, not inside functions."""
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.If | ast.Try):
            yield from node.body
            continue
        yield node


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The trunkwatch modules `name` imports when it is imported."""
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _module_level(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports(path, name, known) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    # A package's __init__ importing its own submodules is not a cycle of ideas.
    edges = {
        name: {t for t in targets if not (name.startswith(t + ".") and modules_init(t))}
        for name, targets in graph().items()
    }
    assert cycles(edges) == []


def modules_init(name: str) -> bool:
    return (REPO / name.replace(".", "/") / "__init__.py").exists()


def test_data_flows_one_way() -> None:
    edges = graph()
    wrong = {
        (name, target)
        for name, targets in edges.items()
        for target in targets
        if (name.startswith("probes") and target.startswith("monitor"))
        or (
            name.startswith("monitor.store")
            and target.startswith(("monitor.tickets", "monitor.sla"))
        )
    }
    assert wrong == set()


def test_app_only_wires() -> None:
    source = (REPO / "monitor" / "app.py").read_text()
    assert len(source.splitlines()) < 250
