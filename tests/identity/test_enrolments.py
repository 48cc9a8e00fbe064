"""Enrolment over the real app: a one-time secret is traded once, within its lifetime, by the worker it names, for
a worker token bound to that worker id and its models; the secret and the token are stored only as hashes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from ferryman.errors import Unauthenticated
from ferryman.identity import IssuedEnrolment
from ferryman.store import tables
from ferryman.types import Region

from .harness import Harness, running_app

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_app(tmp_path) as harness:
        yield harness


async def issue(app: Harness, worker_id: str = "as-eu-1", ttl: float = 300.0) -> IssuedEnrolment:
    return await app.accounts.enrolments.issue(
        region=Region.EU, worker_id=worker_id, models=("llama-3-8b",), ttl_seconds=ttl
    )


async def enrol(
    app: Harness, secret: str | None, worker_id: str = "as-eu-1", region: str = "eu"
) -> httpx.Response:
    return await app.call("POST", "/v1/workers/enrol", secret, {"worker_id": worker_id, "region": region})


async def test_a_secret_is_traded_once_for_a_token_bound_to_its_worker_and_models(app: Harness) -> None:
    issued = await issue(app)
    await app.accounts.enrolments.bind_instance(issued.id, "7001")

    first = await enrol(app, issued.secret)
    replay = await enrol(app, issued.secret)

    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["worker_id"], body["region"], body["models"]) == ("as-eu-1", "eu", ["llama-3-8b"])
    principal = await app.container.identity.authenticate_worker(body["token"])
    assert (principal.region, principal.worker_id, principal.models) == (
        Region.EU, "as-eu-1", frozenset({"llama-3-8b"}),
    )  # fmt: skip
    assert (replay.status_code, replay.json()["error"]["code"]) == (401, "unauthorized")


async def test_an_expired_secret_is_refused(app: Harness) -> None:
    issued = await issue(app, ttl=60)
    app.clock.advance(61)

    resp = await enrol(app, issued.secret)

    assert (resp.status_code, resp.json()["error"]["code"]) == (401, "unauthorized")


async def test_a_secret_sent_for_another_worker_or_region_spends_nothing(app: Harness) -> None:
    issued = await issue(app)

    other_worker = await enrol(app, issued.secret, worker_id="as-eu-2")
    other_region = await enrol(app, issued.secret, region="us")
    right = await enrol(app, issued.secret)

    assert [other_worker.status_code, other_region.status_code, right.status_code] == [401, 401, 200]


async def test_retiring_an_enrolment_revokes_the_token_it_gave_and_voids_an_unspent_secret(
    app: Harness,
) -> None:
    spent, unspent = await issue(app, "as-eu-1"), await issue(app, "as-eu-2")
    token = (await enrol(app, spent.secret)).json()["token"]

    await app.accounts.enrolments.retire(spent.id)
    await app.accounts.enrolments.retire(unspent.id)

    with pytest.raises(Unauthenticated):
        await app.container.identity.authenticate_worker(token)
    assert (await enrol(app, unspent.secret, worker_id="as-eu-2")).status_code == 401


async def test_bad_requests_get_the_native_error_envelope(app: Harness) -> None:
    issued = await issue(app)

    no_secret = await enrol(app, None)
    api_token = await enrol(app, "fmw_not_an_enrolment_secret")
    no_body = await app.call("POST", "/v1/workers/enrol", issued.secret, None, content=b"{")
    no_worker = await app.call("POST", "/v1/workers/enrol", issued.secret, {"region": "eu"})

    codes = [(r.status_code, r.json()["error"]["code"]) for r in (no_secret, api_token, no_body, no_worker)]
    assert codes == [
        (401, "unauthorized"),
        (401, "unauthorized"),
        (400, "invalid_json"),
        (400, "validation_error"),
    ]
    assert (await enrol(app, issued.secret)).status_code == 200


async def test_only_hashes_are_stored_and_the_enrolment_is_audited_without_secrets(app: Harness) -> None:
    issued = await issue(app)
    token = (await enrol(app, issued.secret)).json()["token"]

    async with app.container.accounts.audit._engine.connect() as conn:  # noqa: SLF001 - reading the store as is
        enrolments = (await conn.execute(select(tables.worker_enrolments))).all()
        tokens = (await conn.execute(select(tables.worker_tokens))).all()
    stored = repr(enrolments) + repr(tokens)
    (event,) = await app.accounts.audit.find_system(action_prefix="fleet.worker_enrolled", limit=10)

    assert issued.secret not in stored and token not in stored
    assert (event.action.value, event.details["worker_id"], event.org_id, event.actor_user_id) == (
        "fleet.worker_enrolled", "as-eu-1", None, None,
    )  # fmt: skip
    assert issued.secret not in repr(event) and token not in repr(event)
