"""Local worker processes for `ferryman up`: started, restarted when they die, reported, drained on shutdown.

A worker that dies is reported in words on the console: the signal or exit code, the last lines it wrote to
stderr, and what to do about it. Restarts back off exponentially; a run that lasted `healthy_after_seconds`
resets the backoff. After `give_up_after` quick failures in a row the supervisor stops restarting that worker
and says so: `ferryman up` never sits silent with a dead model.

Each child asks the kernel for SIGTERM if its parent dies (PR_SET_PDEATHSIG), so even a SIGKILLed `up` leaves no
orphan workers behind.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import structlog

log = structlog.get_logger(__name__)

PR_SET_PDEATHSIG = 1
MAX_LINE_CHARS = 400  # a tail line longer than this is cut: the console report stays readable
READ_CHUNK = 65536

# what a person can do about the usual ways a local worker dies
_SIGNAL_ADVICE = {
    signal.SIGILL: (
        "the CPU refused an instruction: the inference library was built for a CPU with features this machine "
        "does not allow (e.g. llama-cpp-python built with native flags); rebuild it portably "
        '(CMAKE_ARGS="-DGGML_NATIVE=OFF") and start again'
    ),
    signal.SIGKILL: "it was killed from outside, often by the kernel when memory ran out: see `dmesg`",
    signal.SIGSEGV: "it crashed in native code: check the backend's library and model file",
    signal.SIGBUS: "it crashed in native code (bus error): check the model file is complete",
    signal.SIGABRT: "native code aborted: the lines above say why",
}


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True, slots=True)
class WorkerCommand:
    name: str
    argv: Sequence[str]
    env: dict[str, str]


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How the supervisor restarts a worker that died."""

    first_delay_seconds: float = 1.0
    max_delay_seconds: float = 30.0
    healthy_after_seconds: float = 60.0  # a run at least this long was healthy: backoff starts over
    give_up_after: int = 5  # quick failures in a row before the worker is left stopped
    stderr_lines: int = 15  # how much of a dead worker's stderr the report quotes

    def delay(self, failures: int) -> float:
        """The wait before the restart that follows the `failures`-th quick failure in a row."""
        return float(min(self.max_delay_seconds, self.first_delay_seconds * 2 ** max(0, failures - 1)))


def describe_exit(code: int) -> tuple[str, str]:
    """(what happened, what to do) for a child's return code, in words a person reads on the console."""
    if code < 0:
        try:
            sig = signal.Signals(-code)
        except ValueError:
            return f"killed by signal {-code}", "see the lines it wrote above"
        meaning = signal.strsignal(sig) or sig.name
        return f"killed by {sig.name} ({meaning.lower()})", _SIGNAL_ADVICE.get(
            sig, "see the lines it wrote above"
        )
    if code == 2:
        return "exited with code 2", "its command line or configuration was refused: see the message above"
    if 128 < code < 128 + signal.NSIG:  # a shell or wrapper in between reports a signal as 128 + its number
        what, advice = describe_exit(128 - code)
        return f"exited with code {code}, i.e. {what.removeprefix('killed by ')}", advice
    return f"exited with code {code}", "see the lines it wrote above"


