"""The worker protocol (DESIGN §3): the messages a queue node and a worker agent exchange.

A leaf module shared by both sides. Text frames carry one JSON object with a `type`; binary frames carry media
as a 4-byte big-endian header length, a JSON header, then the bytes. `decode_*` raise `ProtocolError` and
nothing else, whatever the frame holds; a frame from a worker is also held to `MAX_DEPTH` and `MAX_VALUES`.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from ferryman.types import Region, Task

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 64 * 1024 * 1024


class ProtocolError(ValueError):
    """A frame that is not a valid message of this protocol. `job_id` and `fence` are the job the frame named,
    when they could be read: a result that breaks the limits fails that job rather than leaving it to lapse."""

    def __init__(self, message: str, *, job_id: str | None = None, fence: int | None = None) -> None:
        super().__init__(message)
        self.job_id, self.fence = job_id, fence


# Limits on what a worker may send (DESIGN §3). Outputs are stored and later rendered by the API, and a value
# nested hundreds of levels deep made its job unreadable for good (rendering it overflows Python's stack), so
# a frame deeper or bigger than this is refused as a whole.
MAX_DEPTH = 64  # nesting levels of a frame, the frame object itself being the first
MAX_VALUES = 1_000_000  # JSON values (objects, arrays and scalars) in one frame
_JOB_ID_NEAR_START = re.compile(rb'"job_id"\s*:\s*"([A-Za-z0-9_-]{1,100})"')
_FENCE_NEAR_START = re.compile(rb'"fence"\s*:\s*([0-9]{1,20})[,}\s]')


def check_shape(value: Any, *, max_depth: int = MAX_DEPTH, max_values: int = MAX_VALUES) -> None:
    """Raise ProtocolError if a decoded JSON value nests deeper than `max_depth` or holds more than
    `max_values` values. Iterative, so it cannot itself overflow the stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > max_values:
            raise ProtocolError(f"frame holds more than {max_values} JSON values")
        if isinstance(item, dict | list):
            if depth > max_depth:
                raise ProtocolError(f"frame nests deeper than {max_depth} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def _named_job(text: str | bytes) -> tuple[str | None, int | None]:
    """The job id and fence a frame too deep to parse names near its start (worker frames put them first)."""
    head = (text[:4096].encode() if isinstance(text, str) else text[:4096]) if text else b""
    job, fence = _JOB_ID_NEAR_START.search(head), _FENCE_NEAR_START.search(head)
    return (job.group(1).decode() if job else None), (int(fence.group(1)) if fence else None)


@dataclass(frozen=True, slots=True)
class ModelOffer:
    name: str
    tasks: tuple[Task, ...]


def _offer_from_wire(raw: Any) -> ModelOffer:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise ProtocolError("each model needs a non-empty string 'name'")
    tasks = raw.get("tasks", [])
    if not isinstance(tasks, list):
        raise ProtocolError("model 'tasks' must be a list")
    try:
        return ModelOffer(name=raw["name"], tasks=tuple(Task(t) for t in tasks))
    except ValueError as exc:
        raise ProtocolError(f"unknown task in model {raw['name']!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Message:
    type: ClassVar[str] = ""

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type}
        for f in fields(self):
            name = f.name
            value = getattr(self, name)
            if name == "models":
                value = [{"name": m.name, "tasks": [str(t) for t in m.tasks]} for m in value]
            body[name] = value
        return body


# worker -> node


@dataclass(frozen=True, slots=True)
class Register(Message):
    type: ClassVar[str] = "register"
    worker_id: str
    region: str
    models: tuple[ModelOffer, ...]
    slots: int
    backend: str = ""
    hardware: dict[str, Any] = field(default_factory=dict)
    version: int = PROTOCOL_VERSION
    # offered models still loading: the node sends no jobs for them until a `model_ready` (absent: all ready)
    loading: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelReady(Message):
    """A model the worker registered as loading has loaded: it takes jobs for it from now on."""

    type: ClassVar[str] = "model_ready"
    model: str


@dataclass(frozen=True, slots=True)
class JobAccepted(Message):
    type: ClassVar[str] = "job_accepted"
    job_id: str
    fence: int


@dataclass(frozen=True, slots=True)
class JobProgress(Message):
    type: ClassVar[str] = "job_progress"
    job_id: str
    fence: int
    progress: float | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class JobChunk(Message):
    type: ClassVar[str] = "job_chunk"
    job_id: str
    fence: int
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class JobResult(Message):
    type: ClassVar[str] = "job_result"
    job_id: str
    fence: int
    output: dict[str, Any]
    usage: dict[str, Any] = field(default_factory=dict)
    work_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class JobError(Message):
    type: ClassVar[str] = "job_error"
    job_id: str
    fence: int
    code: str
    message: str
    retryable: bool = False


@dataclass(frozen=True, slots=True)
class Drain(Message):
    type: ClassVar[str] = "drain"


@dataclass(frozen=True, slots=True)
class Pause(Message):
    type: ClassVar[str] = "pause"


@dataclass(frozen=True, slots=True)
class Resume(Message):
    type: ClassVar[str] = "resume"


# node -> worker


@dataclass(frozen=True, slots=True)
class Registered(Message):
    type: ClassVar[str] = "registered"
    worker_id: str
    lease_seconds: float


@dataclass(frozen=True, slots=True)
class JobDispatch(Message):
    type: ClassVar[str] = "job"
    job_id: str
    attempt: int
    fence: int
    lease_seconds: float
    task: str
    model: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class JobCancel(Message):
    type: ClassVar[str] = "job_cancel"
    job_id: str
    fence: int
    reason: str


@dataclass(frozen=True, slots=True)
class ErrorMessage(Message):
    type: ClassVar[str] = "error"
    code: str
    message: str
    job_id: str | None = None
    fence: int | None = None


@dataclass(frozen=True, slots=True)
class JobBlob:
    """A binary frame: one media output of a job, stored by the node in the region's blob store."""

    job_id: str
    fence: int
    name: str
    content_type: str
    data: bytes


WORKER_MESSAGES: dict[str, type[Message]] = {
    m.type: m
    for m in (
        Register,
        ModelReady,
        JobAccepted,
        JobProgress,
        JobChunk,
        JobResult,
        JobError,
        Drain,
        Pause,
        Resume,
    )
}
NODE_MESSAGES: dict[str, type[Message]] = {
    m.type: m for m in (Registered, JobDispatch, JobCancel, ErrorMessage)
}

_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "worker_id": (str,),
    "region": (str,),
    "slots": (int,),
    "backend": (str,),
    "hardware": (dict,),
    "version": (int,),
    "job_id": (str,),
    "fence": (int,),
    "attempt": (int,),
    "progress": (int, float, type(None)),
    "message": (str, type(None)),
    "data": (dict,),
    "output": (dict,),
    "usage": (dict,),
    "work_ms": (int, float),
    "code": (str,),
    "retryable": (bool,),
    "lease_seconds": (int, float),
    "task": (str,),
    "model": (str,),
    "payload": (dict,),
    "reason": (str,),
    "models": (list,),
    "loading": (list,),
}


