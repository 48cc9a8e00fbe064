"""Enrolment: how an autoscaled machine gets its worker token without one ever being written into its metadata.

The autoscaler issues a one-time secret (`fme_…`) before it rents a machine and puts it in the machine's start-up;
the secret is valid for minutes and bound to one region, worker id and set of models. The worker agent exchanges
it once (`POST /v1/workers/enrol`) for a worker token bound the same way, and keeps that token in memory only.
A provider's instance metadata (readable by anyone with the marketplace account, and by the host) therefore holds
at most a spent or expired secret. Secrets and tokens are stored only as SHA-256 hashes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.clock import Clock
from ferryman.errors import Unauthenticated
from ferryman.identity import tokens
from ferryman.identity.audit import AuditLog
from ferryman.identity.models import AuditAction, IssuedToken
from ferryman.store import StoreWriter, tables
from ferryman.types import Region, TokenId, new_id

MAX_TTL_SECONDS = 86_400.0
REFUSED = "invalid, expired or already used enrolment secret"


@dataclass(frozen=True, slots=True)
class IssuedEnrolment:
    """A new enrolment as it is handed to the provider once; only the secret's hash is stored."""

    id: str
    secret: str = field(repr=False)
    region: Region
    worker_id: str
    models: tuple[str, ...]
    expires_at: float


@dataclass(frozen=True, slots=True)
class Enrolled:
    """What a spent enrolment gave its worker: a token bound to its region, worker id and models."""

    token: IssuedToken = field(repr=False)
    region: Region
    worker_id: str
    models: tuple[str, ...]
    instance_id: str | None


class EnrolmentService:
    """Issues, binds, redeems and retires enrolments. Redeeming is one write: a secret is spent at most once."""

    def __init__(self, *, engine: AsyncEngine, writer: StoreWriter, clock: Clock, audit: AuditLog) -> None:
        self._engine, self._writer, self._clock, self._audit = engine, writer, clock, audit

    async def issue(
        self, *, region: Region, worker_id: str, models: Sequence[str], ttl_seconds: float
    ) -> IssuedEnrolment:
        if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
            raise ValueError(f"an enrolment lives between 0 and {MAX_TTL_SECONDS:.0f} s, not {ttl_seconds}")
        secret = tokens.new_secret(tokens.ENROLMENT_PREFIX)
        now = self._clock.now()
        issued = IssuedEnrolment(new_id("enr"), secret, region, worker_id, tuple(models), now + ttl_seconds)

        def write(conn: Connection) -> None:
            conn.execute(
                insert(tables.worker_enrolments).values(
                    id=issued.id,
                    secret_hash=tokens.hash_secret(secret),
                    region=region.value,
                    worker_id=worker_id,
                    models=json.dumps(list(issued.models)),
                    created_at=now,
                    expires_at=issued.expires_at,
                )
            )

        await self._writer.write(write)
        return issued

    async def bind_instance(self, enrolment_id: str, instance_id: str) -> None:
        """Record the machine the enrolment was rented for (known only once the provider answers)."""
        e = tables.worker_enrolments

        def write(conn: Connection) -> None:
            conn.execute(update(e).where(e.c.id == enrolment_id).values(instance_id=instance_id))

        await self._writer.write(write)

    async def redeem(self, secret: str | None, *, worker_id: str, region: str) -> Enrolled:
        """Spend `secret` for a worker token. Raises Unauthenticated for a malformed, unknown, expired or spent
        secret, or one issued for another worker id or region (which spends nothing)."""
        if (
            not secret
            or not secret.startswith(tokens.ENROLMENT_PREFIX)
            or len(secret) > tokens.MAX_TOKEN_LENGTH
        ):
            raise Unauthenticated("missing or malformed enrolment secret (fme_…)")
        digest, now = tokens.hash_secret(secret), self._clock.now()
        token_secret = tokens.new_secret(tokens.WORKER_PREFIX)
        token_id = TokenId(new_id("wtk"))
        e, w = tables.worker_enrolments, tables.worker_tokens

        def write(conn: Connection) -> Enrolled | None:
            row = conn.execute(select(e).where(e.c.secret_hash == digest)).first()
            if row is None or row.worker_id != worker_id or row.region != region:
                return None
            spent = conn.execute(
                update(e)
                .where(and_(e.c.id == row.id, e.c.used_at.is_(None), e.c.expires_at > now))
                .values(used_at=now, token_id=token_id)
            ).rowcount
            if spent != 1:
                return None
            conn.execute(
                insert(w).values(
                    id=token_id,
                    region=row.region,
                    name=f"enrolled {row.instance_id or row.worker_id}"[:200],
                    token_hash=tokens.hash_secret(token_secret),
                    created_at=now,
                    worker_id=row.worker_id,
                    models=row.models,
                )
            )
            return Enrolled(
                IssuedToken(token_id, token_secret, None, None),
                Region(row.region),
                row.worker_id,
                tuple(json.loads(row.models)),
                row.instance_id,
            )

        enrolled: Enrolled | None = await self._writer.write(write)
        if enrolled is None:
            raise Unauthenticated(REFUSED)
        await self._audit.record(
            AuditAction.WORKER_ENROLLED,
            org_id=None,
            actor=None,
            target=enrolled.instance_id or worker_id,
            details={"region": region, "worker_id": worker_id, "token_id": token_id},
        )
        return enrolled

    async def retire(self, enrolment_id: str) -> None:
        """The machine is gone: an unspent secret can no longer be spent and the token it gave is revoked."""
        e, w, now = tables.worker_enrolments, tables.worker_tokens, self._clock.now()

        def write(conn: Connection) -> None:
            conn.execute(
                update(e).where(and_(e.c.id == enrolment_id, e.c.used_at.is_(None))).values(used_at=now)
            )
            token_id = conn.execute(select(e.c.token_id).where(e.c.id == enrolment_id)).scalar()
            if token_id is not None:
                conn.execute(
                    update(w).where(and_(w.c.id == token_id, w.c.revoked_at.is_(None))).values(revoked_at=now)
                )

        await self._writer.write(write)
