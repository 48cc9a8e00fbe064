from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ferryman.autoscale import POLICY_NAMES, simulate_app

runner = CliRunner()


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten minutes at about 3 jobs/s, written in the Azure trace format."""
    rng = np.random.default_rng(0)
    arrivals = np.cumsum(rng.exponential(1 / 3.0, 1800))
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for offset, prompt, output in zip(
        arrivals, rng.integers(50, 2000, 1800), rng.integers(5, 300, 1800), strict=True
    ):
        seconds = 46.6805900 + offset
        minute, second = 15 + int(seconds // 60), seconds % 60
        lines.append(f"2023-11-16 18:{minute:02d}:{second:010.7f},{prompt},{output}")
    path = tmp_path_factory.mktemp("traces") / "small.csv"
    path.write_text("\r\n".join(lines))
    return path


def test_simulate_json_prints_one_object_keyed_by_policy(trace_file: Path) -> None:
    result = runner.invoke(simulate_app, ["--trace", str(trace_file), "--json"])
    report = json.loads(result.stdout)
    assert (result.exit_code, list(report)) == (0, list(POLICY_NAMES))
    assert {
        "gpu_hours",
        "slo_attainment",
        "p95_wait_s",
        "cost_usd",
        "p50_wait_s",
        "p99_wait_s",
        "scale_events",
    } <= set(report["ferryman"])


def test_simulate_runs_only_the_named_policies(trace_file: Path) -> None:
    args = ["--trace", str(trace_file), "--json", "--policy", "fixed-peak", "--policy", "ferryman"]
    result = runner.invoke(simulate_app, args)
    assert list(json.loads(result.stdout)) == ["fixed-peak", "ferryman"]


def test_simulate_prints_a_table_and_the_comparison(trace_file: Path) -> None:
    result = runner.invoke(
        simulate_app, ["--trace", str(trace_file), "--policy", "ferryman", "--policy", "ray-serve"]
    )
    assert result.exit_code == 0
    assert "ray-serve" in result.stdout and "GPU-hours saved vs best baseline ray-serve" in result.stdout


def test_simulate_writes_fleet_and_wait_plots(trace_file: Path, tmp_path: Path) -> None:
    args = ["--trace", str(trace_file), "--json", "--policy", "ferryman", "--plot", str(tmp_path / "plots")]
    result = runner.invoke(simulate_app, args)
    written = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert (result.exit_code, written) == (0, ["small-fleet.png", "small-wait.png"])
    assert (tmp_path / "plots" / "small-fleet.png").read_bytes().startswith(b"\x89PNG")


def test_simulate_exits_2_naming_the_line_of_a_bad_trace(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00,1,2\n2023-11-16 18:00:01,5,-3\n"
    )
    result = runner.invoke(simulate_app, ["--trace", str(bad), "--json"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"error: {bad}: line 3: negative GeneratedTokens -3\n"


def test_simulate_exits_2_for_a_missing_trace(tmp_path: Path) -> None:
    result = runner.invoke(simulate_app, ["--trace", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2 and result.stderr.startswith("error: cannot read trace")


def test_simulate_exits_2_for_an_unknown_policy(trace_file: Path) -> None:
    result = runner.invoke(simulate_app, ["--trace", str(trace_file), "--policy", "hpa"])
    assert (result.exit_code, result.stderr.splitlines()[0]) == (
        2,
        f"error: unknown policies ['hpa']; known: {list(POLICY_NAMES)}",
    )
