"""The processes the benchmark suite starts and watches: the fake upstream, LiteLLM's proxy, CPU pinning, RSS.

Everything reads /proc directly (Linux only, like `taskset`), so the suite needs no psutil and sees every thread
and child a gateway starts, not just the process it launched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Spawned:
    """A child process with its output in a log file, started and health-checked by `start`, ended by `stop`."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_dir: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name, self.argv, self.env, self.cwd = name, argv, {**os.environ, **(env or {})}, cwd
        self.log = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(
        self, health_url: str, *, timeout_s: float = 120, headers: dict[str, str] | None = None
    ) -> Spawned:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before answering; log "
                    f"{self.log}:\n{_tail(self.log)}"
                )
            try:
                if httpx.get(health_url, timeout=2, headers=headers).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"{self.name} did not answer {health_url} within {timeout_s}s; log {self.log}:\n{_tail(self.log)}"
        )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for pid in reversed(tree_pids(self.proc.pid)[1:]):
            _kill(pid)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        pass


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_upstream(port: int, log_dir: Path, *, stream_tokens: int, token_interval_ms: float) -> Spawned:
    argv = [
        sys.executable,
        str(BENCH / "upstream.py"),
        str(port),
        "--stream-tokens",
        str(stream_tokens),
        "--token-interval-ms",
        str(token_interval_ms),
    ]
    return Spawned("upstream", argv, log_dir).start(f"http://127.0.0.1:{port}/healthz", timeout_s=30)


def litellm_config(upstream_url: str, model: str) -> str:
    """LiteLLM's proxy config: one model routed to the fake upstream, and nothing else switched on."""
    return (
        f"model_list:\n  - model_name: {model}\n    litellm_params:\n      model: openai/{model}\n"
        f"      api_base: {upstream_url}\n      api_key: sk-fake-upstream\n"
        "litellm_settings:\n  set_verbose: false\n  drop_params: true\n"
    )


def start_litellm(
    litellm_bin: Path, port: int, upstream_url: str, model: str, log_dir: Path
) -> tuple[Spawned, str]:
    """LiteLLM's proxy (one uvicorn worker, as one gateway process) with a fresh master key; returns it and the key.

    Its health check must answer 200 with the key: LiteLLM refuses to start without one, and a check without it
    would pass before the model router is ready.
    """
    config = log_dir / "litellm.yaml"
    config.write_text(litellm_config(upstream_url, model))
    key = "sk-" + secrets.token_hex(24)
    env = {
        "LITELLM_MASTER_KEY": key,
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "True",
    }
    argv = [
        str(litellm_bin),
        "--config",
        str(config),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--num_workers",
        "1",
    ]
    spawned = Spawned("litellm", argv, log_dir, env=env, cwd=log_dir)
    spawned.start(f"http://127.0.0.1:{port}/health/liveliness", timeout_s=180)
    return spawned, key


def tree_pids(root: int) -> list[int]:
    """`root` and every descendant, parents first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    order, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        order.append(pid)
        todo += children.get(pid, [])
    return order


def pin(roots: list[int], cpus: set[int], *, with_children: bool = True) -> None:
    """`taskset -a -cp`: move every thread of every process under `roots` (or of `roots` alone) to `cpus`."""
    for root in roots:
        for pid in tree_pids(root) if with_children else [root]:
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue  # a process that ended meanwhile
            for tid in tids:
                with contextlib.suppress(OSError):  # a thread that ended meanwhile
                    os.sched_setaffinity(int(tid), cpus)


def is_pinned(roots: list[int], cpus: set[int]) -> bool:
    """Whether every thread under `roots` may run only on `cpus` (the check `pin` did what it says)."""
    for root in roots:
        for pid in tree_pids(root):
            with contextlib.suppress(OSError):
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with contextlib.suppress(OSError):
                        if os.sched_getaffinity(int(tid)) != cpus:
                            return False
    return True


def rss_bytes(roots: list[int]) -> int:
    """Resident memory of the process trees under `roots`, summed."""
    total = 0
    for root in roots:
        for pid in tree_pids(root):
            try:
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
            except (OSError, IndexError):
                continue
    return total


def cpu_seconds(roots: list[int]) -> float:
    """User + system CPU time used so far by the process trees under `roots`."""
    ticks = 0
    for root in roots:
        for pid in tree_pids(root):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


class RssSampler:
    """Samples the RSS of the process trees under `roots` every `interval_s` in a thread; keeps the peak."""

    def __init__(self, roots: list[int], interval_s: float = 0.1) -> None:
        self.roots, self.interval_s = roots, interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, rss_bytes(self.roots))
            self._stop.wait(self.interval_s)
