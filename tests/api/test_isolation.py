"""Walks every route of every mounted surface, found at run time, and checks isolation and scopes:

- without a token: 401;
- with a token of another org (holding every scope), naming this org's objects: 404, never 403 or data;
- with a token of this org lacking the scope the route declares (`require(scope)`): 403;
- with a token holding no scope at all: 403, except for the routes listed in AUTHENTICATED_ONLY.

Every path parameter is filled with a real object of org A (its job, that job's fal `request_id` and media blob,
its members, tokens, sessions and invitations): a route whose parameter names nothing real would answer 404 for
the wrong reason. A route with a parameter the world fixture has no object for fails the walk, as does a walk of
fewer routes than MIN_ROUTES.

A new route joins the walk by being mounted; if it needs a body to get past validation, add one to BODIES.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount

from ferryman import protocol as p
from ferryman.identity import ALL_SCOPES, Role, Scope
from ferryman.jobs import JobSpec
from ferryman.types import OrgId, Priority, Region, Task, UserId
from tests.identity.harness import Harness, Seat, running_app

pytestmark = pytest.mark.anyio

NOT_WALKED = {"/web"}  # browser pages: session cookies and CSRF, tested in tests/web/
MIN_ROUTES = 40  # what the surfaces mount today is more: a walk that finds fewer has lost its way
MIN_ORG_OBJECT_ROUTES = 17

# routes whose only path parameter is a served model: the catalogue is the platform's, not an org's object
NOT_ORG_OBJECTS = {
    "POST /fal/{model:path}",
    "POST /fal/run/{model:path}",
    "GET /openai/v1/models/{model:path}",
    "GET /anthropic/v1/models/{model:path}",
}
BLOB = "image-0.png"

# routes any member of the org may call, whatever the token's scopes (docs/identity.md, permission table)
AUTHENTICATED_ONLY = {
    "GET /v1/me",
    "GET /v1/orgs",
    "GET /v1/orgs/{org_id}",
    "GET /v1/models",
    "GET /v1/tokens",
    "DELETE /v1/tokens/{token_id}",
    "POST /v1/tokens/short-lived",
    "GET /v1/sessions",
    "DELETE /v1/sessions/{session_id}",
    "POST /v1/sessions/revoke-all",
    "POST /v1/invitations/accept",
}

BODIES: dict[str, Any] = {
    "POST /v1/orgs": {"name": "x"},
    "PATCH /v1/orgs/{org_id}": {"name": "x"},
    "POST /v1/orgs/{org_id}/transfer-ownership": {"user_id": "{user_id}"},
    "PATCH /v1/orgs/{org_id}/members/{user_id}": {"role": "viewer"},
    "POST /v1/orgs/{org_id}/invitations": {"role": "member"},
    "POST /v1/tokens": {"name": "x", "scopes": ["jobs:read"]},
    "POST /v1/jobs": {"task": "chat", "model": "m", "input": {"messages": []}},
}


@dataclass(frozen=True)
class Walked:
    method: str
    template: str
    scope: Scope | None

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"


def _required_scope(route: APIRoute) -> Scope | None:
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        scope = getattr(dependant.call, "required_scope", None)
        if isinstance(scope, Scope):
            return scope
        pending.extend(dependant.dependencies)
    return None


def walk(routes: list[Any], prefix: str = "") -> Iterator[Walked]:
    for route in routes:
        if isinstance(route, Mount):
            if route.path not in NOT_WALKED:
                yield from walk(list(route.routes), prefix + route.path)
        elif hasattr(route, "original_router"):  # an included router (FastAPI >= 0.16x keeps them whole)
            yield from walk(list(route.original_router.routes), prefix + route.include_context.prefix)
        elif isinstance(route, APIRoute):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                yield Walked(method, prefix + route.path, _required_scope(route))


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Harness, dict[str, str], Seat]]:
    """Org A with one of each object, and an owner of org B."""
    async with running_app(tmp_path) as h:
        org, owner = await h.org("a")
        node = h.container.nodes[Region.US]
        sent: list[str] = []
        worker = node.attach(
            p.Register(worker_id="w0", region="us", slots=1, models=(p.ModelOffer("m", (Task.CHAT,)),)),
            send=sent.append,
            close=lambda: None,
        )
        job, _ = await h.container.jobs.submit(
            JobSpec(
                org_id=org.id,
                region=Region.US,
                task=Task.CHAT,
                model="m",
                priority=Priority.ASYNC,
                payload={"messages": []},
            ),
            acknowledge=True,
        )
        fence = await _dispatched_fence(sent, job.id)
        await node.store_blob(worker, p.JobBlob(job.id, fence, BLOB, "image/png", b"\x89PNG\r\n\x1a\n"))
        assert await h.container.jobs.read_blob(org.id, job.id, BLOB) is not None  # a real blob of org A
        spare = await h.token(org.id, owner.user_id)
        session, _ = await h.accounts.sessions.start(owner.user_id, ip=None, user_agent=None)
        invitation = await h.accounts.invitations.create(
            await h.container.identity.authenticate(owner.token), org.id, role=Role.MEMBER
        )
        ids = {
            "org_id": org.id,
            "user_id": owner.user_id,
            "token_id": spare.token_id,
            "session_id": session.id,
            "invitation_id": invitation.invitation.id,
            "job_id": job.id,
            "request_id": job.id,  # fal names a job its request
            "name": BLOB,
            "model": job.model,
        }
        _, stranger = await h.org("b")
        yield h, ids, stranger


async def _dispatched_fence(sent: list[str], job_id: str) -> int:
    """The fence of `job_id`'s dispatch to the attached worker (the node dispatches on its own task)."""
    for _ in range(500):
        for frame in sent:
            message = p.decode_node_message(frame)
            if isinstance(message, p.JobDispatch) and message.job_id == job_id:
                return message.fence
        await asyncio.sleep(0.01)
    raise AssertionError(f"{job_id} was never dispatched to the attached worker")


