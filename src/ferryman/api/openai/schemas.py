"""Request bodies of the OpenAI-compatible surface, and how each becomes a canonical payload (docs/backends.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ferryman.errors import InvalidRequest


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class Sampling(BaseModel):
    """What chat and completions share; `async: true` answers 202 with a pollable request id.

    Keys OpenAI does not define (`top_k`, `min_p`, … sent as the SDK's `extra_body`) pass through to the backend,
    which ignores what it does not know (docs/backends.md).
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    model: str = Field(min_length=1, max_length=200)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=16)
    stop: str | list[str] | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    user: str | None = Field(None, max_length=256)
    metadata: dict[str, str] | None = None
    run_async: bool = Field(False, alias="async")

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def sampling(self) -> dict[str, Any]:
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        return _present(
            {
                "max_tokens": self.max_tokens,
                "temperature": self.temperature,
                "top_p": self.top_p,
                "stop": stop,
                "seed": self.seed,
                "n": self.n if self.n != 1 else None,
                "presence_penalty": self.presence_penalty,
                "frequency_penalty": self.frequency_penalty,
                "logit_bias": self.logit_bias,
                "user": self.user,
                "stream": True if self.stream else None,
                **(self.model_extra or {}),
            }
        )


class ChatCompletionRequest(Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None

    def payload(self) -> dict[str, Any]:
        messages = []
        for message in self.messages:
            item = message.model_dump(exclude_none=True)
            if item["role"] == "developer":  # OpenAI's newer name for the system role
                item["role"] = "system"
            messages.append(item)
        sampling = self.sampling()
        if self.max_completion_tokens is not None:
            sampling["max_tokens"] = self.max_completion_tokens
        return {
            "messages": messages,
            **sampling,
            **_present(
                {
                    "response_format": self.response_format,
                    "tools": self.tools,
                    "tool_choice": self.tool_choice,
                    "parallel_tool_calls": self.parallel_tool_calls,
                }
            ),
        }


class CompletionRequest(Sampling):
    prompt: str | list[str] = Field(min_length=1)

    def payload(self) -> dict[str, Any]:
        if isinstance(self.prompt, list):
            if len(self.prompt) != 1:
                raise InvalidRequest(
                    "prompt: one prompt per request is supported; send a string", details={"param": "prompt"}
                )
            prompt = self.prompt[0]
        else:
            prompt = self.prompt
        return {"prompt": prompt, **self.sampling()}


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    model: str = Field(min_length=1, max_length=200)
    input: str | list[str] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = Field(None, max_length=256)
    run_async: bool = Field(False, alias="async")

    def payload(self) -> dict[str, Any]:
        return _present({"input": self.input, "dimensions": self.dimensions})


class ImageRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    model: str = Field(min_length=1, max_length=200)
    prompt: str = Field(min_length=1, max_length=32_000)
    n: int = Field(1, ge=1, le=10)
    size: str | None = Field(None, pattern=r"^(auto|\d{2,5}x\d{2,5})$")
    response_format: Literal["url", "b64_json"] = "url"
    seed: int | None = None
    negative_prompt: str | None = None
    user: str | None = Field(None, max_length=256)
    run_async: bool = Field(False, alias="async")

    def payload(self) -> dict[str, Any]:
        width, height = (1024, 1024)
        if self.size and self.size != "auto":
            width, height = (int(v) for v in self.size.split("x"))
        return _present(
            {
                "prompt": self.prompt,
                "width": width,
                "height": height,
                "num_images": self.n,
                "seed": self.seed,
                "negative_prompt": self.negative_prompt,
            }
        )


AudioFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    model: str = Field(min_length=1, max_length=200)
    input: str = Field(min_length=1, max_length=4096)
    voice: str = Field("alloy", min_length=1, max_length=100)
    response_format: AudioFormat = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)
    run_async: bool = Field(False, alias="async")

    def payload(self) -> dict[str, Any]:
        return {"input": self.input, "voice": self.voice, "format": self.response_format, "speed": self.speed}


TranscriptionFormat = Literal["json", "text", "verbose_json", "srt", "vtt"]
