"""Running a blocking iterator in a thread and reading it from the event loop, one item at a time.

Local engines (llama.cpp) generate in C, holding no event loop; this bridge lets a backend stream their output
without blocking the loop, and stops the producer promptly when the consumer goes away.
"""

from __future__ import annotations

import asyncio
import enum
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class _Kind(enum.Enum):
    VALUE = enum.auto()
    ERROR = enum.auto()
    DONE = enum.auto()


async def iterate_in_thread(produce: Callable[[threading.Event], Iterator[T]]) -> AsyncGenerator[T, None]:
    """Yield what `produce(stop)` yields, running it in the default executor.

    `stop` is set as soon as this async generator is closed or cancelled; the producer should check it between
    items (between tokens) and return. The producer's exceptions are re-raised here. The thread may outlive
    the generator by one item, so a producer that needs exclusive use of something must lock it itself.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[_Kind, Any]] = asyncio.Queue()
    stop = threading.Event()

    def post(kind: _Kind, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed: nobody is listening any more
            stop.set()

    def pump() -> None:
        try:
            for value in produce(stop):
                if stop.is_set():
                    return
                post(_Kind.VALUE, value)
        except Exception as exc:
            post(_Kind.ERROR, exc)
        else:
            post(_Kind.DONE, None)

    worker = loop.run_in_executor(None, pump)
    try:
        while True:
            kind, value = await queue.get()
            if kind is _Kind.DONE:
                break
            if kind is _Kind.ERROR:
                raise value
            yield value
        await worker
    finally:
        stop.set()
