"""Depth and size limits on every frame a worker sends: what breaks them is refused, naming the job it was for."""

from __future__ import annotations

import json

import pytest

from ferryman import protocol as p


def result_frame(output_json: str) -> str:
    return '{"type":"job_result","job_id":"job_us_1","fence":7,"output":' + output_json + "}"


def nested(levels: int) -> str:
    return '{"d":' * (levels - 1) + "{}" + "}" * (levels - 1)


def test_result_within_the_depth_limit_is_decoded() -> None:
    message = p.decode_worker_message(result_frame(nested(p.MAX_DEPTH - 1)))  # the frame itself is a level
    assert isinstance(message, p.JobResult)


@pytest.mark.parametrize("levels", [p.MAX_DEPTH, 900, 50_000])
def test_result_past_the_depth_limit_is_refused_naming_its_job_and_fence(levels: int) -> None:
    with pytest.raises(p.ProtocolError, match=f"deeper than {p.MAX_DEPTH} levels") as refused:
        p.decode_worker_message(result_frame(nested(levels)))
    assert (refused.value.job_id, refused.value.fence) == ("job_us_1", 7)


def test_frame_with_more_values_than_the_limit_is_refused() -> None:
    with pytest.raises(p.ProtocolError, match="more than"):
        p.decode_worker_message(result_frame(json.dumps({"v": [0] * (p.MAX_VALUES + 1)})))


def test_deep_chunk_and_progress_frames_are_refused_too() -> None:
    chunk = '{"type":"job_chunk","job_id":"job_us_1","fence":7,"data":' + nested(900) + "}"
    with pytest.raises(p.ProtocolError) as refused:
        p.decode_worker_message(chunk)
    assert refused.value.job_id == "job_us_1"


def test_check_shape_accepts_what_the_node_sends_every_day() -> None:
    p.check_shape(
        {"choices": [{"message": {"role": "assistant", "content": "hi"}}], "usage": {"total_tokens": 2}}
    )
