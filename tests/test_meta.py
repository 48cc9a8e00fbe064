"""Meta-tests in datasette's manner: the docs, the package surfaces and the import rules stay true."""

from __future__ import annotations

import ast
import importlib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from ferryman import errors
from ferryman.config import settings_markdown

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "ferryman"
PACKAGES = sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").exists())
# leaves any package may reach into: the worker protocol is shared by the node and the agent (STYLE.md)
ALLOWED_DEEP_IMPORTS = {"ferryman.protocol"}


def test_configuration_doc_is_generated_from_settings() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text() == settings_markdown(), (
        "docs/configuration.md is stale: run `ferryman config-docs`"
    )


def test_every_error_code_is_documented() -> None:
    documented = (ROOT / "docs" / "errors.md").read_text()
    missing = [e.code for e in errors.ALL_ERRORS if f"`{e.code}`" not in documented]
    assert missing == []


def test_every_backend_entry_point_loads() -> None:
    found = {ep.name: ep for ep in entry_points(group="ferryman.backends")}
    assert {"echo", "llamacpp", "openai-upstream"} <= found.keys()
    for name, ep in found.items():
        backend = ep.load()
        assert backend.name == name, f"{ep.value} says its name is {backend.name!r}"


@pytest.mark.parametrize("package", PACKAGES)
def test_package_all_names_exist_and_are_unique(package: str) -> None:
    module = importlib.import_module(f"ferryman.{package}")
    exported = getattr(module, "__all__", [])
    assert sorted(set(exported)) == sorted(exported)
    assert [name for name in exported if not hasattr(module, name)] == []


def _deep_imports(path: Path, own: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ferryman."):
            parts = node.module.split(".")
            is_surface = (
                parts[1] == "api" and len(parts) == 3
            )  # api/ holds one public module or package per surface
            deep = len(parts) > 2 and parts[1] != own and parts[1] in PACKAGES and not is_surface
            if deep and node.module not in ALLOWED_DEEP_IMPORTS:
                found.append(f"{path.relative_to(SRC)}: from {node.module} import …")
    return found


def test_no_module_imports_past_another_packages_init() -> None:
    violations = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).parts
        own = rel[0] if len(rel) > 1 else ""
        violations += _deep_imports(path, own)
    assert violations == []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Which of our modules each module imports, counting every import statement: at the top, inside a function
    and under `TYPE_CHECKING` alike (a cycle hidden from the runtime is still a cycle in the design)."""
    paths = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in paths}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                for alias in node.names:
                    # `from ferryman import jobs` names a module; `from ferryman.jobs import Job` names its package
                    target = f"{base}.{alias.name}"
                    edges.add(target if target in paths else base)
        graph[name] = {e for e in edges if e in paths and e != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_sees_a_type_checking_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_import_graph_counts_type_checking_and_package_imports() -> None:
    graph = _import_graph()
    assert "ferryman.dispatch.registry" in graph["ferryman.dispatch.live"]  # only under TYPE_CHECKING there
    assert "ferryman.jobs" in graph["ferryman.dispatch.node"]  # `from ferryman.jobs import Job, …`
    assert "ferryman.protocol" in graph["ferryman.dispatch"]  # `from ferryman import protocol`


def test_no_import_cycle_in_src() -> None:
    assert _cycles(_import_graph()) == []


# identity modules that still run SQL outside a repository; the list only shrinks (issue 10)
IDENTITY_SQL_PENDING = {"enrolments.py"}


def _runs_sql(path: Path) -> bool:
    """Whether a module builds or runs SQL: it imports from sqlalchemy anything but the engine type it is wired
    with (`sqlalchemy.ext.asyncio.AsyncEngine`)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sqlalchemy":
            if node.module != "sqlalchemy.ext.asyncio" or {a.name for a in node.names} != {"AsyncEngine"}:
                return True
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "sqlalchemy" for a in node.names):
            return True
    return False


def test_identity_sql_lives_only_in_repositories() -> None:
    identity = SRC / "identity"
    outside = sorted(
        p.name
        for p in identity.glob("*.py")
        if _runs_sql(p) and not (p.name == "repository.py" or p.name.endswith("_repository.py"))
    )
    assert set(outside) - IDENTITY_SQL_PENDING == set()
    assert IDENTITY_SQL_PENDING <= set(outside), "a module left the pending list: remove it from there"
