"""Fixtures for the backend tests: the anyio runner and a fake OpenAI-compatible upstream served over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.worker.backends.fake_openai_upstream import FakeUpstream, serve_fake_upstream


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    # session-wide, so a model loaded by a module-scoped fixture serves every test of that module
    return "asyncio"


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeUpstream]:
    with serve_fake_upstream() as upstream:
        yield upstream
