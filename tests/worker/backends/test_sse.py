from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ferryman.worker.backends._sse import iter_sse_data

pytestmark = pytest.mark.anyio


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def _data(*lines: str) -> list[str]:
    return [data async for data in iter_sse_data(_lines(*lines))]


async def test_iter_sse_data_yields_each_event_and_done() -> None:
    assert await _data('data: {"a":1}', "", "data: [DONE]", "") == ['{"a":1}', "[DONE]"]


async def test_iter_sse_data_joins_multiline_data_and_skips_other_fields() -> None:
    lines = (": comment", "event: message", "id: 7", "data: first", "data:second", "", "retry: 10", "")
    assert await _data(*lines) == ["first\nsecond"]


async def test_iter_sse_data_yields_last_event_when_body_ends_without_blank_line() -> None:
    assert await _data("data: one", "", "data: [DONE]") == ["one", "[DONE]"]
