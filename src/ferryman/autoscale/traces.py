"""Request traces: the CSV files the simulator replays (Azure LLM inference trace format).

A trace is untrusted input, so the loader checks every row and names the line it rejects: a
simulation fed a silently mangled trace produces numbers nobody should publish.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

import numpy as np
import numpy.typing as npt

from ferryman.errors import InvalidRequest

TIMESTAMP_COLUMN = "TIMESTAMP"
PROMPT_COLUMN = "ContextTokens"
OUTPUT_COLUMN = "GeneratedTokens"
REQUIRED_COLUMNS = (TIMESTAMP_COLUMN, PROMPT_COLUMN, OUTPUT_COLUMN)


class TraceError(InvalidRequest, ValueError):
    """A trace file that cannot be replayed; the message names the offending line. Still a ValueError, so
    callers that caught that before keep working."""


@dataclass(frozen=True, slots=True, eq=False)
class Trace:
    """One job per row, sorted by arrival.

    `arrival_s` counts seconds from the earliest row; token counts are non-negative integers.
    The arrays are read-only so a trace can be shared by many simulations.
    """

    name: str
    arrival_s: npt.NDArray[np.float64]
    prompt_tokens: npt.NDArray[np.int64]
    output_tokens: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])

    @property
    def duration_s(self) -> float:
        return float(self.arrival_s[-1]) if len(self) else 0.0

    def window(self, start_s: float, end_s: float) -> Trace:
        """The jobs arriving in [start_s, end_s), re-based so the first window second is 0."""
        lo, hi = np.searchsorted(self.arrival_s, [start_s, end_s])
        return trace_from_arrays(
            self.name,
            self.arrival_s[lo:hi] - start_s,
            self.prompt_tokens[lo:hi],
            self.output_tokens[lo:hi],
        )


def trace_from_arrays(
    name: str,
    arrival_s: npt.ArrayLike,
    prompt_tokens: npt.ArrayLike,
    output_tokens: npt.ArrayLike,
) -> Trace:
    """Build a trace from columns (used by tests and synthetic workloads); sorts by arrival.

    Raises TraceError if the columns differ in length, are not one-dimensional, or hold negative
    token counts or non-finite arrivals.
    """
    arrivals = np.asarray(arrival_s, dtype=np.float64)
    prompts = np.asarray(prompt_tokens, dtype=np.int64)
    outputs = np.asarray(output_tokens, dtype=np.int64)
    if arrivals.ndim != 1 or not arrivals.shape == prompts.shape == outputs.shape:
        raise TraceError(
            f"columns differ in length: {arrivals.shape[0]} arrivals, "
            f"{prompts.shape[0]} prompt counts, {outputs.shape[0]} output counts"
        )
    if arrivals.size and (np.any(prompts < 0) or np.any(outputs < 0) or not np.all(np.isfinite(arrivals))):
        raise TraceError("token counts must be non-negative and arrivals finite")
    order = np.argsort(arrivals, kind="stable")
    arrivals = arrivals[order]
    if arrivals.size:
        arrivals = arrivals - arrivals[0]
    return _frozen(name, arrivals, prompts[order], outputs[order])


def load_trace(path: Path) -> Trace:
    """Read a trace CSV with columns TIMESTAMP, ContextTokens, GeneratedTokens (others are ignored).

    Timestamps are ISO-like (`2023-11-16 18:15:46.6805900`; extra fractional digits are truncated to
    microseconds). Rows are sorted by time, so a slightly out-of-order trace still replays.
    Raises TraceError naming the line for a missing column, a bad timestamp, a token count that is
    negative or not an integer, text that is not UTF-8 CSV, and for a file with no rows.
    Raises OSError if the file cannot be read.
    """
    stamps, prompts, outputs = _parse_rows(io.StringIO(_decode(path.read_bytes()), newline=""))
    start = min(stamps)
    arrivals = np.fromiter(((s - start).total_seconds() for s in stamps), float, len(stamps))
    return trace_from_arrays(path.stem, arrivals, np.asarray(prompts), np.asarray(outputs))


def _parse_rows(handle: TextIO) -> tuple[list[datetime], list[int], list[int]]:
    reader = csv.reader(handle)
    stamps: list[datetime] = []
    prompts: list[int] = []
    outputs: list[int] = []
    try:
        columns = _parse_header(next(reader, None))
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            line = reader.line_num
            cells = [_cell(row, columns[name], name, line) for name in REQUIRED_COLUMNS]
            stamps.append(_parse_timestamp(cells[0], line))
            prompts.append(_parse_tokens(cells[1], PROMPT_COLUMN, line))
            outputs.append(_parse_tokens(cells[2], OUTPUT_COLUMN, line))
    except csv.Error as exc:
        raise TraceError(f"line {reader.line_num}: not a readable CSV row ({exc})") from None
    if not stamps:
        raise TraceError("line 2: no rows after the header")
    return stamps, prompts, outputs


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TraceError(f"line {line}: not UTF-8 text (byte {data[exc.start]:#04x})") from None


def _parse_header(header: list[str] | None) -> dict[str, int]:
    if header is None:
        raise TraceError("line 1: empty file; expected a header TIMESTAMP,ContextTokens,GeneratedTokens")
    columns = {name.strip(): index for index, name in enumerate(header)}
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise TraceError(f"line 1: missing columns {missing}; got {[name.strip() for name in header]}")
    return columns


def _cell(row: list[str], index: int, name: str, line: int) -> str:
    if index >= len(row):
        raise TraceError(f"line {line}: missing {name} (row has {len(row)} fields)")
    return row[index].strip()


def _parse_timestamp(text: str, line: int) -> datetime:
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise TraceError(
            f"line {line}: unparseable TIMESTAMP {text!r}; expected like 2023-11-16 18:15:46.6805900"
        ) from None
    # mixing aware and naive stamps would fail later with a TypeError and no line number
    return stamp.replace(tzinfo=None) if stamp.tzinfo is None else _naive_utc(stamp)


def _naive_utc(stamp: datetime) -> datetime:
    offset = stamp.utcoffset()
    return (stamp - offset if offset is not None else stamp).replace(tzinfo=None)


def _parse_tokens(text: str, name: str, line: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise TraceError(f"line {line}: {name} must be a whole number, got {text!r}") from None
    if value < 0:
        raise TraceError(f"line {line}: negative {name} {value}")
    return value


def _frozen(
    name: str,
    arrivals: npt.NDArray[np.float64],
    prompts: npt.NDArray[np.int64],
    outputs: npt.NDArray[np.int64],
) -> Trace:
    for array in (arrivals, prompts, outputs):
        array.setflags(write=False)
    return Trace(name=name, arrival_s=arrivals, prompt_tokens=prompts, output_tokens=outputs)
