"""Request bodies of the Anthropic-compatible surface and their canonical chat payloads (docs/backends.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ferryman.errors import InvalidRequest


class Message(BaseModel):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


def _part(block: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic content block as an OpenAI content part, the canonical form."""
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        return {"type": "text", "text": block["text"]}
    source = block.get("source")
    if kind == "image" and isinstance(source, dict) and source.get("type") == "base64":
        return {
            "type": "image_url",
            "image_url": {"url": f"data:{source.get('media_type')};base64,{source.get('data', '')}"},
        }
    if kind == "image" and isinstance(source, dict) and source.get("type") == "url":
        return {"type": "image_url", "image_url": {"url": str(source.get("url", ""))}}
    raise InvalidRequest(
        f"content block type {kind!r} is not supported here; send text or image blocks",
        details={"code": "unsupported_content"},
    )


def _content(content: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts = [_part(block) for block in content]
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


class MessagesRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=200)
    max_tokens: int = Field(ge=1)
    messages: list[Message] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: list[str] | None = Field(None, max_length=16)
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=1)
    metadata: dict[str, Any] | None = None
    stream: bool = False
    tools: list[dict[str, Any]] | None = None

    def payload(self) -> dict[str, Any]:
        if self.tools:
            raise InvalidRequest(
                "tools: tool use is not supported on the Anthropic surface yet; use the "
                "OpenAI surface's tools",
                details={"code": "unsupported"},
            )
        messages: list[dict[str, Any]] = []
        if self.system:
            messages.append({"role": "system", "content": _content(self.system)})
        messages += [{"role": m.role, "content": _content(m.content)} for m in self.messages]
        values = {
            "messages": messages,
            "max_tokens": self.max_tokens,
            "stop": self.stop_sequences,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "stream": True if self.stream else None,
        }
        return {k: v for k, v in values.items() if v is not None}


class CountTokensRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=200)
    messages: list[Message] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None

    def as_messages_request(self) -> MessagesRequest:
        return MessagesRequest(model=self.model, max_tokens=1, messages=self.messages, system=self.system)
