from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest

from ferryman.worker.backends._thread_stream import iterate_in_thread

pytestmark = pytest.mark.anyio


async def test_iterate_in_thread_yields_what_the_producer_yields() -> None:
    def produce(stop: threading.Event) -> Iterator[int]:
        yield from range(5)

    assert [i async for i in iterate_in_thread(produce)] == [0, 1, 2, 3, 4]


async def test_iterate_in_thread_reraises_the_producers_error() -> None:
    def produce(stop: threading.Event) -> Iterator[int]:
        yield 1
        raise ValueError("engine broke")

    with pytest.raises(ValueError, match="engine broke"):
        [i async for i in iterate_in_thread(produce)]


async def test_iterate_in_thread_sets_stop_when_consumer_closes_early() -> None:
    stopped = threading.Event()

    def produce(stop: threading.Event) -> Iterator[int]:
        n = 0
        while not stop.wait(0.001):
            n += 1
            yield n
        stopped.set()

    async with contextlib.aclosing(iterate_in_thread(produce)) as items:
        async for n in items:
            if n == 3:
                break
    assert stopped.wait(5)
