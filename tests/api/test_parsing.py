"""Untrusted bodies: the parser turns anything into a validated model or an InvalidRequest, nothing else."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ferryman.api.native.schemas import JobCreate
from ferryman.api.parsing import parse_body
from ferryman.errors import InvalidJSON, InvalidRequest

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)

# Under load (2 shared cores, the suite's servers) one example can take longer than Hypothesis's 200 ms
# deadline, or its input generation trip the too_slow health check: neither says anything about the parser.
# What bounds these tests is the number and size of the examples.
UNDER_LOAD = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@UNDER_LOAD
@given(st.binary(max_size=200))
def test_parse_body_raises_only_invalid_request_for_arbitrary_bytes(raw: bytes) -> None:
    try:
        parse_body(JobCreate, raw)
    except InvalidRequest:
        pass


@UNDER_LOAD
@given(
    st.dictionaries(
        st.sampled_from(["task", "model", "input", "priority", "wait", "stream", "x"]), json_values
    )
)
def test_parse_body_raises_only_invalid_request_for_arbitrary_json_objects(body: dict[str, object]) -> None:
    try:
        job = parse_body(JobCreate, json.dumps(body).encode())
    except InvalidRequest as exc:
        assert exc.code in ("validation_error", "invalid_json")
    else:
        assert isinstance(job.input, dict)


def test_parse_body_names_the_field_and_lists_every_problem() -> None:
    try:
        parse_body(JobCreate, b'{"task": "chat", "model": "", "input": []}')
    except InvalidRequest as exc:
        assert exc.message == "model: String should have at least 1 character"
        assert [e["loc"] for e in (exc.details or {})["errors"]] == [["model"], ["input"]]
    else:
        raise AssertionError("expected InvalidRequest")


def test_parse_body_calls_non_json_invalid_json() -> None:
    for raw in (b"", b"   ", b"{", b"\xff\xfe"):
        try:
            parse_body(JobCreate, raw)
        except InvalidJSON:
            continue
        raise AssertionError(f"{raw!r} should be invalid_json")


@pytest.mark.parametrize(
    "test",
    [
        test_parse_body_raises_only_invalid_request_for_arbitrary_bytes,
        test_parse_body_raises_only_invalid_request_for_arbitrary_json_objects,
    ],
)
def test_property_tests_have_no_deadline_and_a_bounded_number_of_examples(test: object) -> None:
    used = test._hypothesis_internal_use_settings  # type: ignore[attr-defined]
    assert (used.deadline, HealthCheck.too_slow in used.suppress_health_check, used.max_examples) == (
        None,
        True,
        300,
    )
