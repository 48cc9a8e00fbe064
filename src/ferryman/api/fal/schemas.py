"""fal's input conventions per task, and how each becomes a canonical payload (docs/backends.md)."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ferryman.api.parsing import parse_body
from ferryman.errors import InvalidRequest
from ferryman.types import Task

IMAGE_SIZES = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}

# a model serving several tasks is addressed by fal for its media task first
TASK_PREFERENCE = (
    Task.IMAGE,
    Task.VIDEO,
    Task.SPEECH,
    Task.TRANSCRIPTION,
    Task.CHAT,
    Task.COMPLETION,
    Task.EMBEDDINGS,
)


class ImageSize(BaseModel):
    width: int = Field(ge=16, le=8192)
    height: int = Field(ge=16, le=8192)


class MediaInput(BaseModel):
    """fal's image and video inputs; keys fal apps define beyond these pass through to the backend."""

    model_config = ConfigDict(extra="allow")

    prompt: str = Field(min_length=1, max_length=32_000)
    image_size: (
        Literal["square_hd", "square", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9"]
        | ImageSize
    ) = "landscape_4_3"
    num_images: int = Field(1, ge=1, le=8)
    num_inference_steps: int | None = Field(None, ge=1, le=500)
    guidance_scale: float | None = Field(None, ge=0, le=50)
    seed: int | None = None
    negative_prompt: str | None = None
    duration: float | None = Field(None, gt=0, le=600)

    def payload(self) -> dict[str, Any]:
        if isinstance(self.image_size, ImageSize):
            width, height = self.image_size.width, self.image_size.height
        else:
            width, height = IMAGE_SIZES[self.image_size]
        values = {
            "prompt": self.prompt,
            "width": width,
            "height": height,
            "num_images": self.num_images,
            "steps": self.num_inference_steps,
            "guidance_scale": self.guidance_scale,
            "seed": self.seed,
            "negative_prompt": self.negative_prompt,
            "duration": self.duration,
        }
        return {**(self.model_extra or {}), **{k: v for k, v in values.items() if v is not None}}


class SpeechInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str = Field(min_length=1, max_length=4096)
    voice: str = "alloy"
    output_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)

    def payload(self) -> dict[str, Any]:
        return {"input": self.text, "voice": self.voice, "format": self.output_format, "speed": self.speed}


class TranscriptionInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    audio_url: str = Field(min_length=1)
    language: str | None = Field(None, max_length=20)

    def payload(self) -> dict[str, Any]:
        """Only `data:` URIs (what fal_client.encode_file makes): Ferryman fetches nothing on a caller's behalf."""
        header, sep, data = self.audio_url.partition(",")
        if not (header.startswith("data:") and header.endswith(";base64") and sep):
            raise InvalidRequest(
                "audio_url: send the audio inline as a base64 data: URI (fal_client.encode_file); "
                "remote URLs are not fetched",
                details={"code": "unsupported_audio_url"},
            )
        try:
            base64.b64decode(data, validate=True)
        except binascii.Error:
            raise InvalidRequest("audio_url: the data: URI is not valid base64") from None
        content_type = header.removeprefix("data:").removesuffix(";base64") or "application/octet-stream"
        values = {
            "audio_b64": data,
            "filename": "audio",
            "content_type": content_type,
            "language": self.language,
        }
        return {k: v for k, v in values.items() if v is not None}


class TextInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1, max_length=200_000)
    system_prompt: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)

    def payload(self, task: Task) -> dict[str, Any]:
        sampling = {
            k: v
            for k, v in {"max_tokens": self.max_tokens, "temperature": self.temperature}.items()
            if v is not None
        }
        if task is Task.COMPLETION:
            return {"prompt": self.prompt, **sampling}
        if task is Task.EMBEDDINGS:
            return {"input": self.prompt}
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return {"messages": [*messages, {"role": "user", "content": self.prompt}], **sampling}


def task_for(tasks: frozenset[Task]) -> Task:
    return next(t for t in TASK_PREFERENCE if t in tasks)


def payload_for(task: Task, raw: bytes) -> dict[str, Any]:
    """Raises only InvalidRequest (or InvalidJSON)."""
    if task in (Task.IMAGE, Task.VIDEO):
        return parse_body(MediaInput, raw).payload()
    if task is Task.SPEECH:
        return parse_body(SpeechInput, raw).payload()
    if task is Task.TRANSCRIPTION:
        return parse_body(TranscriptionInput, raw).payload()
    return parse_body(TextInput, raw).payload(task)
