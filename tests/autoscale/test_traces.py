from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ferryman.autoscale import TraceError, load_trace, trace_from_arrays

HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens"
EXCERPT = Path(__file__).resolve().parents[1] / "data" / "azure-llm-2023-excerpt"  # tests/data/README.md


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_bytes(text.encode())
    return path


def test_load_trace_reads_azure_format_with_crlf_and_seven_fraction_digits(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"{HEADER}\r\n2023-11-16 18:15:46.6805900,374,44\r\n2023-11-16 18:15:50.9951690,396,109",
    )
    trace = load_trace(path)
    assert trace.name == "trace"
    assert trace.arrival_s.tolist() == pytest.approx([0.0, 4.314579])
    assert trace.prompt_tokens.tolist() == [374, 396]
    assert trace.output_tokens.tolist() == [44, 109]


def test_load_trace_sorts_rows_and_counts_from_the_earliest(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n2023-11-16 18:00:10,1,2\n2023-11-16 18:00:00,3,4\n")
    trace = load_trace(path)
    assert (trace.arrival_s.tolist(), trace.prompt_tokens.tolist()) == ([0.0, 10.0], [3, 1])


def test_load_trace_ignores_extra_columns_and_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "ContextTokens,TIMESTAMP,GeneratedTokens,x\n5,2023-11-16 18:00:00,6,y\n\n")
    trace = load_trace(path)
    assert (trace.prompt_tokens.tolist(), trace.output_tokens.tolist()) == ([5], [6])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            f"{HEADER}\n2023-11-16 18:00:00,1,2\n2023-11-16 18:00:01,1,-3\n",
            "line 3: negative GeneratedTokens -3",
        ),
        (f"{HEADER}\n2023-11-16 18:00:00,1.5,2\n", "line 2: ContextTokens must be a whole number, got '1.5'"),
        (f"{HEADER}\nyesterday,1,2\n", "line 2: unparseable TIMESTAMP 'yesterday'"),
        (
            "TIMESTAMP,ContextTokens\n2023-11-16 18:00:00,1\n",
            r"line 1: missing columns \['GeneratedTokens'\]",
        ),
        (f"{HEADER}\n2023-11-16 18:00:00,1\n", "line 2: missing GeneratedTokens"),
        ("", "line 1: empty file"),
        (f"{HEADER}\n", "line 2: no rows after the header"),
    ],
)
def test_load_trace_names_the_line_when_input_is_bad(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message):
        load_trace(write(tmp_path, text))


def test_load_trace_rejects_binary_garbage_as_trace_error(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_bytes(b"TIMESTAMP,ContextTokens,GeneratedTokens\n\xff\xfe\x00,1,2\n")
    with pytest.raises(TraceError, match="line 2"):
        load_trace(path)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_load_trace_raises_only_trace_error_for_any_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "t.csv"
        path.write_text(f"{HEADER}\n{text}", encoding="utf-8", errors="surrogatepass")
        try:
            trace = load_trace(path)
        except TraceError:
            return
        assert np.all(trace.prompt_tokens >= 0) and np.all(trace.arrival_s >= 0)


def test_trace_window_rebases_arrivals() -> None:
    trace = trace_from_arrays("t", [0.0, 5.0, 10.0, 15.0], [1, 2, 3, 4], [1, 1, 1, 1])
    part = trace.window(5.0, 15.0)
    assert (part.arrival_s.tolist(), part.prompt_tokens.tolist()) == ([0.0, 5.0], [2, 3])


def test_trace_from_arrays_rejects_mismatched_columns() -> None:
    with pytest.raises(TraceError, match="columns differ in length"):
        trace_from_arrays("t", [0.0, 1.0], [1], [1, 2])


@pytest.mark.parametrize(
    ("trace_file", "jobs", "tokens"),
    [
        ("AzureLLMInferenceTrace_conv.csv", 4424, (5_188_168, 1_125_283)),
        ("AzureLLMInferenceTrace_code.csv", 2598, (5_217_159, 75_137)),
    ],
)
def test_load_trace_reads_the_shipped_azure_excerpt(
    trace_file: str, jobs: int, tokens: tuple[int, int]
) -> None:
    # rows and column sums as awk counts them: awk -F, 'NR>1{p+=$2;o+=$3;n++} END{print n,p,o}' FILE
    trace = load_trace(EXCERPT / trace_file)
    assert (trace.name, len(trace), round(trace.duration_s)) == (trace_file.removesuffix(".csv"), jobs, 900)
    assert (int(trace.prompt_tokens.sum()), int(trace.output_tokens.sum())) == tokens
