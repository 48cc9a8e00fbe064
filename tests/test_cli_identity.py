"""`ferryman identity invite` and `ferryman identity mint-token` against a real data dir."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from ferryman.cli import app
from ferryman.config import Settings
from ferryman.container import open_accounts
from ferryman.identity import Org, Principal, Scope
from ferryman.types import Region


def _org(data_dir: Path) -> Org:
    async def main() -> Org:
        async with open_accounts(Settings(data_dir=data_dir)) as accounts:
            org, _ = await accounts.identity.create_org(name="acme", region=Region.EU)
            return org

    return asyncio.run(main())


def _authenticate(data_dir: Path, secret: str) -> Principal:
    async def main() -> Principal:
        async with open_accounts(Settings(data_dir=data_dir)) as accounts:
            return await accounts.identity.authenticate(secret)

    return asyncio.run(main())


def test_identity_mint_token_prints_a_working_token_with_the_preset(tmp_path: Path) -> None:
    org = _org(tmp_path)

    result = CliRunner().invoke(
        app, ["identity", "mint-token", org.id, "--preset", "inference", "--data-dir", str(tmp_path)]
    )

    principal = _authenticate(tmp_path, result.stdout.strip())
    assert (result.exit_code, principal.org_id, principal.region, principal.scopes) == (
        0,
        org.id,
        Region.EU,
        frozenset({Scope.JOBS_READ, Scope.JOBS_WRITE}),
    )


def test_identity_invite_prints_the_link(tmp_path: Path) -> None:
    org = _org(tmp_path)

    result = CliRunner().invoke(
        app,
        ["identity", "invite", org.id, "--role", "viewer", "--max-uses", "5", "--data-dir", str(tmp_path)],
    )

    assert (result.exit_code, result.stdout.startswith("http://127.0.0.1:8000/web/invitations/fmi_")) == (
        0,
        True,
    )


def test_identity_invite_for_unknown_org_fails_clearly(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["identity", "invite", "org_nope", "--data-dir", str(tmp_path)])

    assert (result.exit_code, "not_found: org 'org_nope' not found" in result.output) == (2, True)
