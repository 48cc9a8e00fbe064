"""Bring a store's schema to the newest Alembic revision at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def _upgrade(connection: Connection, kind: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS / kind))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine, kind: Literal["global", "region"]) -> None:
    """Idempotent: a store already at head is left as it is."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, kind)
