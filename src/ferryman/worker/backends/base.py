"""What the worker agent needs from an inference engine, and nothing more.

A backend receives a `WorkItem` and yields `Delta`, `Progress` and `Blob` items while it works, then exactly one
`Output`. It raises `BackendError` (with `retryable`) when it cannot finish. The canonical payload and output
shapes of each task are documented in docs/backends.md; every surface translates to and from them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ferryman.protocol import ModelOffer
from ferryman.types import Task


@dataclass(frozen=True, slots=True)
class WorkItem:
    job_id: str
    task: Task
    model: str
    payload: dict[str, Any]
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class Delta:
    """A streamed piece of the output, e.g. `{"index": 0, "content": "Hel"}` for chat."""

    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Progress:
    fraction: float | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Blob:
    """A media output; the output refers to it by `name` (e.g. `{"blob": "image-0.png"}`)."""

    name: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Output:
    output: dict[str, Any]
    usage: dict[str, Any] = field(default_factory=dict)


Chunk = Delta | Progress | Blob | Output


class BackendError(Exception):
    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class BackendSettings:
    """Everything a backend may be configured with from the worker's command line."""

    models: tuple[str, ...] = ()
    model_path: str | None = None
    upstream_url: str | None = None
    upstream_api_key: str | None = None
    slots: int = 1
    timeout_seconds: float = 600.0
    options: dict[str, str] = field(default_factory=dict)


class Backend(Protocol):
    name: str

    def offers(self) -> Sequence[ModelOffer]: ...

    def run(self, item: WorkItem) -> AsyncIterator[Chunk]: ...

    async def aclose(self) -> None: ...
