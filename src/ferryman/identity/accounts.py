"""The identity services wired together over one global store, as the container and operator commands use them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.clock import Clock
from ferryman.identity.audit import AuditLog
from ferryman.identity.enrolments import EnrolmentService
from ferryman.identity.invitations import InvitationService
from ferryman.identity.mail import Mailer
from ferryman.identity.orgs import OrgService
from ferryman.identity.repository import IdentityRepository
from ferryman.identity.revocations import AuthState
from ferryman.identity.service import IdentityService
from ferryman.identity.sessions import SessionService
from ferryman.identity.signin import SignInService
from ferryman.store import StoreWriter
from ferryman.types import Region


@dataclass(frozen=True, slots=True)
class Accounts:
    identity: IdentityService
    orgs: OrgService
    sessions: SessionService
    invitations: InvitationService
    signin: SignInService
    audit: AuditLog
    enrolments: EnrolmentService


def build_accounts(
    *,
    engine: AsyncEngine,
    writer: StoreWriter,
    clock: Clock,
    key: bytes,
    mailer: Mailer | None,
    link_base: str,
    regions: list[Region],
    invite_required: bool,
    session_lifetime_seconds: float,
) -> Accounts:
    """One AuthState is shared by every service, so a revocation anywhere is seen by authentication at once."""
    repo, state = IdentityRepository(engine=engine, writer=writer), AuthState()
    audit = AuditLog(engine=engine, writer=writer, clock=clock)
    invitations = InvitationService(
        engine=engine, writer=writer, repo=repo, clock=clock, audit=audit, mailer=mailer, link_base=link_base
    )
    return Accounts(
        identity=IdentityService(repo=repo, clock=clock, state=state, audit=audit, signing_key=key),
        orgs=OrgService(repo=repo, clock=clock, state=state, audit=audit, regions=regions),
        sessions=SessionService(
            engine=engine,
            writer=writer,
            clock=clock,
            state=state,
            audit=audit,
            key=key,
            lifetime_seconds=session_lifetime_seconds,
        ),
        invitations=invitations,
        signin=SignInService(
            repo=repo, invitations=invitations, audit=audit, clock=clock, invite_required=invite_required
        ),
        audit=audit,
        enrolments=EnrolmentService(engine=engine, writer=writer, clock=clock, audit=audit),
    )
