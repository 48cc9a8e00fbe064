"""Real Ferryman processes for whole-system tests: a server (`ferryman serve`/`up`) and worker agents."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until(check: Any, *, timeout_s: float, what: str, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(
        f"timed out after {timeout_s}s waiting for {what}; last={last!r}\n" + (tail(log) if log else "")
    )


class FerrymanServer:
    """`ferryman serve` (API + queue nodes) on a free port and a fresh data dir; restartable."""

    def __init__(
        self,
        data_dir: Path,
        *,
        env: dict[str, str] | None = None,
        command: str = "serve",
        extra: list[str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "FERRYMAN_LOG_LEVEL": "info", **(env or {})}
        self.command, self.extra = command, extra or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / f"{command}.log"
        self.workers: list[subprocess.Popen[bytes]] = []

    def start(self, timeout_s: float = 60) -> FerrymanServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "ferryman",
            self.command,
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            *self.extra,
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        wait_until(self._healthy, timeout_s=timeout_s, what=f"{self.url}/healthz", log=self.log)
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"ferryman {self.command} exited with {self.proc.returncode}:\n{tail(self.log)}"
            )
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def worker_token(self, region: str) -> str:
        return (self.data_dir / f"worker-token-{region}").read_text().strip()

    def client(self, token: str | None = None, timeout: float = 30) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=timeout, headers={"Authorization": f"Bearer {token or self.token}"}
        )

    def start_worker(
        self,
        *,
        region: str = "us",
        models: tuple[str, ...] = ("echo-1",),
        slots: int = 1,
        backend: str = "echo",
        worker_id: str | None = None,
        wait: bool = True,
        extra: list[str] | None = None,
    ) -> subprocess.Popen[bytes]:
        argv = [
            sys.executable,
            "-m",
            "ferryman",
            "worker",
            "--url",
            self.url,
            "--region",
            region,
            "--backend",
            backend,
            "--slots",
            str(slots),
            *[a for m in models for a in ("--models", m)],
            *(["--worker-id", worker_id] if worker_id else []),
            *(extra or []),
        ]
        env = {**self.env, "FERRYMAN_WORKER_TOKEN": self.worker_token(region)}
        log = self.data_dir / f"worker-{worker_id or len(self.workers)}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        before = self.connected_workers(region)
        self.workers.append(proc)
        if wait:
            wait_until(
                lambda: self.connected_workers(region) > before or proc.poll() is not None,
                timeout_s=30,
                what=f"worker {worker_id} to register",
                log=log,
            )
            assert proc.poll() is None, f"worker exited with {proc.returncode}:\n{tail(log)}"
        return proc

    def connected_workers(self, region: str) -> int:
        count: int = httpx.get(f"{self.url}/readyz", timeout=5).json()["regions"][region]["workers"]
        return count

    def kill(self) -> None:
        """SIGKILL the server: nothing gets to clean up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=10)
        self.workers.clear()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def create_org(self, name: str, *, region: str = "us", weight: float = 1.0) -> str:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "ferryman",
                "orgs",
                "create",
                name,
                "--region",
                region,
                "--weight",
                str(weight),
                "--data-dir",
                str(self.data_dir),
            ],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=True,
        )
        return out.stdout.strip().splitlines()[-1]


def running(server: FerrymanServer) -> Iterator[FerrymanServer]:
    try:
        yield server.start()
    finally:
        server.stop()
