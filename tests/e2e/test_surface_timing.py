"""Every job-backed response of the compatible surfaces carries `Server-Timing` and the job's id, read the way
each official SDK exposes them (raw responses), against a real server and echo workers."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.e2e.processes import FerrymanServer

HELLO = [{"role": "user", "content": "hello brave new world"}]
FOUR = {"queue-overhead", "wait", "worker-rtt", "work"}


def timing_of(headers: httpx.Headers) -> dict[str, float]:
    """`name;dur=1.5, other;dur=2` as {name: ms}."""
    out = {}
    for part in headers["server-timing"].split(","):
        name, _, params = part.strip().partition(";")
        out[name] = float(params.removeprefix("dur="))
    return out


def job_timings(server: FerrymanServer, job_id: str) -> dict[str, Any]:
    with server.client() as native:
        job = native.get(f"/v1/jobs/{job_id}")
        assert job.status_code == 200, job.text
        timings: dict[str, Any] = job.json()["timings"]
        return timings


def test_openai_chat_carries_the_four_timings_and_the_job_id(
    oai: openai.OpenAI, shared_server: FerrymanServer
) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model="echo-1",
        messages=HELLO,  # type: ignore[arg-type]
        extra_body={"sleep_ms": 80},  # the echo backend works this long: `work` must show it
    )
    reply, timing = raw.parse(), timing_of(raw.headers)
    stored = job_timings(shared_server, reply.id)
    # the worker's event loop (uvloop) keeps time in whole milliseconds: an 80 ms sleep may measure 79.x
    assert (set(timing), raw.request_id, timing["work"] >= 75, round(timing["work"], 3)) == (
        FOUR,
        reply.id,
        True,
        round(stored["work_ms"], 3),
    )
    assert timing["wait"] == pytest.approx(stored["wait_ms"], abs=0.001)


def test_openai_chat_stream_names_the_job_and_times_its_start(
    oai: openai.OpenAI, shared_server: FerrymanServer
) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model="echo-1",
        messages=HELLO,
        stream=True,  # type: ignore[arg-type]
    )
    chunks = list(raw.parse())
    timing = timing_of(raw.headers)
    assert ({c.id for c in chunks}, "queue-overhead" in timing, set(timing) <= FOUR) == (
        {raw.request_id},
        True,
        True,
    )
    assert job_timings(shared_server, str(raw.request_id))["work_ms"] is not None  # the id is the real job


@pytest.mark.parametrize("kind", ["embeddings", "completions", "async"])
def test_other_openai_job_routes_carry_timing_and_job_id(oai: openai.OpenAI, kind: str) -> None:
    if kind == "embeddings":
        raw: Any = oai.embeddings.with_raw_response.create(model="echo-1", input="a ferry")
    elif kind == "completions":
        raw = oai.completions.with_raw_response.create(model="echo-1", prompt="a ferry")
    else:
        raw = oai.chat.completions.with_raw_response.create(
            model="echo-1",
            messages=HELLO,  # type: ignore[arg-type]
            extra_body={"async": True},
        )
    assert (set(timing_of(raw.headers)), str(raw.request_id).startswith("job_")) == (FOUR, True)
    if kind == "completions":
        assert raw.parse().id == raw.request_id


def test_anthropic_message_and_count_tokens_carry_timing_and_request_id(
    claude: anthropic.Anthropic, shared_server: FerrymanServer
) -> None:
    raw = claude.messages.with_raw_response.create(
        model="echo-1",
        max_tokens=5,
        messages=HELLO,  # type: ignore[arg-type]
    )
    message, timing = raw.parse(), timing_of(raw.headers)
    stored = job_timings(shared_server, message.id)
    assert (set(timing), raw.request_id, round(timing["work"], 3)) == (
        FOUR,
        message.id,
        round(stored["work_ms"], 3),
    )
    counted = claude.messages.with_raw_response.count_tokens(model="echo-1", messages=HELLO)  # type: ignore[arg-type]
    assert (set(timing_of(counted.headers)), str(counted.request_id).startswith("job_")) == (FOUR, True)


def test_anthropic_stream_names_the_job_and_times_its_start(claude: anthropic.Anthropic) -> None:
    raw = claude.messages.with_raw_response.create(
        model="echo-1",
        max_tokens=5,
        messages=HELLO,  # type: ignore[arg-type]
        stream=True,
    )
    events = list(raw.parse())
    started = [e for e in events if e.type == "message_start"]
    timing = timing_of(raw.headers)
    assert (started[0].message.id, "queue-overhead" in timing, set(timing) <= FOUR) == (
        raw.request_id,
        True,
        True,
    )


def test_fal_submit_status_and_result_carry_timing_and_request_id(shared_server: FerrymanServer) -> None:
    headers = {"Authorization": f"Key {shared_server.token}"}
    with httpx.Client(base_url=f"{shared_server.url}/fal", headers=headers, timeout=30) as fal:
        submitted = fal.post("/echo-1", json={"prompt": "a ferry", "sleep_ms": 60})
        request_id = submitted.json()["request_id"]
        deadline = time.monotonic() + 20
        status = fal.get(f"/echo-1/requests/{request_id}/status")
        while status.json()["status"] != "COMPLETED" and time.monotonic() < deadline:
            time.sleep(0.05)
            status = fal.get(f"/echo-1/requests/{request_id}/status")
        result = fal.get(f"/echo-1/requests/{request_id}")
    stored = job_timings(shared_server, request_id)
    ids = [r.headers.get("x-fal-request-id") for r in (submitted, status, result)]
    assert (submitted.status_code, status.json()["status"], result.status_code, ids) == (
        200,
        "COMPLETED",
        200,
        [request_id] * 3,
    )
    assert [set(timing_of(r.headers)) for r in (submitted, status, result)] == [FOUR] * 3
    assert timing_of(result.headers)["work"] == pytest.approx(stored["work_ms"], abs=0.001)
    assert timing_of(result.headers)["work"] >= 55  # 60 ms of echo work, measured to the millisecond


def test_fal_result_of_a_failed_job_still_names_it(shared_server: FerrymanServer) -> None:
    headers = {"Authorization": f"Key {shared_server.token}"}
    with httpx.Client(base_url=f"{shared_server.url}/fal", headers=headers, timeout=30) as fal:
        request_id = fal.post("/echo-1", json={"prompt": "x", "fail": {"code": "engine_crashed"}}).json()[
            "request_id"
        ]
        deadline = time.monotonic() + 20
        while (
            fal.get(f"/echo-1/requests/{request_id}/status").json()["status"] != "COMPLETED"
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        result = fal.get(f"/echo-1/requests/{request_id}")
    assert (result.status_code, result.json()["error_type"], result.headers.get("x-fal-request-id")) == (
        502,
        "engine_crashed",
        request_id,
    )
    assert set(timing_of(result.headers)) == FOUR


def test_openai_error_about_a_failed_job_names_it(oai: openai.OpenAI, shared_server: FerrymanServer) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        oai.chat.completions.create(
            model="echo-1",
            messages=HELLO,  # type: ignore[arg-type]
            extra_body={"fail": {"code": "engine_crashed"}},
        )
    failed = info.value
    with shared_server.client() as native:
        job = native.get(f"/v1/jobs/{failed.request_id}").json()
    assert (failed.status_code, job["status"], set(timing_of(failed.response.headers))) == (
        502,
        "failed",
        FOUR,
    )


def test_an_error_before_any_job_names_none(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        oai.chat.completions.create(model="no-such-model", messages=HELLO)  # type: ignore[arg-type]
    assert (info.value.request_id, "server-timing" in info.value.response.headers) == (None, False)
