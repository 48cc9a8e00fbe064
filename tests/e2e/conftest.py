"""Whole-system fixtures: real server and worker processes on free ports and fresh data dirs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from tests.e2e.processes import FerrymanServer
from tests.e2e.tls import LocalCA, make_local_ca


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FerrymanServer]:
    """One `ferryman serve` with an echo worker per region, for tests that don't disturb it."""
    server = FerrymanServer(
        tmp_path_factory.mktemp("shared"), env={"FERRYMAN_ALLOW_PRIVATE_WEBHOOKS": "false"}
    )
    try:
        server.start()
        server.start_worker(region="us", slots=4, worker_id="shared-us")
        server.start_worker(region="eu", slots=4, worker_id="shared-eu")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def oai(shared_server: FerrymanServer) -> Iterator[openai.OpenAI]:
    """The official OpenAI SDK pointed at the shared server, without its retries (a test sees every answer)."""
    with openai.OpenAI(
        base_url=f"{shared_server.url}/openai/v1", api_key=shared_server.token, max_retries=0
    ) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def claude(shared_server: FerrymanServer) -> Iterator[anthropic.Anthropic]:
    """The official Anthropic SDK pointed at the shared server, without its retries."""
    with anthropic.Anthropic(
        base_url=f"{shared_server.url}/anthropic", api_key=shared_server.token, max_retries=0
    ) as sdk:
        yield sdk


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., FerrymanServer]]:
    """A factory of servers owned by one test, each with its own data dir; all stopped at the end."""
    made: list[FerrymanServer] = []

    def make(
        env: dict[str, str] | None = None,
        *,
        name: str = "server",
        command: str = "serve",
        extra: list[str] | None = None,
    ) -> FerrymanServer:
        server = FerrymanServer(tmp_path / name, env=env, command=command, extra=extra)
        made.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in made:
            server.stop()


@pytest.fixture(scope="session")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return make_local_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def tls_server(tmp_path_factory: pytest.TempPathFactory, local_ca: LocalCA) -> Iterator[FerrymanServer]:
    """`ferryman serve --tls-cert … --tls-key …` on https://localhost, trusted through SSL_CERT_FILE, with an
    echo worker that joined over wss:// verifying the certificate against the local CA."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSL_CERT_FILE", str(local_ca.ca_file))
        server = FerrymanServer(
            tmp_path_factory.mktemp("tls-server"),
            extra=["--tls-cert", str(local_ca.cert_file), "--tls-key", str(local_ca.key_file)],
        )
        server.url = f"https://localhost:{server.port}"
        try:
            server.start()
            server.start_worker(
                region="us", slots=4, worker_id="tls-us", extra=["--ca-file", str(local_ca.ca_file)]
            )
            yield server
        finally:
            server.stop()