def encode(message: Message) -> str:
    return json.dumps(message.to_wire(), separators=(",", ":"))


def _decode(text: str | bytes, table: dict[str, type[Message]], *, limited: bool = False) -> Message:
    if len(text) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(text)} bytes is over the {MAX_FRAME_BYTES}-byte limit")
    try:
        raw = json.loads(text)
    except RecursionError:
        job_id, fence = _named_job(text)
        raise ProtocolError(
            f"frame nests deeper than {MAX_DEPTH} levels", job_id=job_id, fence=fence
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"frame is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ProtocolError("frame must be a JSON object")
    if limited:
        try:
            check_shape(raw)
        except ProtocolError as exc:
            job_id, fence = raw.get("job_id"), raw.get("fence")
            raise ProtocolError(
                str(exc),
                job_id=job_id if isinstance(job_id, str) else None,
                fence=fence if isinstance(fence, int) and not isinstance(fence, bool) else None,
            ) from None
    kind = raw.pop("type", None)
    cls = table.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message type {kind!r}; expected one of {sorted(table)}")
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in raw:
            continue
        value = raw[f.name]
        expected = _FIELD_TYPES.get(f.name)
        is_bool_for_number = isinstance(value, bool) and bool not in (expected or ())
        is_null_for_optional = value is None and f.default is None
        if expected and not is_null_for_optional and (not isinstance(value, expected) or is_bool_for_number):
            raise ProtocolError(f"{kind}.{f.name} has the wrong type: got {type(value).__name__}")
        kwargs[f.name] = value
    if "models" in kwargs:
        kwargs["models"] = tuple(_offer_from_wire(m) for m in kwargs["models"])
    if "loading" in kwargs:
        if not all(isinstance(name, str) for name in kwargs["loading"]):
            raise ProtocolError(f"{kind}.loading must be a list of model names")
        kwargs["loading"] = tuple(kwargs["loading"])
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ProtocolError(f"{kind} is missing a field: {exc}") from None


def decode_worker_message(text: str | bytes) -> Message:
    """Parse a frame a worker sent; raises ProtocolError for anything that is not a valid message."""
    message = _decode(text, WORKER_MESSAGES, limited=True)
    if isinstance(message, Register):
        if message.slots < 1 or message.slots > 4096:
            raise ProtocolError(f"register.slots must be between 1 and 4096, got {message.slots}")
        if message.region not in {r.value for r in Region}:
            raise ProtocolError(f"unknown region {message.region!r}")
        if unknown := set(message.loading) - {m.name for m in message.models}:
            raise ProtocolError(f"register.loading names models it does not offer: {sorted(unknown)}")
    return message


def decode_node_message(text: str | bytes) -> Message:
    return _decode(text, NODE_MESSAGES)


def encode_blob(blob: JobBlob) -> bytes:
    header = json.dumps(
        {"job_id": blob.job_id, "fence": blob.fence, "name": blob.name, "content_type": blob.content_type}
    ).encode()
    return struct.pack(">I", len(header)) + header + blob.data


def decode_blob(frame: bytes) -> JobBlob:
    if len(frame) < 4 or len(frame) > MAX_FRAME_BYTES:
        raise ProtocolError("binary frame has no header or is too large")
    (size,) = struct.unpack(">I", frame[:4])
    try:
        header = json.loads(frame[4 : 4 + size])
        return JobBlob(
            job_id=str(header["job_id"]),
            fence=int(header["fence"]),
            name=str(header["name"]),
            content_type=str(header["content_type"]),
            data=frame[4 + size :],
        )
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
        raise ProtocolError(f"binary frame header is invalid: {exc}") from None
