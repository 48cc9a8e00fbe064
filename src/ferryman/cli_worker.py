"""`ferryman worker`: the worker agent's command, kept apart so that a worker imports none of the server.

`python -m ferryman worker …` loads only this module, the worker package and the protocol, not the web
framework, the stores or the autoscaler: a worker starts in a fraction of a second and stays small.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import signal
import socket
import ssl
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from ferryman.logs import configure_logging

T = TypeVar("T")

console = Console(stderr=True)
app = typer.Typer(help="Run a Ferryman worker agent.", no_args_is_help=True, pretty_exceptions_enable=False)


@app.callback()
def _group() -> None:
    """Keeps `worker` a named command, as in the full CLI."""


def run_on_uvloop(main: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop where it is installed (it comes with uvicorn[standard]): a faster event loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def _parse_options(options: list[str]) -> dict[str, str]:
    parsed = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            raise typer.BadParameter(f"--option takes key=value, got {option!r}")
        parsed[key] = value
    return parsed


@app.command()
def worker(
    url: Annotated[str, typer.Option(help="Base URL of the Ferryman API, e.g. http://127.0.0.1:8000.")],
    region: Annotated[str, typer.Option(help="Region of the worker token: us or eu.")],
    backend: Annotated[str, typer.Option(help="Backend: echo, llamacpp, openai-upstream, or a plugin.")],
    token: Annotated[str, typer.Option(envvar="FERRYMAN_WORKER_TOKEN", help="Worker token (fmw_…).")] = "",
    enrolment_secret: Annotated[
        str,
        typer.Option(
            envvar="FERRYMAN_ENROLMENT_SECRET",
            help="One-time enrolment secret (fme_…) an autoscaled machine trades for its worker token at start.",
        ),
    ] = "",
    models: Annotated[
        list[str] | None, typer.Option(help="Model names to serve (repeat or comma-separate).")
    ] = None,
    slots: Annotated[int, typer.Option(min=1, max=4096, help="Jobs run at once.")] = 1,
    worker_id: Annotated[str | None, typer.Option(help="Stable id of this worker.")] = None,
    upstream_url: Annotated[
        str | None, typer.Option(help="openai-upstream: base URL, e.g. http://127.0.0.1:9000/v1.")
    ] = None,
    upstream_api_key: Annotated[
        str | None, typer.Option(envvar="FERRYMAN_UPSTREAM_API_KEY", help="openai-upstream: API key.")
    ] = None,
    model_path: Annotated[str | None, typer.Option(help="llamacpp: path of a GGUF file.")] = None,
    option: Annotated[list[str] | None, typer.Option(help="Backend option key=value (repeatable).")] = None,
    ca_file: Annotated[Path | None, typer.Option(help="CA bundle to verify a wss:// API with.")] = None,
) -> None:
    """Run a worker agent: connect to the region's queue node and serve jobs on a backend."""
    from ferryman.errors import ConfigError
    from ferryman.worker import (
        AgentSettings,
        BackendSettings,
        Unrecoverable,
        WorkerAgent,
        enrol,
        load_backend,
    )

    configure_logging(os.environ.get("FERRYMAN_LOG_LEVEL", "info"))
    if not token and not enrolment_secret:
        console.print(
            "[red]No worker token.[/] Pass --token or set FERRYMAN_WORKER_TOKEN "
            "(ferryman up writes one to .ferryman/worker-token-<region>), or FERRYMAN_ENROLMENT_SECRET."
        )
        raise typer.Exit(2)
    if enrolment_secret and not worker_id:
        console.print("[red]An enrolment secret is bound to one worker id:[/] pass --worker-id as well.")
        raise typer.Exit(2)
    names = tuple(m.strip() for item in models or [] for m in item.split(",") if m.strip())
    backend_settings = BackendSettings(
        models=names,
        model_path=model_path,
        upstream_url=upstream_url,
        upstream_api_key=upstream_api_key,
        slots=slots,
        options=_parse_options(option or []),
    )
    try:
        chosen = load_backend(backend, backend_settings)
    except ConfigError as exc:
        console.print(f"[red]{exc.message}[/]")
        raise typer.Exit(2) from None
    # wss:// always verifies: against --ca-file, else the system's trust store (websockets refuses ssl=None there)
    context = (
        ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        if ca_file or url.startswith("https://")
        else None
    )
    worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    settings = AgentSettings(
        url=url,
        token=token,
        region=region,
        slots=slots,
        ssl_context=context,
        worker_id=worker_id,
    )

    async def main() -> None:
        agent_settings = settings
        if enrolment_secret and not token:
            # the token lives in this process only: nothing on the machine's disk or metadata holds it
            fresh = await enrol(
                url=url, secret=enrolment_secret, worker_id=worker_id, region=region, ssl_context=context
            )
            agent_settings = dataclasses.replace(settings, token=fresh)
        agent = WorkerAgent(agent_settings, chosen)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, agent.drain)
        await agent.run()  # registers at once, warms the backend up meanwhile (docs/worker-protocol.md)

    try:
        run_on_uvloop(main())
    except Unrecoverable as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None


def main() -> None:
    app()
