"""Local worker processes for `ferryman up`: started, restarted when they die, drained on shutdown.

Each child asks the kernel for SIGTERM if its parent dies (PR_SET_PDEATHSIG), so even a SIGKILLed `up` leaves no
orphan workers behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True, slots=True)
class WorkerCommand:
    name: str
    argv: Sequence[str]
    env: dict[str, str]


class WorkerSupervisor:
    def __init__(self, commands: Sequence[WorkerCommand]) -> None:
        self._commands = commands
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def start(self) -> None:
        for command in self._commands:
            self._tasks.append(asyncio.create_task(self._keep_running(command)))

    async def _keep_running(self, command: WorkerCommand) -> None:
        delay = 1.0
        while not self._stopping:
            proc = await asyncio.create_subprocess_exec(
                *command.argv, env={**os.environ, **command.env}, preexec_fn=_die_with_parent
            )
            self._procs[command.name] = proc
            code = await proc.wait()
            if self._stopping:
                return
            log.warning("worker.exited", name=command.name, code=code, restart_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(30.0, delay * 2)

    async def stop(self, grace_seconds: float = 30.0) -> None:
        """SIGTERM every worker (they drain), wait for them, SIGKILL what is left after the grace period."""
        self._stopping = True
        for proc in self._procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        waits = [p.wait() for p in self._procs.values() if p.returncode is None]
        if waits:
            _, pending = await asyncio.wait([asyncio.ensure_future(w) for w in waits], timeout=grace_seconds)
            for proc in self._procs.values():
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            if pending:
                await asyncio.wait(pending, timeout=5)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def worker_argv(
    *, url: str, region: str, backend: str, models: Sequence[str], slots: int, extra: Sequence[str] = ()
) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "ferryman",
        "worker",
        "--url",
        url,
        "--region",
        region,
        "--backend",
        backend,
        "--slots",
        str(slots),
    ]
    for model in models:
        argv += ["--models", model]
    return argv + list(extra)
