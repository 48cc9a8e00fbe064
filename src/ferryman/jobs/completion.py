"""One seam for "a job ended": an ordered list of completion observers.

The queue node hands every finished job to `Completions.notify` once its terminal state and its usage event are
committed (only a job whose insert the store never acknowledged is announced before its write: nothing else
knows it exists). Webhooks, admission holds and the autoscaler are observers today; metering, concurrency limits,
batches and workflows come the same way.

An observer may be plain (`job_finished` returns None) or async (it returns an awaitable, run as its own task).
Either way it cannot block or break dispatch: an observer that raises is logged and counted and the next one is
still called; an async one is never awaited by the node, and the ones still running at shutdown get
`CLOSE_SECONDS` to end before they are cancelled.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from ferryman.jobs.models import Job

log = structlog.get_logger(__name__)

CLOSE_SECONDS = 5.0


class CompletionObserver(Protocol):
    """Told about each job once it ended. `at_mono` is the node's monotonic clock at the announcement."""

    def job_finished(self, job: Job, at_mono: float) -> Awaitable[None] | None: ...


@dataclass(frozen=True, slots=True)
class OnFinished:
    """A plain function of the finished job as a completion observer (`OnFinished(webhooks.notify)`)."""

    call: Callable[[Job], Awaitable[None] | None]

    def job_finished(self, job: Job, at_mono: float) -> Awaitable[None] | None:
        return self.call(job)

    @property
    def name(self) -> str:
        return getattr(self.call, "__qualname__", type(self.call).__name__)


def name_of(observer: CompletionObserver) -> str:
    """What logs and metrics call an observer: its `name` if it has one, else its class."""
    name = getattr(observer, "name", None)
    return name if isinstance(name, str) else type(observer).__name__


def _current_error() -> str:
    """The type name of the exception being handled (called from an `except` block)."""
    return type(sys.exc_info()[1]).__name__


class Completions:
    """The ordered observers of one queue node. `on_failure(name)` is told of each failed call (a metric)."""

    def __init__(
        self,
        observers: Sequence[CompletionObserver] = (),
        *,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self._observers = tuple(observers)
        self._on_failure = on_failure
        self._running: set[asyncio.Future[Any]] = set()

    @property
    def observers(self) -> tuple[CompletionObserver, ...]:
        return self._observers

    def add(self, observer: CompletionObserver) -> None:
        """Append an observer: it is called after the ones already there."""
        self._observers = (*self._observers, observer)

    def notify(self, job: Job, at_mono: float) -> None:
        """Call every observer in order; never raises."""
        for observer in self._observers:
            try:
                outcome = observer.job_finished(job, at_mono)
            except Exception:
                self._failed(observer, job)
                continue
            if inspect.isawaitable(outcome):
                self._run(observer, job, outcome)

    def _run(self, observer: CompletionObserver, job: Job, outcome: Awaitable[None]) -> None:
        running = asyncio.ensure_future(outcome)
        self._running.add(running)

        def done(task: asyncio.Future[Any]) -> None:
            self._running.discard(task)
            if not task.cancelled() and task.exception() is not None:
                self._failed(observer, job, task.exception())

        running.add_done_callback(done)

    def _failed(self, observer: CompletionObserver, job: Job, error: BaseException | None = None) -> None:
        name = name_of(observer)
        # the exception's type, not its text or a traceback with locals: both can quote the job's input or output
        kind = type(error).__name__ if error is not None else _current_error()
        log.error("completion.observer_failed", observer=name, job_id=job.id, error=kind)
        if self._on_failure is not None:
            self._on_failure(name)

    def pending(self) -> int:
        """Async observer calls still running."""
        return len(self._running)

    async def aclose(self, timeout_seconds: float = CLOSE_SECONDS) -> None:
        """Give running async observers `timeout_seconds` to end, then cancel them."""
        if not self._running:
            return
        _, late = await asyncio.wait(set(self._running), timeout=timeout_seconds)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
            log.warning("completion.observers_cancelled_at_stop", count=len(late))
