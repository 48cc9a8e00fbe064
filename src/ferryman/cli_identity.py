"""`ferryman identity …`: operator commands that invite people and mint tokens, acting as an org's first Owner.

They open the global store in the data dir directly (beside or without a running server); everything they do
is audited like the same call through the API.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ferryman import identity
from ferryman.config import Settings
from ferryman.container import open_accounts
from ferryman.errors import FerrymanError
from ferryman.types import Region

identity_app = typer.Typer(
    name="identity",
    no_args_is_help=True,
    help="Invite people and mint API and worker tokens (operator commands on the data dir).",
)
console = Console(stderr=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data directory (default ./.ferryman).")]
OrgArg = Annotated[str, typer.Argument(help="Id of the org (org_…).")]


def _settings(data_dir: Path | None) -> Settings:
    return Settings(data_dir=data_dir) if data_dir is not None else Settings()


def _fail(exc: FerrymanError) -> typer.Exit:
    console.print(f"[red]{exc.code}: {exc.message}[/]")
    return typer.Exit(2)


@identity_app.command("invite")
def invite(
    org_id: OrgArg,
    data_dir: DataDir = None,
    email: Annotated[str | None, typer.Option(help="Mail the invitation here (needs SMTP settings).")] = None,
    role: Annotated[str, typer.Option(help="admin, member or viewer.")] = "member",
    max_uses: Annotated[int, typer.Option(min=1, max=1000, help="People the link admits (1 for email).")] = 1,
) -> None:
    """Create an invitation and print its link (valid 7 days)."""
    if role not in identity.Role._value2member_map_:
        console.print(f"[red]unknown role {role!r}; choose admin, member or viewer[/]")
        raise typer.Exit(2)

    async def main() -> str:
        async with open_accounts(_settings(data_dir)) as accounts:
            actor = await accounts.orgs.operator_principal(org_id)
            issued = await accounts.invitations.create(
                actor, org_id, role=identity.Role(role), email=email, max_uses=max_uses
            )
            if email and not issued.email_sent:
                console.print("[yellow]the email was not sent (no SMTP server configured or it refused)[/]")
            return accounts.invitations.link(issued.secret)

    try:
        print(asyncio.run(main()))
    except FerrymanError as exc:
        raise _fail(exc) from None


@identity_app.command("mint-token")
def mint_token(
    org_id: OrgArg,
    data_dir: DataDir = None,
    name: Annotated[str, typer.Option(help="A name to recognise the token by.")] = "operator",
    scopes: Annotated[list[str] | None, typer.Option("--scope", help="A scope (repeatable).")] = None,
    preset: Annotated[str | None, typer.Option(help=f"One of {sorted(identity.SCOPE_PRESETS)}.")] = None,
    days: Annotated[
        int, typer.Option(min=1, max=identity.MAX_TOKEN_DAYS, help="Days until it expires.")
    ] = 30,
) -> None:
    """Mint an API token for the org's first Owner and print it (shown once); every scope unless narrowed."""
    chosen = set(scopes or [])
    if unknown := chosen - set(identity.Scope._value2member_map_):
        console.print(f"[red]unknown scopes {sorted(unknown)}; known: {sorted(identity.ALL_SCOPES)}[/]")
        raise typer.Exit(2)
    if preset is not None and preset not in identity.SCOPE_PRESETS:
        console.print(f"[red]unknown preset {preset!r}; choose one of {sorted(identity.SCOPE_PRESETS)}[/]")
        raise typer.Exit(2)
    granted = (
        frozenset(identity.Scope(s) for s in chosen) | identity.SCOPE_PRESETS.get(preset or "", frozenset())
        or identity.ALL_SCOPES
    )

    async def main() -> str:
        async with open_accounts(_settings(data_dir)) as accounts:
            actor = await accounts.orgs.operator_principal(org_id)
            issued, _ = await accounts.identity.create_token(
                actor, name=name, scopes=granted, expires_in_days=days
            )
            return issued.secret

    try:
        print(asyncio.run(main()))
    except FerrymanError as exc:
        raise _fail(exc) from None


@identity_app.command("worker-token")
def worker_token(
    data_dir: DataDir = None,
    region: Annotated[str, typer.Option(help="The region whose queue node the worker joins.")] = "us",
    name: Annotated[
        str, typer.Option(help="A name to recognise the token by (e.g. the machine).")
    ] = "worker",
) -> None:
    """Mint a worker token for one region and print it (shown once). Give each machine its own: a worker id is
    bound to the token that first registered it, so one machine's token cannot act as another's workers."""
    settings = _settings(data_dir)
    if region not in settings.regions:
        console.print(f"[red]unknown region {region!r}; choose one of {settings.regions}[/]")
        raise typer.Exit(2)

    async def main() -> str:
        async with open_accounts(settings) as accounts:
            issued = await accounts.identity.issue_worker_token(region=Region(region), name=name)
            return issued.secret

    print(asyncio.run(main()))
