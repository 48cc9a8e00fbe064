"""A model whose worker is still starting: jobs for it are taken and wait as `worker_starting`."""

from __future__ import annotations

import pytest

from ferryman import protocol as p
from ferryman.errors import NotFound
from ferryman.types import Task
from tests.dispatch.harness import ORG, FakeWorker, NodeHarness

pytestmark = pytest.mark.anyio

FRESH = "fresh-model"  # never seen in this region's catalog


def _attach_loading(h: NodeHarness, worker_id: str, model: str) -> FakeWorker:
    register = p.Register(
        worker_id=worker_id,
        region="us",
        slots=1,
        models=(p.ModelOffer(model, (Task.CHAT,)),),
        loading=(model,),
    )
    frames: list[str] = []
    conn = h.node.attach(register, send=frames.append, close=lambda: None)
    return FakeWorker(conn=conn, frames=frames)


async def _wait_reason(h: NodeHarness, job_id: str) -> str | None:
    _, info = await h.service.get(ORG, job_id)
    return info.wait_reason if info is not None else None


async def test_a_job_for_an_expected_model_is_taken_and_waits_as_worker_starting(
    harness: NodeHarness,
) -> None:
    with pytest.raises(NotFound):
        await harness.submit(model=FRESH)
    harness.node.expect_model(FRESH, frozenset({Task.CHAT}))

    job = await harness.submit(model=FRESH)

    assert await _wait_reason(harness, job.id) == "worker_starting"
    assert harness.node.model_readiness() == {"warm": [], "starting": [FRESH]}
    harness.node.forget_expected(FRESH)  # its worker gave up
    assert await _wait_reason(harness, job.id) == "no_worker_for_model"


async def test_a_loading_worker_gets_no_job_until_it_says_the_model_is_ready(harness: NodeHarness) -> None:
    worker = _attach_loading(harness, "w-loading", FRESH)
    job = await harness.submit(model=FRESH)  # the catalog knows it from the registration

    assert worker.dispatches() == []
    assert await _wait_reason(harness, job.id) == "worker_starting"
    assert harness.node.model_readiness() == {"warm": [], "starting": [FRESH]}

    harness.send(worker, p.ModelReady(model=FRESH))

    assert [d.job_id for d in worker.dispatches()] == [job.id]
    assert harness.node.model_readiness() == {"warm": [FRESH], "starting": []}


async def test_model_ready_for_a_model_it_was_not_loading_changes_nothing(harness: NodeHarness) -> None:
    worker = _attach_loading(harness, "w-loading", FRESH)

    harness.send(worker, p.ModelReady(model="something-else"))

    assert worker.conn.models == frozenset()
    assert harness.node.model_readiness() == {"warm": [], "starting": [FRESH]}


def test_register_may_not_call_a_model_it_does_not_offer_loading() -> None:
    frame = (
        '{"type":"register","worker_id":"w","region":"us","slots":1,'
        '"models":[{"name":"a","tasks":["chat"]}],"loading":["b"]}'
    )
    with pytest.raises(p.ProtocolError, match="does not offer"):
        p.decode_worker_message(frame)


def test_an_older_register_without_loading_means_every_model_is_ready() -> None:
    frame = (
        '{"type":"register","worker_id":"w","region":"us","slots":1,"models":[{"name":"a","tasks":["chat"]}]}'
    )
    register = p.decode_worker_message(frame)
    assert isinstance(register, p.Register) and register.loading == ()