class StderrTail:
    """The last lines a child wrote to stderr, bounded in count and length, while passing them through."""

    def __init__(self, lines: int, passthrough: BinaryIO | None) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=max(1, lines))
        self._partial = b""
        self._passthrough = passthrough

    async def follow(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(READ_CHUNK):
            if self._passthrough is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._passthrough.write(chunk)
                    self._passthrough.flush()
            *complete, self._partial = (self._partial + chunk).split(b"\n")
            for line in complete:
                self._keep(line)
            if len(self._partial) > READ_CHUNK:
                self._keep(self._partial)
                self._partial = b""
        if self._partial:
            self._keep(self._partial)
            self._partial = b""

    def _keep(self, raw: bytes) -> None:
        line = raw.decode(errors="replace").rstrip()
        if line:
            self._lines.append(line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + " …")

    def lines(self) -> list[str]:
        return list(self._lines)


Report = Callable[[str], None]
OnGiveUp = Callable[[WorkerCommand], None]


def _default_report(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class WorkerSupervisor:
    def __init__(
        self,
        commands: Sequence[WorkerCommand],
        *,
        policy: RestartPolicy | None = None,
        report: Report = _default_report,
        on_give_up: OnGiveUp | None = None,
        passthrough: BinaryIO | None = None,
    ) -> None:
        """`report` gets each console message (plain text); `on_give_up` hears of a worker left stopped;
        the children's stderr is copied to `passthrough` (default: this process's stderr) as it comes."""
        self._commands = commands
        self._policy = policy or RestartPolicy()
        self._report, self._on_give_up = report, on_give_up
        self._passthrough = passthrough if passthrough is not None else getattr(sys.stderr, "buffer", None)
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.given_up: set[str] = set()

    def start(self) -> None:
        for command in self._commands:
            self._tasks.append(asyncio.create_task(self._keep_running(command)))

    async def _run_once(self, command: WorkerCommand) -> tuple[int, float, list[str]]:
        """Start the worker, wait for it to exit; (return code, seconds it ran, last stderr lines)."""
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *command.argv,
            env={**os.environ, **command.env},
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        self._procs[command.name] = proc
        tail = StderrTail(self._policy.stderr_lines, self._passthrough)
        assert proc.stderr is not None
        follower = asyncio.create_task(tail.follow(proc.stderr))
        code = await proc.wait()
        # a grandchild may still hold the pipe open: read what is there, do not wait for it forever
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(follower), 2.0)
        follower.cancel()
        return code, time.monotonic() - started, tail.lines()

    async def _keep_running(self, command: WorkerCommand) -> None:
        failures = 0
        while not self._stopping:
            try:
                code, ran_seconds, lines = await self._run_once(command)
            except OSError as exc:
                code, ran_seconds, lines = 127, 0.0, [f"could not start {command.argv[0]}: {exc}"]
            if self._stopping:
                return
            healthy = ran_seconds >= self._policy.healthy_after_seconds
            failures = 0 if healthy else failures + 1
            what, advice = describe_exit(code)
            log.warning("worker.exited", name=command.name, code=code, ran_s=round(ran_seconds, 1))
            if failures >= self._policy.give_up_after:
                self.given_up.add(command.name)
                self._report(
                    self._message(command, what, ran_seconds, lines, advice)
                    + f"\n  {failures} quick failures in a row (each within "
                    f"{self._policy.healthy_after_seconds:g} s of starting): not restarting it. Fix the cause "
                    f"and start `ferryman up` again; to see it fail by hand (with FERRYMAN_WORKER_TOKEN set): "
                    f"{self._hand_command(command)}"
                )
                if self._on_give_up is not None:
                    self._on_give_up(command)
                return
            delay = self._policy.delay(max(1, failures))
            count = (
                "after a healthy run"
                if healthy
                else f"quick failure {failures} of {self._policy.give_up_after} before it is left stopped"
            )
            self._report(
                self._message(command, what, ran_seconds, lines, advice)
                + f"\n  restarting in {delay:g} s ({count})"
            )
            await asyncio.sleep(delay)

    @staticmethod
    def _message(command: WorkerCommand, what: str, ran: float, lines: list[str], advice: str) -> str:
        head = f"worker {command.name} {what} after {ran:.1f} s"
        quoted = "; its last lines on stderr:" + "".join(f"\n  | {line}" for line in lines)
        return f"{head}{quoted if lines else '; it wrote nothing to stderr'}\n  what to do: {advice}"

    @staticmethod
    def _hand_command(command: WorkerCommand) -> str:
        return shlex.join(["python" if a == sys.executable else a for a in command.argv])

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
