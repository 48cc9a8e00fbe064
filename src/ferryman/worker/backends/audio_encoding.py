"""Encoding and decoding audio with ffmpeg (a subprocess, so the event loop never blocks on it)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil

from ferryman.worker.backends.base import BackendError

# format → (ffmpeg output arguments, content type); wav passes through untouched
FORMATS: dict[str, tuple[list[str], str]] = {
    "mp3": (["-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"], "audio/mpeg"),
    "opus": (["-c:a", "libopus", "-b:a", "32k", "-f", "ogg"], "audio/ogg"),
    "aac": (["-c:a", "aac", "-b:a", "64k", "-f", "adts"], "audio/aac"),
    "flac": (["-c:a", "flac", "-f", "flac"], "audio/flac"),
    "pcm": (["-ar", "24000", "-ac", "1", "-f", "s16le"], "audio/pcm"),
    "wav": ([], "audio/wav"),
}


def has_ffmpeg() -> bool:
    return shutil.which("ffmpeg") is not None


async def run_tool(argv: list[str], data: bytes, *, timeout_seconds: float, what: str) -> bytes:
    """Feed `data` to a command's stdin and return its stdout; kill it if the job goes away or time runs out."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(data), timeout_seconds)
    except TimeoutError:
        raise BackendError(
            "engine_timeout", f"{what} took longer than {timeout_seconds:g}s", retryable=True
        ) from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise BackendError("invalid_input", f"{what} failed: {tail[0]}")
    return out


async def encode(wav: bytes, audio_format: str, *, timeout_seconds: float = 60.0) -> tuple[bytes, str]:
    """WAV bytes in the requested format: (bytes, content type). Raises BackendError `unsupported`."""
    if audio_format not in FORMATS:
        raise BackendError("unsupported", f"audio format {audio_format!r} is not one of {sorted(FORMATS)}")
    args, content_type = FORMATS[audio_format]
    if not args:
        return wav, content_type
    if not has_ffmpeg():
        raise BackendError(
            "unsupported", f"format {audio_format!r} needs ffmpeg on the worker; wav works without"
        )
    argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "wav", "-i", "pipe:0", *args, "pipe:1"]
    return await run_tool(
        argv, wav, timeout_seconds=timeout_seconds, what=f"ffmpeg ({audio_format})"
    ), content_type


async def decode_pcm16k(audio: bytes, *, timeout_seconds: float = 60.0) -> bytes:
    """Any audio ffmpeg reads, as 16 kHz mono signed 16-bit PCM (what speech recognisers want)."""
    argv = [
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        "pipe:0",
        "-ar",
        "16000",
        "-ac",
        "1",
        "-f",
        "s16le",
        "pipe:1",
    ]
    return await run_tool(argv, audio, timeout_seconds=timeout_seconds, what="ffmpeg (decode)")
