"""`espeak`: speech with the espeak-ng engine, encoded by ffmpeg into the requested format.

espeak-ng comes from the OS packages (`apt-get install espeak-ng ffmpeg`; `make up` installs both). It is a
formant synthesiser: small, fast on any CPU, robotic to the ear. OpenAI voice names map to espeak voices; any
espeak voice name (`en-gb`, `de`, `fr+f3`, …) is accepted as is.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Sequence

from ferryman.errors import ConfigError
from ferryman.protocol import ModelOffer
from ferryman.types import Task
from ferryman.worker.backends.audio_encoding import encode, run_tool
from ferryman.worker.backends.base import BackendError, BackendSettings, Blob, Chunk, Output, WorkItem

DEFAULT_MODELS = ("espeak-ng",)
VOICES = {
    "alloy": "en-us",
    "ash": "en-us+m3",
    "ballad": "en-gb+m2",
    "coral": "en-us+f2",
    "echo": "en-us+m1",
    "fable": "en-gb",
    "onyx": "en-us+m7",
    "nova": "en-us+f3",
    "sage": "en-us+f4",
    "shimmer": "en-us+f5",
    "verse": "en-us+m2",
}
BASE_WORDS_PER_MINUTE = 175
MAX_INPUT_CHARS = 4096


class EspeakBackend:
    name = "espeak"

    def __init__(self, settings: BackendSettings) -> None:
        if shutil.which("espeak-ng") is None:
            raise ConfigError(
                "the espeak backend needs espeak-ng on PATH; install it with "
                "`apt-get install espeak-ng ffmpeg` (make up does this)"
            )
        self._models = settings.models or DEFAULT_MODELS
        self._timeout_seconds = min(settings.timeout_seconds, 120.0)

    def offers(self) -> Sequence[ModelOffer]:
        return [ModelOffer(name=m, tasks=(Task.SPEECH,)) for m in self._models]

    async def aclose(self) -> None:
        return None

    async def run(self, item: WorkItem) -> AsyncIterator[Chunk]:
        if item.task is not Task.SPEECH:
            raise BackendError("unsupported", f"espeak speaks; it cannot run {item.task.value}")
        text = item.payload.get("input")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_INPUT_CHARS:
            raise BackendError("invalid_input", f"input must be 1 to {MAX_INPUT_CHARS} characters of text")
        audio_format = str(item.payload.get("format", "mp3"))
        voice = str(item.payload.get("voice") or "alloy")
        speed = item.payload.get("speed", 1.0)
        words_per_minute = int(BASE_WORDS_PER_MINUTE * (speed if isinstance(speed, int | float) else 1.0))
        argv = [
            "espeak-ng",
            "--stdout",
            "--stdin",
            "-v",
            VOICES.get(voice, voice),
            "-s",
            str(words_per_minute),
        ]
        wav = await run_tool(argv, text.encode(), timeout_seconds=self._timeout_seconds, what="espeak-ng")
        audio, content_type = await encode(wav, audio_format, timeout_seconds=self._timeout_seconds)
        name = f"speech.{audio_format}"
        yield Blob(name, content_type, audio)
        yield Output(
            {"audio": {"blob": name, "content_type": content_type, "format": audio_format}},
            {"characters": len(text)},
        )
