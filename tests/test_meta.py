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
