"""`/v1/orgs/{id}/invitations…`: email (over real SMTP) and link invitations, uses, expiry (410), revocation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from ferryman.identity import Role
from tests.e2e.processes import free_port
from tests.identity.harness import Harness, running_app

pytestmark = pytest.mark.anyio


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
async def mailing(tmp_path: Path, smtp: tuple[Inbox, int]) -> AsyncIterator[tuple[Harness, Inbox]]:
    async with running_app(
        tmp_path, smtp_host="127.0.0.1", smtp_port=smtp[1], smtp_sender="ferryman@example.test"
    ) as h:
        yield h, smtp[0]


async def test_email_invitation_is_sent_over_smtp_with_the_link(mailing: tuple[Harness, Inbox]) -> None:
    harness, inbox = mailing
    org, owner = await harness.org("acme")

    created = await harness.call(
        "POST", f"/v1/orgs/{org.id}/invitations", owner, {"email": "ada@example.com", "role": "member"}
    )

    body = created.json()
    (message,) = inbox.messages
    text = message.get_payload(decode=True)
    assert isinstance(text, bytes)
    assert (
        body["email_sent"],
        message["To"],
        message["From"],
        message["Subject"],
        body["url"] in text.decode(),
    ) == (True, "ada@example.com", "ferryman@example.test", "You are invited to acme on Ferryman", True)


async def test_link_invitation_admits_up_to_max_uses_then_is_gone(harness: Harness) -> None:
    org, owner = await harness.org("acme")
    invite = (
        await harness.call("POST", f"/v1/orgs/{org.id}/invitations", owner, {"role": "viewer", "max_uses": 2})
    ).json()
    _, first = await harness.org("first")
    _, second = await harness.org("second")
    _, third = await harness.org("third")

    statuses = [
        (await harness.call("POST", "/v1/invitations/accept", seat, {"token": invite["token"]})).status_code
        for seat in (first, second, third)
    ]
    members = await harness.call("GET", f"/v1/orgs/{org.id}/members", owner)

    assert (statuses, [m["role"] for m in members.json()["data"]]) == (
        [200, 200, 410],
        ["owner", "viewer", "viewer"],
    )


async def test_invitation_expires_after_seven_days_with_410(harness: Harness) -> None:
    org, owner = await harness.org("acme")
    invite = (await harness.call("POST", f"/v1/orgs/{org.id}/invitations", owner, {"role": "member"})).json()
    _, joiner = await harness.org("late")
    harness.clock.advance(7 * 86400 + 1)

    late = await harness.call("POST", "/v1/invitations/accept", joiner, {"token": invite["token"]})

    assert (late.status_code, late.json()) == (
        410,
        {
            "error": {
                "code": "gone",
                "message": "this invitation expired (they last 7 days); ask for a new one",
            }
        },
    )


async def test_revoked_invitation_is_gone(harness: Harness) -> None:
    org, owner = await harness.org("acme")
    invite = (await harness.call("POST", f"/v1/orgs/{org.id}/invitations", owner, {"role": "member"})).json()
    _, joiner = await harness.org("joiner")

    revoked = await harness.call("DELETE", f"/v1/orgs/{org.id}/invitations/{invite['id']}", owner)
    refused = await harness.call("POST", "/v1/invitations/accept", joiner, {"token": invite["token"]})

    assert (revoked.json()["revoked_at"], refused.status_code) == (harness.clock.now(), 410)


async def test_invitation_as_owner_is_refused(harness: Harness) -> None:
    org, owner = await harness.org("acme")

    refused = await harness.call("POST", f"/v1/orgs/{org.id}/invitations", owner, {"role": "owner"})
    listed = await harness.call("GET", f"/v1/orgs/{org.id}/invitations", owner)

    assert (refused.status_code, listed.json()["data"]) == (400, [])


async def test_member_cannot_invite(harness: Harness) -> None:
    org, _ = await harness.org("acme")
    member = await harness.seat(org.id, Role.MEMBER)

    refused = await harness.call("POST", f"/v1/orgs/{org.id}/invitations", member, {"role": "member"})

    assert refused.status_code == 403


async def test_invitation_creation_is_audited(harness: Harness) -> None:
    org, owner = await harness.org("acme")
    invite = (await harness.call("POST", f"/v1/orgs/{org.id}/invitations", owner, {"role": "member"})).json()

    audit = await harness.call("GET", "/v1/audit", owner)

    (event,) = [e for e in audit.json()["data"] if e["action"] == "invitation.created"]
    assert {k: event[k] for k in ("actor_user_id", "target", "details")} == {
        "actor_user_id": owner.user_id,
        "target": invite["id"],
        "details": {"by_email": "false", "max_uses": "1", "role": "member"},
    }
