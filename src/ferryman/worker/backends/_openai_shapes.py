"""Translation between Ferryman's canonical task shapes (docs/backends.md) and the OpenAI wire format.

Pure functions and one accumulator, no I/O, so `openai_upstream` stays about talking to the server.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass, field
from typing import Any

from ferryman.types import Task
from ferryman.worker.backends._upstream_errors import bad_response
from ferryman.worker.backends.base import BackendError, Blob, Chunk, Delta, Output

# Canonical keys forwarded as they are. A whitelist, so test-only or internal keys never reach an upstream;
# `top_k` is not in OpenAI's API but vLLM, SGLang, llama.cpp and Ollama accept it.
SAMPLING_KEYS = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "seed",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
)
CHAT_KEYS = ("tools", "tool_choice", "response_format", "parallel_tool_calls")
IMAGE_EXTRA_KEYS = ("seed", "negative_prompt", "steps", "guidance_scale")
FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}
SPEECH_CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "opus": "audio/ogg",
    "flac": "audio/flac",
    "aac": "audio/aac",
    "pcm": "audio/pcm",
}
_IMAGE_KINDS = (
    (b"\x89PNG", "image/png", "png"),
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"GIF8", "image/gif", "gif"),
)


def _copy_present(payload: dict[str, Any], keys: tuple[str, ...], into: dict[str, Any]) -> dict[str, Any]:
    for key in keys:
        value = payload.get(key)
        if value is not None:
            into[key] = value
    return into


def text_request(task: Task, model: str, payload: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model}
    # a missing messages/prompt is left out, not sent as null: the upstream's 400 then names it
    if task is Task.CHAT:
        _copy_present(payload, ("messages", *CHAT_KEYS), body)
    else:
        _copy_present(payload, ("prompt",), body)
    _copy_present(payload, SAMPLING_KEYS, body)
    if stream:
        # without this the upstream streams no usage at all, and billing would have to guess
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def finish_reason(raw: Any) -> str:
    """stop, length or tool_calls; anything else an upstream invents (content_filter, abort) reads as stop."""
    return FINISH_REASONS.get(raw, "stop") if isinstance(raw, str) else "stop"


def text_usage(raw: Any) -> dict[str, int]:
    if not isinstance(raw, dict):
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = int(raw.get("completion_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(raw.get("total_tokens") or prompt + completion),
    }


def text_output(task: Task, raw: Any) -> Output:
    choices = raw.get("choices") if isinstance(raw, dict) else None
    if not isinstance(choices, list):
        raise bad_response("no 'choices' list")
    out = [_chat_choice(c) if task is Task.CHAT else _completion_choice(c) for c in choices]
    return Output({"choices": out}, text_usage(raw.get("usage")))


def _chat_choice(raw: dict[str, Any]) -> dict[str, Any]:
    message = raw.get("message") or {}
    reply: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        reply["tool_calls"] = message["tool_calls"]
    return {
        "index": raw.get("index", 0),
        "message": reply,
        "finish_reason": finish_reason(raw.get("finish_reason")),
    }


def _completion_choice(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "index": raw.get("index", 0),
        "text": raw.get("text") or "",
        "finish_reason": finish_reason(raw.get("finish_reason")),
    }


@dataclass(slots=True)
class _ChoiceSoFar:
    parts: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None

    def add_tool_calls(self, deltas: list[dict[str, Any]]) -> None:
        """Tool calls arrive in pieces: the first names the call, the rest extend its arguments."""
        for delta in deltas:
            call = self.tool_calls.setdefault(
                int(delta.get("index", 0)),
                {"id": None, "type": "function", "function": {"name": None, "arguments": ""}},
            )
            if delta.get("id"):
                call["id"] = delta["id"]
            function = delta.get("function") or {}
            if function.get("name"):
                call["function"]["name"] = function["name"]
            call["function"]["arguments"] += function.get("arguments") or ""


@dataclass(slots=True)
class StreamAccumulator:
    """Turns streamed OpenAI chunks into canonical `Delta`s and, at the end, the same `Output` as non-stream.

    Usage comes from the chunk `stream_options.include_usage` asks for; servers that ignore it but put usage
    on their last chunk (llama.cpp server) are covered by keeping the last usage seen; if none sent any, the
    counts are 0 (documented in docs/backends.md).
    """

    task: Task
    choices: dict[int, _ChoiceSoFar] = field(default_factory=dict)
    usage: Any = None
    is_finished: bool = False

    def feed(self, chunk: dict[str, Any]) -> list[Delta]:
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        deltas: list[Delta] = []
        for choice in chunk.get("choices") or ():
            index = int(choice.get("index", 0))
            so_far = self.choices.setdefault(index, _ChoiceSoFar())
            if self.task is Task.CHAT:
                delta = choice.get("delta") or {}
                piece, tool_calls = delta.get("content"), delta.get("tool_calls")
            else:
                piece, tool_calls = choice.get("text"), None
            if piece:
                so_far.parts.append(piece)
                deltas.append(Delta({"index": index, "content" if self.task is Task.CHAT else "text": piece}))
            if tool_calls:
                so_far.add_tool_calls(tool_calls)
                deltas.append(Delta({"index": index, "tool_calls": tool_calls}))
            if choice.get("finish_reason"):
                so_far.finish_reason = choice["finish_reason"]
                self.is_finished = True
        return deltas

    def output(self) -> Output:
        choices = []
        for index, so_far in sorted(self.choices.items()):
            text = "".join(so_far.parts)
            reason = finish_reason(so_far.finish_reason)
            if self.task is not Task.CHAT:
                choices.append({"index": index, "text": text, "finish_reason": reason})
                continue
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if so_far.tool_calls:
                message["tool_calls"] = [so_far.tool_calls[i] for i in sorted(so_far.tool_calls)]
            choices.append({"index": index, "message": message, "finish_reason": reason})
        return Output({"choices": choices}, text_usage(self.usage))


def embeddings_request(model: str, payload: dict[str, Any]) -> dict[str, Any]:
    body = {"model": model, "input": payload.get("input", ""), "encoding_format": "float"}
    return _copy_present(payload, ("dimensions", "user"), body)


def embeddings_output(raw: Any) -> Output:
    data = raw.get("data") if isinstance(raw, dict) else None
    if not isinstance(data, list):
        raise bad_response("no 'data' list")
    vectors = [{"index": d.get("index", i), "embedding": d.get("embedding")} for i, d in enumerate(data)]
    usage = raw.get("usage") if isinstance(raw.get("usage"), dict) else {}
    prompt = int(usage.get("prompt_tokens") or 0)
    return Output(
        {"data": vectors}, {"prompt_tokens": prompt, "total_tokens": int(usage.get("total_tokens") or prompt)}
    )


def image_request(model: str, payload: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "prompt": payload.get("prompt", ""),
        "n": int(payload.get("num_images") or 1),
        "response_format": "b64_json",
    }
    width, height = payload.get("width"), payload.get("height")
    if width and height:
        body["size"] = f"{width}x{height}"
    return _copy_present(payload, IMAGE_EXTRA_KEYS, body)


def image_chunks(raw: Any, payload: dict[str, Any]) -> list[Chunk]:
    data = raw.get("data") if isinstance(raw, dict) else None
    if not isinstance(data, list) or not data:
        raise bad_response("no 'data' list of images")
    chunks: list[Chunk] = []
    images = []
    for i, item in enumerate(data):
        encoded = item.get("b64_json") if isinstance(item, dict) else None
        if not isinstance(encoded, str):
            raise bad_response("image without 'b64_json' (does the server ignore response_format?)")
        try:
            image = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise bad_response(f"image {i} is not valid base64") from None
        content_type, ext = image_kind(image)
        width, height = png_size(image) or (payload.get("width"), payload.get("height"))
        name = f"image-{i}.{ext}"
        chunks.append(Blob(name, content_type, image))
        images.append({"blob": name, "width": width, "height": height, "content_type": content_type})
    chunks.append(Output({"images": images, "seed": payload.get("seed")}, {"images": len(images)}))
    return chunks


def image_kind(data: bytes) -> tuple[str, str]:
    for magic, content_type, ext in _IMAGE_KINDS:
        if data.startswith(magic):
            return content_type, ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    return "application/octet-stream", "bin"


def png_size(data: bytes) -> tuple[int, int] | None:
    if not data.startswith(b"\x89PNG") or len(data) < 24:
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def speech_request(model: str, payload: dict[str, Any]) -> dict[str, Any]:
    body = {"model": model, "input": payload.get("input", ""), "response_format": speech_format(payload)}
    return _copy_present(payload, ("voice", "speed", "instructions"), body)


def speech_format(payload: dict[str, Any]) -> str:
    fmt = payload.get("format") or "mp3"
    if fmt not in SPEECH_CONTENT_TYPES:
        raise BackendError(
            "unsupported", f"speech format {fmt!r} is not one of {sorted(SPEECH_CONTENT_TYPES)}"
        )
    return str(fmt)


def speech_chunks(audio: bytes, fmt: str, upstream_type: str | None, characters: int) -> list[Chunk]:
    """Prefer the upstream's own audio content type (it knows its container); else the format's usual one."""
    upstream_type = (upstream_type or "").split(";")[0].strip()
    content_type = upstream_type if upstream_type.startswith("audio/") else SPEECH_CONTENT_TYPES[fmt]
    name = f"speech.{fmt}"
    return [
        Blob(name, content_type, audio),
        Output(
            {"audio": {"blob": name, "content_type": content_type, "format": fmt}}, {"characters": characters}
        ),
    ]


def transcription_form(model: str, payload: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """The multipart fields and file of /audio/transcriptions."""
    audio = _b64decode(payload.get("audio_b64"), what="audio_b64")
    fields = {"model": model}
    for key in ("language", "prompt", "response_format", "temperature"):
        if payload.get(key) is not None:
            fields[key] = str(payload[key])
    content_type = str(payload.get("content_type") or "application/octet-stream")
    return fields, {"file": (str(payload.get("filename") or "audio"), audio, content_type)}


def transcription_output(raw: Any) -> Output:
    """`json` and `verbose_json` answers keep their fields; `text`, `srt` and `vtt` ones become `text`."""
    if isinstance(raw, str):
        return Output({"text": raw})
    if not isinstance(raw, dict) or not isinstance(raw.get("text"), str):
        raise bad_response("transcription without 'text'")
    output = {k: raw[k] for k in ("text", "language", "duration", "segments") if raw.get(k) is not None}
    duration = raw.get("duration")
    return Output(output, {"seconds": duration} if isinstance(duration, int | float) else {})


def _b64decode(value: Any, *, what: str) -> bytes:
    if not isinstance(value, str):
        raise BackendError("invalid_input", f"{what} must be a base64 string, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BackendError("invalid_input", f"{what} is not valid base64: {exc}") from None
