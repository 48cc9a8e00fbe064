"""The whole browser sign-in flow against the GitHub stand-in and a real OpenID Connect provider.

Only the tests of Google sign-in itself take `web_with_google` (node and npm run the provider); the rest sign in
through GitHub and run without them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ferryman.identity import Provider, ProviderIdentity, Role, User
from tests.identity.harness import BASE_URL, Harness, running_app
from tests.web import github_standin
from tests.web.browser import Browser
from tests.web.conftest import provider_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
async def outside() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def browser(web: Harness, outside: httpx.AsyncClient) -> Browser:
    return Browser(web.client, outside)


def second_browser(web: Harness) -> tuple[Browser, httpx.AsyncClient, httpx.AsyncClient]:
    ferryman = httpx.AsyncClient(transport=web.client._transport, base_url=BASE_URL)  # noqa: SLF001
    outside = httpx.AsyncClient(timeout=10)
    return Browser(ferryman, outside), ferryman, outside


def github_identity(login: str) -> ProviderIdentity:
    return ProviderIdentity(Provider.GITHUB, github_standin.user_id(login), "", None)


async def sign_up(b: Browser, provider: str, login: str) -> httpx.Response:
    page = await b.go(f"/web/auth/{provider}/login", login=login)
    assert page.url.path == "/web/confirm-age", page.text
    b.read_csrf(page)
    return await b.post("/web/confirm-age", {"is_adult": "yes"})


async def test_google_sign_in_creates_user_after_age_confirmation(
    web_with_google: Harness, outside: httpx.AsyncClient
) -> None:
    web = web_with_google
    b = browser(web, outside)

    confirmed = await sign_up(b, "google", "alice")
    user_id = await web.accounts.signin.find_user(ProviderIdentity(Provider.GOOGLE, "alice", "", None))

    assert user_id is not None
    user = await web.accounts.signin.get_user(user_id)
    assert (confirmed.status_code, confirmed.headers["location"], user) == (
        303,
        "/web/account",
        User(user_id, "Test alice", "alice@example.test", web.clock.now(), web.clock.now()),
    )


async def test_sign_in_flow_goes_through_the_provider(
    web_with_google: Harness, outside: httpx.AsyncClient
) -> None:
    web = web_with_google
    b = browser(web, outside)

    await b.go("/web/auth/google/login", login="carol")

    paths = [v.split(" ")[1].removeprefix(BASE_URL) for v in b.visited]
    assert [p if p.startswith("/web") else p.split(":")[2].split("/", 1)[1].split("/")[0] for p in paths] == [
        "/web/auth/google/login",
        "auth",
        "interaction",
        "interaction",
        "auth",
        "interaction",
        "auth",
        "/web/auth/google/callback",
        "/web/confirm-age",
    ]


async def test_session_cookie_is_httponly_lax_and_not_secure_on_plain_http_localhost(
    web: Harness, outside: httpx.AsyncClient
) -> None:
    confirmed = await sign_up(browser(web, outside), "github", "dave")

    cookie = next(c for c in confirmed.headers.get_list("set-cookie") if c.startswith("fm_session="))
    assert sorted(part.strip().split("=")[0] for part in cookie.split(";")[1:]) == [
        "HttpOnly",
        "Max-Age",
        "Path",
        "SameSite",
    ]
    assert "samesite=lax" in cookie.lower()


async def test_sign_up_without_age_confirmation_creates_nothing(
    web: Harness, outside: httpx.AsyncClient
) -> None:
    b = browser(web, outside)
    page = await b.go("/web/auth/github/login", login="young")
    b.read_csrf(page)

    refused = await b.post("/web/confirm-age", {})

    found = await web.accounts.signin.find_user(
        ProviderIdentity(Provider.GITHUB, github_standin.user_id("young"), "", None)
    )
    assert (refused.status_code, found) == (400, None)


async def test_github_sign_in_then_google_links_to_same_user(
    web_with_google: Harness, outside: httpx.AsyncClient
) -> None:
    web = web_with_google
    b = browser(web, outside)
    await sign_up(b, "github", "octocat")

    await b.go("/web/auth/google/login", login="octo-google")

    user_id = await web.accounts.signin.find_user(ProviderIdentity(Provider.GITHUB, "583231", "", None))
    assert user_id is not None
    assert (
        await web.accounts.signin.providers(user_id),
        await web.accounts.signin.find_user(ProviderIdentity(Provider.GOOGLE, "octo-google", "", None)),
    ) == (["github", "google"], user_id)


async def test_second_sign_in_rotates_the_session(web: Harness, outside: httpx.AsyncClient) -> None:
    b = browser(web, outside)
    await sign_up(b, "github", "erin")
    first = web.client.cookies["fm_session"]

    await b.go("/web/auth/github/login", login="erin")

    second = web.client.cookies["fm_session"]
    assert (
        first != second,
        await web.accounts.sessions.resolve(first) is None,
        await web.accounts.sessions.resolve(second) is not None,
    ) == (True, True, True)


async def test_post_without_csrf_token_is_refused(web: Harness, outside: httpx.AsyncClient) -> None:
    await sign_up(browser(web, outside), "github", "frank")

    refused = await web.client.post("/web/orgs", data={"name": "evil", "region": "us"})

    assert (refused.status_code, "missing or wrong CSRF token" in refused.text) == (403, True)


async def test_callback_with_forged_state_is_refused(web: Harness) -> None:
    refused = await web.client.get("/web/auth/github/callback", params={"code": "x", "state": "forged"})

    assert (refused.status_code, "sign-in with github failed" in refused.text) == (400, True)


async def test_sign_out_everywhere_ends_other_browsers_sessions(
    web: Harness, outside: httpx.AsyncClient
) -> None:
    b = browser(web, outside)
    await sign_up(b, "github", "gina")
    other, ferryman, other_outside = second_browser(web)
    try:
        await other.go("/web/auth/github/login", login="gina")
        page = await b.go("/web/account")
        b.read_csrf(page)

        await b.post("/web/sign-out-everywhere")

        after = await other.go("/web/account")
        assert after.url.path == "/web/sign-in"
    finally:
        await ferryman.aclose()
        await other_outside.aclose()


async def test_session_mints_short_lived_token_that_dies_with_the_session(
    web: Harness, outside: httpx.AsyncClient
) -> None:
    b = browser(web, outside)
    await sign_up(b, "github", "hal")
    b.read_csrf(await b.go("/web/account"))
    await b.post("/web/orgs", {"name": "hal-org", "region": "eu"})
    user_id = await web.accounts.signin.find_user(
        ProviderIdentity(Provider.GITHUB, github_standin.user_id("hal"), "", None)
    )
    assert user_id is not None
    (membership,) = await web.accounts.orgs.memberships(user_id)

    minted = await b.post("/web/tokens/short-lived", {"org_id": membership.org.id, "ttl_seconds": "600"})
    secret = minted.json()["secret"]
    me = await web.call("GET", "/v1/me", secret)
    await b.post("/web/sign-out")
    after = await web.call("GET", "/v1/me", secret)

    assert (me.json()["token"]["role"], membership.role, after.status_code) == ("owner", Role.OWNER, 401)


async def test_invite_required_refuses_sign_up_without_invitation(
    tmp_path: Path, github_url: str, outside: httpx.AsyncClient
) -> None:
    async with running_app(tmp_path, invite_required=True, **provider_settings(None, github_url)) as web:
        refused = await sign_up(browser(web, outside), "github", "young")

        assert (refused.status_code, "by invitation only" in refused.text) == (403, True)


async def test_invite_required_admits_person_with_invitation(
    tmp_path: Path, github_url: str, outside: httpx.AsyncClient
) -> None:
    async with running_app(tmp_path, invite_required=True, **provider_settings(None, github_url)) as web:
        org, owner = await web.org("club")
        invite = (await web.call("POST", f"/v1/orgs/{org.id}/invitations", owner, {"role": "viewer"})).json()
        b = browser(web, outside)
        landing = await b.go(invite["url"].removeprefix(BASE_URL))
        assert "Join club" in landing.text

        await sign_up(b, "github", "hubot")

        members = await web.call("GET", f"/v1/orgs/{org.id}/members", owner)
        assert [(m["name"], m["role"]) for m in members.json()["data"]] == [
            ("club-owner", "owner"),
            ("hubot", "viewer"),
        ]
