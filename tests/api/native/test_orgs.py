"""`/v1/orgs…` and `/v1/orgs/{id}/members…`: orgs, roles, the last Owner, ownership transfer, data region."""

from __future__ import annotations

import pytest

from ferryman.identity import Role
from ferryman.types import Region
from tests.identity.harness import Harness

pytestmark = pytest.mark.anyio


async def test_create_org_makes_caller_owner_and_lists_both_orgs(harness: Harness) -> None:
    first, owner = await harness.org("acme")

    created = await harness.call("POST", "/v1/orgs", owner, {"name": "second", "region": "eu"})
    listed = await harness.call("GET", "/v1/orgs", owner)

    org_id = created.json()["id"]
    assert (created.status_code, listed.json()["data"]) == (
        201,
        [
            {"id": first.id, "object": "org", "name": "acme", "region": "us", "role": "owner"},
            {"id": org_id, "object": "org", "name": "second", "region": "eu", "role": "owner"},
        ],
    )


async def test_update_org_renames_and_sets_billing_address(harness: Harness) -> None:
    org, owner = await harness.org("acme")

    updated = await harness.call(
        "PATCH", f"/v1/orgs/{org.id}", owner, {"name": "Acme Inc", "billing_address": "1 Main St"}
    )

    assert updated.json() == {
        "id": org.id,
        "object": "org",
        "name": "Acme Inc",
        "region": "us",
        "billing_address": "1 Main St",
    }


async def test_update_org_billing_address_refused_for_admin(harness: Harness) -> None:
    org, _ = await harness.org("acme")
    admin = await harness.seat(org.id, Role.ADMIN)

    refused = await harness.call("PATCH", f"/v1/orgs/{org.id}", admin, {"billing_address": "x"})

    assert (refused.status_code, refused.json()["error"]["message"]) == (
        403,
        "to set the billing address this token needs the 'billing:write' scope",
    )


async def test_region_change_applies_to_new_jobs_and_is_audited(harness: Harness) -> None:
    org, owner = await harness.org("acme")
    assert (await harness.call("GET", "/v1/me", owner)).status_code == 200  # principal cached with region us

    await harness.call("PATCH", f"/v1/orgs/{org.id}", owner, {"region": "eu"})
    principal = await harness.container.identity.authenticate(owner.token)  # what new jobs are queued with
    audit = await harness.call("GET", "/v1/audit", owner)

    assert (principal.region, audit.json()["data"][0]["action"], audit.json()["data"][0]["details"]) == (
        Region.EU,
        "org.region_changed",
        {"from": "us", "to": "eu"},
    )


async def test_update_org_with_unknown_region_changes_nothing(harness: Harness) -> None:
    org, owner = await harness.org("acme")

    refused = await harness.call("PATCH", f"/v1/orgs/{org.id}", owner, {"name": "new", "region": "mars"})
    after = await harness.call("GET", f"/v1/orgs/{org.id}", owner)

    assert (refused.status_code, after.json()["name"]) == (400, "acme")


async def test_demoting_last_owner_is_refused_and_changes_nothing(harness: Harness) -> None:
    org, owner = await harness.org("acme")

    refused = await harness.call(
        "PATCH", f"/v1/orgs/{org.id}/members/{owner.user_id}", owner, {"role": "admin"}
    )
    members = await harness.call("GET", f"/v1/orgs/{org.id}/members", owner)

    assert (
        refused.status_code,
        refused.json()["error"]["code"],
        [m["role"] for m in members.json()["data"]],
    ) == (409, "conflict", ["owner"])


async def test_set_role_with_unknown_role_is_refused(harness: Harness) -> None:
    org, owner = await harness.org("acme")
    member = await harness.seat(org.id, Role.MEMBER)

    refused = await harness.call(
        "PATCH", f"/v1/orgs/{org.id}/members/{member.user_id}", owner, {"role": "king"}
    )

    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "validation_error")


async def test_admin_cannot_promote_to_admin(harness: Harness) -> None:
    org, _ = await harness.org("acme")
    admin = await harness.seat(org.id, Role.ADMIN, "admin")
    member = await harness.seat(org.id, Role.MEMBER, "member")

    refused = await harness.call(
        "PATCH", f"/v1/orgs/{org.id}/members/{member.user_id}", admin, {"role": "admin"}
    )

    assert (refused.status_code, refused.json()["error"]["message"]) == (
        403,
        "only an Owner may change a member to admin",
    )


async def test_transfer_ownership_swaps_owner_and_admin(harness: Harness) -> None:
    org, owner = await harness.org("acme")
    member = await harness.seat(org.id, Role.MEMBER, "heir")

    moved = await harness.call(
        "POST", f"/v1/orgs/{org.id}/transfer-ownership", owner, {"user_id": member.user_id}
    )

    assert {m["user_id"]: m["role"] for m in moved.json()["data"]} == {
        owner.user_id: "admin",
        member.user_id: "owner",
    }


async def test_members_of_another_org_are_not_found(harness: Harness) -> None:
    org, _ = await harness.org("a")
    _, stranger = await harness.org("b")

    response = await harness.call("GET", f"/v1/orgs/{org.id}/members", stranger)

    assert (response.status_code, response.json()) == (
        404,
        {"error": {"code": "not_found", "message": f"org {org.id!r} not found"}},
    )


async def test_audit_log_refused_for_member(harness: Harness) -> None:
    org, _ = await harness.org("acme")
    member = await harness.seat(org.id, Role.MEMBER)

    refused = await harness.call("GET", "/v1/audit", member)

    assert refused.status_code == 403
