from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferryman import protocol as p
from ferryman.types import Region, Task

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
JSON_OBJECTS = st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=5)
TEXT = st.text(max_size=30)
FENCES = st.integers(min_value=0, max_value=2**62)
NUMBERS = st.floats(allow_nan=False)

MODEL_OFFERS = st.builds(
    p.ModelOffer,
    name=st.text(min_size=1, max_size=20),
    tasks=st.lists(st.sampled_from(Task), max_size=3).map(tuple),
)

MESSAGES: dict[str, st.SearchStrategy[p.Message]] = {
    "register": st.lists(MODEL_OFFERS, max_size=3)
    .map(tuple)
    .flatmap(
        lambda models: st.builds(
            p.Register,
            worker_id=TEXT,
            region=st.sampled_from([r.value for r in Region]),
            models=st.just(models),
            slots=st.integers(1, 4096),
            backend=TEXT,
            hardware=JSON_OBJECTS,
            version=st.integers(),
            # only offered models may be loading
            loading=st.lists(st.sampled_from([m.name for m in models]), unique=True).map(tuple)
            if models
            else st.just(()),
        )
    ),
    "model_ready": st.builds(p.ModelReady, model=TEXT),
    "job_accepted": st.builds(p.JobAccepted, job_id=TEXT, fence=FENCES),
    "job_progress": st.builds(
        p.JobProgress, job_id=TEXT, fence=FENCES, progress=st.none() | NUMBERS, message=st.none() | TEXT
    ),
    "job_chunk": st.builds(p.JobChunk, job_id=TEXT, fence=FENCES, data=JSON_OBJECTS),
    "job_result": st.builds(
        p.JobResult, job_id=TEXT, fence=FENCES, output=JSON_OBJECTS, usage=JSON_OBJECTS, work_ms=NUMBERS
    ),
    "job_error": st.builds(
        p.JobError, job_id=TEXT, fence=FENCES, code=TEXT, message=TEXT, retryable=st.booleans()
    ),
    "drain": st.just(p.Drain()),
    "pause": st.just(p.Pause()),
    "resume": st.just(p.Resume()),
    "registered": st.builds(p.Registered, worker_id=TEXT, lease_seconds=NUMBERS),
    "job": st.builds(
        p.JobDispatch,
        job_id=TEXT,
        attempt=st.integers(0, 100),
        fence=FENCES,
        lease_seconds=NUMBERS,
        task=TEXT,
        model=TEXT,
        payload=JSON_OBJECTS,
    ),
    "job_cancel": st.builds(p.JobCancel, job_id=TEXT, fence=FENCES, reason=TEXT),
    "error": st.builds(p.ErrorMessage, code=TEXT, message=TEXT, job_id=st.none() | TEXT),
}

FIELD_NAMES = sorted(
    {
        "type",
        "worker_id",
        "region",
        "models",
        "slots",
        "backend",
        "hardware",
        "version",
        "job_id",
        "fence",
        "attempt",
        "progress",
        "message",
        "data",
        "output",
        "usage",
        "work_ms",
        "code",
        "retryable",
        "lease_seconds",
        "task",
        "model",
        "payload",
        "reason",
        "name",
        "tasks",
        "loading",
    }
)
TYPE_NAMES = sorted(p.WORKER_MESSAGES) + sorted(p.NODE_MESSAGES)
# objects shaped like frames: known types and field names, values of any JSON type
FRAME_LIKE = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPE_NAMES) | TEXT},
    optional={name: JSON_VALUES for name in FIELD_NAMES if name != "type"},
)


def decodes_or_refuses(decode: Callable[[Any], object], frame: str | bytes) -> None:
    """`decode` either returns a message or raises ProtocolError; any other exception fails the test."""
    try:
        message = decode(frame)
    except p.ProtocolError:
        return
    assert isinstance(message, p.Message | p.JobBlob)


def blob_frame(header: bytes, data: bytes = b"") -> bytes:
    return struct.pack(">I", len(header)) + header + data


def test_round_trip_strategies_cover_every_message_type() -> None:
    assert sorted(MESSAGES) == sorted({**p.WORKER_MESSAGES, **p.NODE_MESSAGES})


@pytest.mark.parametrize("kind", sorted(p.WORKER_MESSAGES))
@given(data=st.data())
def test_decode_worker_message_returns_what_encode_was_given(kind: str, data: st.DataObject) -> None:
    message = data.draw(MESSAGES[kind])

    assert p.decode_worker_message(p.encode(message)) == message


@pytest.mark.parametrize("kind", sorted(p.NODE_MESSAGES))
@given(data=st.data())
def test_decode_node_message_returns_what_encode_was_given(kind: str, data: st.DataObject) -> None:
    message = data.draw(MESSAGES[kind])

    assert p.decode_node_message(p.encode(message)) == message


def test_decode_node_message_returns_error_without_job_id() -> None:
    message = p.ErrorMessage(code="unauthorized", message="invalid or revoked worker token")

    assert p.decode_node_message(p.encode(message)) == message


@given(st.text())
def test_decode_worker_message_raises_only_protocol_error_when_text_is_arbitrary(frame: str) -> None:
    decodes_or_refuses(p.decode_worker_message, frame)


@given(st.binary())
def test_decode_worker_message_raises_only_protocol_error_when_bytes_are_arbitrary(frame: bytes) -> None:
    decodes_or_refuses(p.decode_worker_message, frame)


@given(JSON_VALUES)
def test_decode_worker_message_raises_only_protocol_error_when_json_is_arbitrary(value: object) -> None:
    decodes_or_refuses(p.decode_worker_message, json.dumps(value))


