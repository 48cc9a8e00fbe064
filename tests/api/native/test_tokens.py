"""`/v1/tokens…`: creation rules, listing without secrets, revocation at once, short-lived tokens."""

from __future__ import annotations

import pytest

from ferryman.identity import Role
from tests.identity.harness import Harness

pytestmark = pytest.mark.anyio


async def test_create_token_shows_secret_once_and_lists_only_last4(harness: Harness) -> None:
    _, owner = await harness.org()

    created = await harness.call("POST", "/v1/tokens", owner, {"name": "ci", "preset": "inference"})
    listed = await harness.call("GET", "/v1/tokens", owner)

    body = created.json()
    assert (created.status_code, body["secret"][:3], len(body["secret"]), body["scopes"], body["last4"]) == (
        201,
        "fm_",
        46,
        ["jobs:read", "jobs:write"],
        body["secret"][-4:],
    )
    assert body["expires_at"] - body["created_at"] == pytest.approx(30 * 86400, abs=1)
    assert [t for t in listed.json()["data"] if t["id"] == body["id"]] == [
        {k: v for k, v in body.items() if k != "secret"}
    ]


async def test_create_token_refuses_scopes_beyond_role_and_stores_nothing(harness: Harness) -> None:
    org, _ = await harness.org()
    member = await harness.seat(org.id, Role.MEMBER)

    refused = await harness.call(
        "POST", "/v1/tokens", member, {"name": "x", "scopes": ["jobs:read", "org:admin"]}
    )
    listed = await harness.call("GET", "/v1/tokens", member)

    assert (refused.status_code, refused.json()) == (
        403,
        {
            "error": {
                "code": "forbidden",
                "message": "a member may not hold ['org:admin']; allowed: ['jobs:read', 'jobs:write', 'library:read', "
                "'library:write']",
                "details": {"scopes": ["org:admin"]},
            }
        },
    )
    assert [t["id"] for t in listed.json()["data"]] == [member.token_id]


async def test_create_token_refuses_expiry_over_90_days(harness: Harness) -> None:
    _, owner = await harness.org()

    refused = await harness.call(
        "POST", "/v1/tokens", owner, {"name": "x", "scopes": ["jobs:read"], "expires_in_days": 91}
    )

    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "validation_error")


async def test_create_token_refused_for_viewer(harness: Harness) -> None:
    org, _ = await harness.org()
    viewer = await harness.seat(org.id, Role.VIEWER)

    refused = await harness.call("POST", "/v1/tokens", viewer, {"name": "x", "scopes": ["jobs:read"]})

    assert (refused.status_code, refused.json()["error"]["message"]) == (
        403,
        "a viewer cannot create API tokens; Members and above can",
    )


async def test_revoked_token_stops_working_at_once(harness: Harness) -> None:
    _, owner = await harness.org()
    created = (await harness.call("POST", "/v1/tokens", owner, {"name": "ci", "preset": "inference"})).json()
    assert (await harness.call("GET", "/v1/me", created["secret"])).status_code == 200  # now cached

    revoked = await harness.call("DELETE", f"/v1/tokens/{created['id']}", owner)
    after = await harness.call("GET", "/v1/me", created["secret"])

    assert (revoked.json()["revoked_at"], after.status_code) == (harness.clock.now(), 401)


async def test_revoke_token_of_another_org_is_not_found(harness: Harness) -> None:
    _, owner = await harness.org("a")
    _, stranger = await harness.org("b")

    response = await harness.call("DELETE", f"/v1/tokens/{owner.token_id}", stranger)

    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")


async def test_token_records_last_use_time_and_ip(harness: Harness) -> None:
    _, owner = await harness.org()

    await harness.call("GET", "/v1/me", owner)
    listed = await harness.call("GET", "/v1/tokens", owner)

    (token,) = listed.json()["data"]
    assert (token["last_used_at"], token["last_used_ip"]) == (harness.clock.now(), "127.0.0.1")


async def test_short_lived_token_works_until_expiry(harness: Harness) -> None:
    _, owner = await harness.org()
    minted = (
        await harness.call(
            "POST", "/v1/tokens/short-lived", owner, {"scopes": ["jobs:read"], "ttl_seconds": 60}
        )
    ).json()

    during = await harness.call("GET", "/v1/me", minted["secret"])
    harness.clock.advance(61)
    after = await harness.call("GET", "/v1/me", minted["secret"])

    assert (during.json()["token"], after.status_code) == (
        {
            "id": owner.token_id,
            "org_id": owner.org_id,
            "role": "owner",
            "scopes": ["jobs:read"],
            "short_lived": True,
        },
        401,
    )


async def test_short_lived_token_refuses_ttl_over_one_hour(harness: Harness) -> None:
    _, owner = await harness.org()

    refused = await harness.call("POST", "/v1/tokens/short-lived", owner, {"ttl_seconds": 3601})

    assert refused.status_code == 400


async def test_short_lived_token_stops_when_parent_token_is_revoked(harness: Harness) -> None:
    _, owner = await harness.org()
    parent = (await harness.call("POST", "/v1/tokens", owner, {"name": "ci", "preset": "inference"})).json()
    minted = (await harness.call("POST", "/v1/tokens/short-lived", parent["secret"], {})).json()

    await harness.call("DELETE", f"/v1/tokens/{parent['id']}", owner)
    after = await harness.call("GET", "/v1/me", minted["secret"])

    assert (after.status_code, after.json()["error"]["message"]) == (
        401,
        "this short-lived token was revoked (its parent ended or its member changed)",
    )


async def test_disabled_member_tokens_and_short_lived_tokens_stop_at_once(harness: Harness) -> None:
    org, owner = await harness.org()
    member = await harness.seat(org.id, Role.MEMBER)
    minted = (await harness.call("POST", "/v1/tokens/short-lived", member, {})).json()
    assert (await harness.call("GET", "/v1/me", member)).status_code == 200  # now cached
    harness.clock.advance(1)

    await harness.call("PATCH", f"/v1/orgs/{org.id}/members/{member.user_id}", owner, {"role": "disabled"})

    statuses = [
        (await harness.call("GET", "/v1/me", secret)).status_code
        for secret in (member.token, minted["secret"])
    ]
    assert statuses == [401, 401]


async def test_demoted_member_token_loses_scopes_at_once(harness: Harness) -> None:
    org, owner = await harness.org()
    member = await harness.seat(org.id, Role.MEMBER)
    assert (await harness.call("GET", "/v1/me", member)).status_code == 200  # now cached

    await harness.call("PATCH", f"/v1/orgs/{org.id}/members/{member.user_id}", owner, {"role": "viewer"})
    me = await harness.call("GET", "/v1/me", member)

    assert me.json()["token"]["scopes"] == ["jobs:read", "library:read"]
