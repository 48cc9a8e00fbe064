"""Server-sent events as OpenAI-compatible servers stream them: just enough of the format to read `data:`."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

DONE = "[DONE]"


async def iter_sse_data(lines: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    """Yield the data of each event, its `data:` lines joined by newlines, including the final `[DONE]`.

    Comments and the `event:`, `id:` and `retry:` fields are skipped: no OpenAI-compatible server puts
    anything in them that a completion needs. An event still open at the end of the body is yielded too,
    because some servers close the stream without the blank line that should end the last event.
    """
    pending: list[str] = []
    async for line in lines:
        if not line:
            if pending:
                yield "\n".join(pending)
                pending.clear()
            continue
        if line.startswith("data:"):
            value = line[5:]
            pending.append(value[1:] if value.startswith(" ") else value)
    if pending:
        yield "\n".join(pending)
