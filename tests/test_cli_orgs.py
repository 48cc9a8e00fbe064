"""`ferryman orgs create` against a real data dir: the API's checked, audited use case, not a back door."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from ferryman.cli import app
from ferryman.config import Settings
from ferryman.container import open_accounts
from ferryman.identity import AuditEvent, Principal, Role
from ferryman.types import Region


def _create(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["orgs", "create", *args, "--data-dir", str(data_dir)], env=env)
    return result.exit_code, result.stdout, result.output


def _principal_and_audit(data_dir: Path, secret: str) -> tuple[Principal, list[AuditEvent]]:
    async def main() -> tuple[Principal, list[AuditEvent]]:
        async with open_accounts(Settings(data_dir=data_dir)) as accounts:
            principal = await accounts.identity.authenticate(secret)
            events = await accounts.audit.find_page(principal.org_id, before=None, limit=50)
            return principal, events

    return asyncio.run(main())


def _rows(data_dir: Path, table: str) -> int:
    with sqlite3.connect(data_dir / "global.db") as db:
        count: int = db.execute(f"select count(*) from {table}").fetchone()[0]  # noqa: S608 (fixed names)
        return count


def test_orgs_create_prints_a_working_owner_token_and_is_audited(tmp_path: Path) -> None:
    code, stdout, _ = _create(tmp_path, "acme", "--region", "eu", "--weight", "2")

    principal, events = _principal_and_audit(tmp_path, stdout.strip().splitlines()[-1])
    by_action = {e.action.value: e for e in events}
    assert code == 0
    assert (principal.region, principal.weight, principal.role) == (Region.EU, 2.0, Role.OWNER)
    assert sorted(by_action) == ["org.created", "token.created"]
    created = by_action["org.created"]
    assert (created.target, created.actor_user_id, created.details) == (
        principal.org_id,
        principal.user_id,
        {"region": "eu", "weight": "2"},
    )
    assert by_action["token.created"].target == principal.token_id


def test_orgs_create_refuses_a_bad_name_and_writes_nothing(tmp_path: Path) -> None:
    code, _, output = _create(tmp_path, "   ")

    assert (code, "validation_error: an org name has 1 to 200 characters" in output) == (2, True)
    assert (_rows(tmp_path, "users"), _rows(tmp_path, "orgs"), _rows(tmp_path, "audit_events")) == (0, 0, 0)


def test_orgs_create_refuses_a_region_this_install_does_not_serve(tmp_path: Path) -> None:
    code, _, output = _create(tmp_path, "acme", "--region", "eu", env={"FERRYMAN_REGIONS": '["us"]'})

    assert (code, "validation_error: region 'eu' is not served here" in output) == (2, True)
    assert _rows(tmp_path, "orgs") == 0


def test_orgs_create_refuses_a_weight_out_of_range(tmp_path: Path) -> None:
    code, _, output = _create(tmp_path, "acme", "--weight", "0")

    assert (code, "a fair-share weight is above 0" in output) == (2, True)
    assert _rows(tmp_path, "users") == 0
