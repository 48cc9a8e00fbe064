"""The llama.cpp side of the `llamacpp` backend: one loaded model and the blocking work done on it.

Every method here blocks (it runs the model in C) and is meant to run in a worker thread. llama.cpp is an
optional dependency, so this module imports it only when a model is loaded, and says how to install it.
"""

from __future__ import annotations

import codecs
import contextlib
import importlib
import json
import math
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferryman.errors import ConfigError
from ferryman.worker.backends.base import BackendError

INSTALL_HINT = "install the local model support with: pip install 'ferryman[local-model]'"


def import_llama_cpp() -> Any:
    """The `llama_cpp` module; raises ConfigError with the install command when it is missing."""
    try:
        return importlib.import_module("llama_cpp")
    except ImportError as exc:
        raise ConfigError(f"the llamacpp backend needs llama-cpp-python ({exc}); {INSTALL_HINT}") from None


@dataclass(frozen=True, slots=True)
class Sampling:
    """What decides the next token. Defaults are llama.cpp server's, which suit small local models."""

    max_tokens: int | None = None
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    seed: int | None = None
    stop: tuple[str, ...] = ()
    is_json: bool = False
    json_schema: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Finished:
    """The last item a generation yields: why it stopped, and the token counts llama.cpp's tokenizer gave."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(slots=True)
class StopScanner:
    """Cuts generated text at the first stop sequence, holding back any tail that may be the start of one.

    Without the hold-back, a stream would show the first characters of a stop sequence that the final
    output then leaves out.
    """

    stops: tuple[str, ...]
    text: str = ""
    emitted: int = 0
    longest: int = field(init=False)

    def __post_init__(self) -> None:
        self.stops = tuple(s for s in self.stops if s)
        self.longest = max((len(s) for s in self.stops), default=0)

    def push(self, new: str) -> tuple[str, bool]:
        """Add generated text; return the text now safe to show, and whether a stop sequence was reached."""
        self.text += new
        start = max(0, self.emitted - self.longest)
        hits = [i for i in (self.text.find(s, start) for s in self.stops) if i >= 0]
        end = min(hits) if hits else len(self.text) - self._held_back()
        if hits:
            self.text = self.text[:end]
        end = max(end, self.emitted)
        piece, self.emitted = self.text[self.emitted : end], end
        return piece, bool(hits)

    def rest(self) -> str:
        piece, self.emitted = self.text[self.emitted :], len(self.text)
        return piece

    def _held_back(self) -> int:
        held = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(self.text)), held, -1):
                if self.text.endswith(stop[:size]):
                    held = size
                    break
        return held


class LlamaEngine:
    """One `llama_cpp.Llama`; safe to call from several threads, which it serves one at a time."""

    def __init__(self, lib: Any, llm: Any) -> None:
        self._lib, self._llm = lib, llm
        self._lock = threading.Lock()
        self._vocab = lib.llama_model_get_vocab(llm.model)
        self._formatter = _chat_formatter(lib, llm)

    @classmethod
    def load(cls, path: Path, *, n_ctx: int, n_threads: int, embedding: bool) -> LlamaEngine:
        """Load the GGUF file; raises BackendError (retryable: another worker may have a sound copy)."""
        lib = import_llama_cpp()
        # one sequence at a time, so one batch may hold the whole context: embedding inputs are never split
        batch = {"n_batch": n_ctx, "n_ubatch": n_ctx} if embedding else {}
        try:
            llm = lib.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                embedding=embedding,
                verbose=False,
                **batch,
            )
        except (ValueError, RuntimeError) as exc:
            raise BackendError(
                "model_load_failed", f"llama.cpp could not load {path.name}: {exc}", retryable=True
            ) from None
        return cls(lib, llm)

    @property
    def n_ctx(self) -> int:
        return int(self._llm.n_ctx())

    @property
    def n_embd(self) -> int:
        return int(self._llm.n_embd())

    def close(self) -> None:
        """Free the model once the generation in progress, if any, has stopped."""
        with self._lock:
            self._llm.close()

    def chat(
        self, messages: list[dict[str, Any]], sampling: Sampling, stop: threading.Event
    ) -> Iterator[str | Finished]:
        """Yield text pieces of the assistant's reply, then `Finished`; returns early once `stop` is set."""
        with self._lock:
            try:
                # the template is code from the model file: whatever it raises means it refused these messages
                rendered = self._formatter(messages=messages)
            except Exception as exc:
                raise BackendError(
                    "invalid_input",
                    f"the model's chat template rejected the messages: {exc}",
                    retryable=False,
                ) from None
            tokens = self._llm.tokenize(
                rendered.prompt.encode(), add_bos=not rendered.added_special, special=True
            )
            extra_stops = [rendered.stop] if isinstance(rendered.stop, str) else list(rendered.stop or ())
            yield from self._generate(tokens, sampling, (*sampling.stop, *extra_stops), stop)

    def complete(self, prompt: str, sampling: Sampling, stop: threading.Event) -> Iterator[str | Finished]:
        with self._lock:
            tokens = self._llm.tokenize(prompt.encode(), add_bos=True, special=True)
            yield from self._generate(tokens, sampling, sampling.stop, stop)

    def embed(self, texts: Sequence[str]) -> tuple[list[list[float]], int]:
        """Mean-pooled, L2-normalised vectors, and the number of tokens read."""
        with self._lock:
            for text in texts:
                size = len(self._llm.tokenize(text.encode(), add_bos=True, special=False))
                if size > self.n_ctx:
                    raise _too_long(size, self.n_ctx)
            vectors, count = self._llm.embed(list(texts), truncate=False, return_count=True)
            is_per_token = self._llm.pooling_type() == self._lib.LLAMA_POOLING_TYPE_NONE
        # a chat model pools nothing (llama.cpp returns a vector per token): mean-pool here rather than force
        # a pooling type, which llama.cpp warns about on stderr. Embedding models arrive pooled.
        return [_normalized(_mean(v) if is_per_token else v) for v in vectors], int(count)

    def _generate(
        self, tokens: list[int], sampling: Sampling, stops: Sequence[str], stop: threading.Event
    ) -> Iterator[str | Finished]:
        room = self.n_ctx - len(tokens)
        if room <= 0:
            raise _too_long(len(tokens), self.n_ctx)
        limit = room if sampling.max_tokens is None else min(sampling.max_tokens, room)
        self._llm.set_seed(sampling.seed if sampling.seed is not None else random.randrange(2**31))
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        scanner = StopScanner(tuple(stops))
        count, finish_reason = 0, "length"
        generated = self._llm.generate(
            tokens,
            temp=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            min_p=sampling.min_p,
            repeat_penalty=1.0,
            grammar=self._grammar(sampling),
        )
        with contextlib.closing(generated):
            for token in generated if limit > 0 else ():
                if stop.is_set():
                    return
                if self._lib.llama_vocab_is_eog(self._vocab, token):
                    finish_reason = "stop"
                    break
                count += 1
                piece, is_stopped = scanner.push(decoder.decode(self._llm.detokenize([token])))
                if piece:
                    yield piece
                if is_stopped:
                    yield Finished("stop", len(tokens), count)
                    return
                if count >= limit:
                    break
        piece, is_stopped = scanner.push(decoder.decode(b"", final=True))
        if tail := piece + ("" if is_stopped else scanner.rest()):
            yield tail
        yield Finished("stop" if is_stopped else finish_reason, len(tokens), count)

    def _grammar(self, sampling: Sampling) -> Any:
        if not sampling.is_json:
            return None
        grammar = self._lib.llama_grammar
        try:
            if sampling.json_schema is not None:
                return grammar.LlamaGrammar.from_json_schema(json.dumps(sampling.json_schema), verbose=False)
            return grammar.LlamaGrammar.from_string(grammar.JSON_GBNF, verbose=False)
        except (
            Exception
        ) as exc:  # the converter raises many kinds; all mean "this schema cannot be a grammar"
            raise BackendError(
                "unsupported",
                f"llama.cpp cannot turn this JSON schema into a grammar: {exc}",
                retryable=False,
            ) from None


def _chat_formatter(lib: Any, llm: Any) -> Any:
    """The model's own chat template from its GGUF metadata, or ChatML for a model that ships none."""
    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        return lib.llama_chat_format.format_chatml
    eos = llm.detokenize([llm.token_eos()], special=True).decode("utf-8", "replace")
    bos = llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "replace")
    return lib.llama_chat_format.Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)


def _too_long(tokens: int, n_ctx: int) -> BackendError:
    return BackendError(
        "context_length_exceeded",
        f"the input is {tokens} tokens; this model's context holds {n_ctx}",
        retryable=False,
    )


def _mean(rows: list[list[float]]) -> list[float]:
    return [math.fsum(column) / len(rows) for column in zip(*rows, strict=True)]


def _normalized(vector: list[float]) -> list[float]:
    norm = math.sqrt(math.fsum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]
