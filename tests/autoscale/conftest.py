from __future__ import annotations

from collections.abc import Iterator

import pytest

from .vastai_standin import StandinState, serve


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def vastai_standin() -> Iterator[tuple[str, StandinState]]:
    """A real HTTP server speaking Vast.ai's API (a test double), shared by the session."""
    state = StandinState()
    with serve(state) as base_url:
        yield base_url, state
