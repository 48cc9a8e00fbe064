"""`pocketsphinx`: transcription on the CPU with CMU PocketSphinx and the US English model its wheel ships.

Install with `pip install 'ferryman[local-model]'`. Audio in any format ffmpeg reads is decoded to 16 kHz mono
first. PocketSphinx is small and fast, and far less accurate than Whisper: it is the real engine that runs
anywhere; for quality, point the `openai-upstream` backend at a Whisper server (vLLM, whisper.cpp server,
faster-whisper-server, LocalAI).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ferryman.errors import ConfigError
from ferryman.protocol import ModelOffer
from ferryman.types import Task
from ferryman.worker.backends.audio_encoding import decode_pcm16k, has_ffmpeg
from ferryman.worker.backends.base import BackendError, BackendSettings, Chunk, Output, WorkItem

DEFAULT_MODELS = ("pocketsphinx-en-us",)
SAMPLE_RATE = 16000


class PocketSphinxBackend:
    name = "pocketsphinx"

    def __init__(self, settings: BackendSettings) -> None:
        if not has_ffmpeg():
            raise ConfigError("the pocketsphinx backend needs ffmpeg on PATH (apt-get install ffmpeg)")
        self._models = settings.models or DEFAULT_MODELS
        self._timeout_seconds = min(settings.timeout_seconds, 300.0)
        self._decoder: Any = None
        self._lock = threading.Lock()  # one decoder, one utterance at a time

    async def warm_up(self) -> None:
        await asyncio.to_thread(self._load)

    def _load(self) -> Any:
        if self._decoder is None:
            try:
                from pocketsphinx import Decoder  # an optional dependency, imported when the worker starts
            except ImportError:
                raise ConfigError(
                    "pocketsphinx is not installed; pip install 'ferryman[local-model]'"
                ) from None
            self._decoder = Decoder(samprate=SAMPLE_RATE)
        return self._decoder

    def offers(self) -> Sequence[ModelOffer]:
        return [ModelOffer(name=m, tasks=(Task.TRANSCRIPTION,)) for m in self._models]

    async def aclose(self) -> None:
        return None

    def _transcribe(self, pcm: bytes) -> str:
        with self._lock:
            decoder = self._load()
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            hypothesis = decoder.hyp()
            return str(hypothesis.hypstr) if hypothesis is not None else ""

    async def run(self, item: WorkItem) -> AsyncIterator[Chunk]:
        if item.task is not Task.TRANSCRIPTION:
            raise BackendError("unsupported", f"pocketsphinx transcribes; it cannot run {item.task.value}")
        language = item.payload.get("language")
        if language not in (None, "en", "en-us"):
            raise BackendError("unsupported", f"pocketsphinx here knows English only, not {language!r}")
        try:
            audio = base64.b64decode(str(item.payload.get("audio_b64", "")), validate=True)
        except binascii.Error:
            raise BackendError("invalid_input", "audio_b64 is not base64") from None
        if not audio:
            raise BackendError("invalid_input", "no audio was sent")
        pcm = await decode_pcm16k(audio, timeout_seconds=self._timeout_seconds)
        text = await asyncio.to_thread(self._transcribe, pcm)
        duration = round(len(pcm) / 2 / SAMPLE_RATE, 3)
        yield Output(
            {
                "text": text,
                "language": "en",
                "duration": duration,
                "segments": [{"id": 0, "start": 0.0, "end": duration, "text": text}],
            },
            {"seconds": duration},
        )
