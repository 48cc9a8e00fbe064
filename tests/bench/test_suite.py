"""The benchmark harness in its tiny mode: proves `make bench` still runs end to end, without LiteLLM."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_suite_writes_every_measure_and_plot(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.suite", "--quick", "--no-litellm", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    results = json.loads((tmp_path / "latest.json").read_text())
    assert set(results) >= {"environment", "latency", "streaming", "throughput", "memory", "scale", "goals"}
    assert {path: r["errors"] for path, r in results["latency"]["c1"].items()} == {"direct": 0, "ferryman": 0}
    assert {path: r["all_tokens_arrived"] for path, r in results["streaming"].items()} == {
        "direct": True,
        "ferryman": True,
    }
    assert results["throughput"]["ferryman"]["gateway_pinned"] is True
    assert results["scale"]["queued"]["submit_errors"] == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["latency.png", "streaming.png"]