def _fill(template: str, ids: dict[str, str]) -> str:
    """The path with every parameter replaced by org A's object; fails for a parameter with no object."""
    missing = [name for name in re.findall(r"\{(\w+)(?::\w+)?\}", template) if name not in ids]
    assert not missing, f"{template}: the world fixture has no object for {missing}; add one"
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: ids[m.group(1)], template)


def _body(walked: Walked, ids: dict[str, str]) -> Any:
    body = BODIES.get(walked.key)
    if isinstance(body, dict):
        return {k: _fill(v, ids) if isinstance(v, str) else v for k, v in body.items()}
    return body if body is not None else ({} if walked.method in {"POST", "PUT", "PATCH"} else None)


async def test_every_route_refuses_requests_without_a_token(
    world: tuple[Harness, dict[str, str], Seat],
) -> None:
    h, ids, _ = world
    routes = list(walk(h.app.routes))
    assert len(routes) >= MIN_ROUTES

    statuses = {
        r.key: (await h.call(r.method, _fill(r.template, ids), None, _body(r, ids))).status_code
        for r in routes
    }

    assert {k: s for k, s in statuses.items() if s != 401} == {}


async def test_every_route_answers_404_for_another_orgs_objects(
    world: tuple[Harness, dict[str, str], Seat],
) -> None:
    h, ids, stranger = world
    templated = {r.key: r for r in walk(h.app.routes) if "{" in r.template}
    assert NOT_ORG_OBJECTS <= templated.keys()  # the exclusions name routes that exist
    routes = [r for key, r in templated.items() if key not in NOT_ORG_OBJECTS]
    assert len(routes) >= MIN_ORG_OBJECT_ROUTES
    assert {
        "GET /v1/jobs/{job_id}/blobs/{name}",
        "GET /fal/{model:path}/requests/{request_id}",
    } <= templated.keys()

    statuses = {
        r.key: (await h.call(r.method, _fill(r.template, ids), stranger, _body(r, ids))).status_code
        for r in routes
    }

    assert {k: s for k, s in statuses.items() if s != 404} == {}


async def test_every_route_refuses_a_token_lacking_its_scope(
    world: tuple[Harness, dict[str, str], Seat],
) -> None:
    h, ids, _ = world
    routes = [r for r in walk(h.app.routes) if r.scope is not None]
    org_id, owner = OrgId(ids["org_id"]), UserId(ids["user_id"])

    statuses = {}
    for r in routes:
        assert r.scope is not None
        lacking = await h.token(org_id, owner, ALL_SCOPES - {r.scope})
        response = await h.call(r.method, _fill(r.template, ids), lacking, _body(r, ids))
        statuses[r.key] = response.status_code

    assert (len(routes) > 30, {k: s for k, s in statuses.items() if s != 403}) == (True, {})


async def test_every_route_refuses_a_token_without_scopes(
    world: tuple[Harness, dict[str, str], Seat],
) -> None:
    h, ids, _ = world
    routes = [r for r in walk(h.app.routes) if r.key not in AUTHENTICATED_ONLY]
    assert len(routes) >= MIN_ROUTES - len(AUTHENTICATED_ONLY)
    empty = await h.token(OrgId(ids["org_id"]), UserId(ids["user_id"]), frozenset())

    statuses = {
        r.key: (await h.call(r.method, _fill(r.template, ids), empty, _body(r, ids))).status_code
        for r in routes
    }

    assert {k: s for k, s in statuses.items() if s != 403} == {}


# the events of a running job stream until it ends: the walk does not open them as the owner
STREAMS = {"GET /v1/jobs/{job_id}/events"}


async def test_every_path_parameter_names_a_real_object_its_own_org_can_read(
    world: tuple[Harness, dict[str, str], Seat],
) -> None:
    h, ids, _ = world
    owner = await h.token(OrgId(ids["org_id"]), UserId(ids["user_id"]))
    routes = [
        r
        for r in walk(h.app.routes)
        if "{" in r.template and r.method == "GET" and r.key not in NOT_ORG_OBJECTS | STREAMS
    ]

    statuses = {
        r.key: (await h.call(r.method, _fill(r.template, ids), owner, None)).status_code for r in routes
    }

    assert len(routes) >= 7
    assert {k: s for k, s in statuses.items() if s == 404} == {}
