"""The real app in-process for the identity routes of the native surface."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.identity.harness import Harness, running_app


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_app(tmp_path) as h:
        yield h
