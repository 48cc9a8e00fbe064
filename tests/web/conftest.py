"""Sign-in fixtures: the GitHub stand-in and a real OpenID Connect provider (node oidc-provider), both on free
ports, and the real app configured with their URLs.

Only `oidc_issuer` (and so `web_with_google`) needs node and npm: `web` signs in through GitHub alone, so the
tests of what every provider shares (cookies, CSRF, session rotation, sign-out, invitations) run without them.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.capabilities import OIDC_PROVIDER, require_programs
from tests.e2e.processes import free_port, tail
from tests.identity.harness import BASE_URL, Harness, running_app
from tests.web import github_standin

OIDC_DIR = Path(__file__).parents[1] / "identity" / "oidc"
OIDC_CLIENT_ID, OIDC_CLIENT_SECRET = "ferryman-test", "ferryman-test-secret-0123456789abcdef"


@pytest.fixture(scope="session")
def oidc_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    node, npm = require_programs(
        OIDC_PROVIDER, "node and npm run the npm package oidc-provider", "node", "npm"
    )
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=OIDC_DIR, check=True, timeout=300, capture_output=True
        )
    port = free_port()
    log_path = tmp_path_factory.mktemp("oidc") / "provider.log"
    env = {
        "PATH": "/usr/bin:/bin",
        "PORT": str(port),
        "CLIENT_ID": OIDC_CLIENT_ID,
        "CLIENT_SECRET": OIDC_CLIENT_SECRET,
        "REDIRECT_URIS": f"{BASE_URL}/web/auth/google/callback",
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [node, "provider.mjs"], cwd=OIDC_DIR, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    issuer = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the OIDC provider did not start:\n{tail(log_path)}")
            try:
                if httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield issuer
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def github_url() -> Iterator[str]:
    port = free_port()
    server, thread = github_standin.serve_in_thread(github_standin.GitHubStandIn().app(), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def provider_settings(oidc_issuer: str | None, github_url: str) -> dict[str, object]:
    """Settings for GitHub sign-in through the stand-in, and for Google through `oidc_issuer` when given."""
    google: dict[str, object] = {}
    if oidc_issuer is not None:
        google = {
            "google_client_id": OIDC_CLIENT_ID,
            "google_client_secret": OIDC_CLIENT_SECRET,
            "google_discovery_url": f"{oidc_issuer}/.well-known/openid-configuration",
        }
    return {
        **google,
        "github_client_id": github_standin.CLIENT_ID,
        "github_client_secret": github_standin.CLIENT_SECRET,
        "github_authorize_url": f"{github_url}/login/oauth/authorize",
        "github_token_url": f"{github_url}/login/oauth/access_token",
        "github_api_url": f"{github_url}/",
    }


@pytest.fixture
async def web(tmp_path: Path, github_url: str) -> AsyncIterator[Harness]:
    """The app with GitHub sign-in only: needs no OpenID Connect provider."""
    async with running_app(tmp_path, **provider_settings(None, github_url)) as h:
        yield h


@pytest.fixture
async def web_with_google(tmp_path: Path, oidc_issuer: str, github_url: str) -> AsyncIterator[Harness]:
    """The app with both GitHub and Google (the real OpenID Connect provider) sign-in."""
    async with running_app(tmp_path, **provider_settings(oidc_issuer, github_url)) as h:
        yield h