@given(FRAME_LIKE)
def test_decode_worker_message_raises_only_protocol_error_when_fields_have_any_json_value(
    frame: dict[str, Any],
) -> None:
    decodes_or_refuses(p.decode_worker_message, json.dumps(frame))


@given(FRAME_LIKE)
def test_decode_node_message_raises_only_protocol_error_when_fields_have_any_json_value(
    frame: dict[str, Any],
) -> None:
    decodes_or_refuses(p.decode_node_message, json.dumps(frame))


@pytest.mark.parametrize("decode", [p.decode_worker_message, p.decode_node_message])
def test_decode_raises_protocol_error_when_json_nests_too_deeply(decode: Callable[[str], p.Message]) -> None:
    with pytest.raises(p.ProtocolError, match="frame nests deeper than"):
        decode("[" * 100_000 + "]" * 100_000)


def test_decode_worker_message_raises_protocol_error_when_frame_is_over_the_limit() -> None:
    with pytest.raises(p.ProtocolError, match="over the 67108864-byte limit"):
        p.decode_worker_message(" " * (p.MAX_FRAME_BYTES + 1))


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ("[]", "frame must be a JSON object"),
        ('{"type": "job"}', "unknown message type 'job'"),
        ('{"job_id": "j", "fence": 1}', "unknown message type None"),
        ('{"type": "job_accepted", "job_id": "j"}', "job_accepted is missing a field"),
        (
            '{"type": "job_accepted", "job_id": "j", "fence": true}',
            "job_accepted.fence has the wrong type: got bool",
        ),
        (
            '{"type": "job_accepted", "job_id": "j", "fence": 1.0}',
            "job_accepted.fence has the wrong type: got float",
        ),
        (
            '{"type": "job_result", "job_id": "j", "fence": 1, "output": []}',
            "job_result.output has the wrong type",
        ),
    ],
)
def test_decode_worker_message_refuses_malformed_frame(frame: str, error: str) -> None:
    with pytest.raises(p.ProtocolError, match=error):
        p.decode_worker_message(frame)


@pytest.mark.parametrize("slots", [0, -1, 4097])
def test_decode_worker_message_refuses_register_when_slots_out_of_range(slots: int) -> None:
    frame = p.encode(p.Register(worker_id="w1", region="us", models=(), slots=slots))

    with pytest.raises(p.ProtocolError, match=f"register.slots must be between 1 and 4096, got {slots}"):
        p.decode_worker_message(frame)


def test_decode_worker_message_refuses_register_when_region_unknown() -> None:
    frame = p.encode(p.Register(worker_id="w1", region="mars", models=(), slots=1))

    with pytest.raises(p.ProtocolError, match="unknown region 'mars'"):
        p.decode_worker_message(frame)


def test_decode_worker_message_refuses_register_when_model_task_unknown() -> None:
    frame = json.dumps(
        {
            "type": "register",
            "worker_id": "w1",
            "region": "us",
            "slots": 1,
            "models": [{"name": "m", "tasks": ["chat", "telepathy"]}],
        }
    )

    with pytest.raises(p.ProtocolError, match="unknown task in model 'm'"):
        p.decode_worker_message(frame)


def test_decode_worker_message_refuses_register_when_model_has_no_name() -> None:
    frame = json.dumps(
        {"type": "register", "worker_id": "w1", "region": "us", "slots": 1, "models": [{"tasks": ["chat"]}]}
    )

    with pytest.raises(p.ProtocolError, match="each model needs a non-empty string 'name'"):
        p.decode_worker_message(frame)


@given(st.builds(p.JobBlob, job_id=TEXT, fence=FENCES, name=TEXT, content_type=TEXT, data=st.binary()))
def test_decode_blob_returns_what_encode_blob_was_given(blob: p.JobBlob) -> None:
    assert p.decode_blob(p.encode_blob(blob)) == blob


@given(st.binary())
def test_decode_blob_raises_only_protocol_error_when_bytes_are_arbitrary(frame: bytes) -> None:
    decodes_or_refuses(p.decode_blob, frame)


@given(JSON_VALUES, st.binary(max_size=8))
def test_decode_blob_raises_only_protocol_error_when_header_is_any_json(header: object, data: bytes) -> None:
    decodes_or_refuses(p.decode_blob, blob_frame(json.dumps(header).encode(), data))


@given(
    st.fixed_dictionaries(
        {"job_id": JSON_VALUES, "fence": JSON_VALUES, "name": JSON_VALUES, "content_type": JSON_VALUES}
    )
)
def test_decode_blob_raises_only_protocol_error_when_header_fields_have_any_json_value(
    header: dict[str, Any],
) -> None:
    decodes_or_refuses(p.decode_blob, blob_frame(json.dumps(header).encode()))


@pytest.mark.parametrize(
    "header",
    [
        b'{"job_id": "j", "fence": Infinity, "name": "n", "content_type": "c"}',
        b'{"job_id": "j", "fence": NaN, "name": "n", "content_type": "c"}',
        b"[" * 100_000,
        b"\xff\xfe",
        b'{"job_id": "j"}',
    ],
)
def test_decode_blob_raises_protocol_error_when_header_is_invalid(header: bytes) -> None:
    with pytest.raises(p.ProtocolError, match="binary frame header is invalid"):
        p.decode_blob(blob_frame(header, b"data"))


def test_decode_blob_raises_protocol_error_when_frame_has_no_header() -> None:
    with pytest.raises(p.ProtocolError, match="binary frame has no header or is too large"):
        p.decode_blob(b"\x00\x00")
