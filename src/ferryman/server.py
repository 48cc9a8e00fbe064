"""Running the API under uvicorn, with shutdown driven by us rather than by uvicorn's signal handlers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator
from typing import Any

import uvicorn

from ferryman.app import create_app
from ferryman.config import Settings
from ferryman.container import Container
from ferryman.http_limits import ConnectionLimits, guarded_protocol


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # signals are handled by the caller, which drains workers before the API stops


class StartupFailed(Exception):
    pass


class ApiServer:
    """The API in this process: `start()` returns once it accepts connections; `stop()` shuts it down."""

    def __init__(self, settings: Settings) -> None:
        self.container: Container | None = None
        self._host, self._port = settings.host, settings.port

        def ready(container: Container) -> None:
            self.container = container

        app = create_app(settings, on_ready=ready)
        limits = ConnectionLimits(
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            header_timeout_seconds=settings.header_timeout_seconds,
            max_connections_per_address=settings.max_connections_per_address,
        )
        config = uvicorn.Config(
            app,
            http=guarded_protocol(limits),  # docs/adr/0004-connection-limits.md
            timeout_keep_alive=settings.keepalive_timeout_seconds,
            limit_concurrency=settings.max_connections,
            host=settings.host,
            port=settings.port,
            lifespan="on",
            log_level="warning",
            access_log=settings.access_log,
            ws_max_size=64 * 1024 * 1024,
            ws_per_message_deflate=False,
            timeout_graceful_shutdown=10,
            ssl_certfile=settings.tls_cert_file,
            ssl_keyfile=settings.tls_key_file,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[Any] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                try:
                    self._task.result()
                except SystemExit:
                    pass
                raise StartupFailed(
                    f"the API could not start on {self._host}:{self._port} (is the port in use? try --port); "
                    "see the log above"
                )
            await asyncio.sleep(0.05)

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    async def wait(self) -> None:
        if self._task is not None:
            await self._task

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
