"""Dispatch benchmark: sync jobs through the whole platform against the `echo` backend called directly.

    python bench/dispatch.py [--seconds 8] [--json bench/results/dispatch.json]

Starts, in one process tree, `ferryman serve` with `echo` workers and a bare HTTP endpoint around the same
`echo` backend (bench/echo_direct.py), then drives both with the same asyncio client, interleaved: concurrency 1
(latency) and 64 (throughput). Prints jobs/s and the latency Ferryman adds over the direct call (p50, p99).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.processes import FerrymanServer, free_port, wait_until  # noqa: E402

from bench.loadgen import run_load  # noqa: E402

BODY = {"task": "chat", "model": "echo-1", "input": {"messages": [{"role": "user", "content": "ping pong"}]}}


async def drive(
    url: str, body: dict[str, Any], headers: dict[str, str], concurrency: int, seconds: float
) -> dict[str, Any]:
    result = await run_load(url, body, headers=headers, concurrency=concurrency, seconds=seconds)
    return result.summary()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="Seconds per measurement.")
    parser.add_argument("--workers", type=int, default=1, help="Echo worker processes.")
    parser.add_argument("--slots", type=int, default=64, help="Slots per echo worker.")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "dispatch.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ferryman-bench-") as tmp:
        server = FerrymanServer(Path(tmp) / "server", env={"FERRYMAN_LOG_LEVEL": "warning"})
        direct_port = free_port()
        direct = subprocess.Popen([sys.executable, str(ROOT / "bench" / "echo_direct.py"), str(direct_port)])
        try:
            server.start()
            for i in range(args.workers):
                server.start_worker(slots=args.slots, worker_id=f"bench-{i}")
            direct_url = f"http://127.0.0.1:{direct_port}"
            wait_until(lambda: _up(direct_url), timeout_s=20, what="the direct echo endpoint")
            results = asyncio.run(_measure(server, direct_url, args.seconds))
        finally:
            direct.terminate()
            direct.wait(timeout=10)
            server.stop()
    _report(results, args.json)


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def _measure(server: FerrymanServer, direct_url: str, seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    ferryman_body = {**BODY, "wait": 30}
    auth = {"Authorization": f"Bearer {server.token}"}
    for concurrency in (1, 64):
        results[f"direct_c{concurrency}"] = await drive(direct_url + "/run", BODY, {}, concurrency, seconds)
        results[f"ferryman_c{concurrency}"] = await drive(
            server.url + "/v1/jobs", ferryman_body, auth, concurrency, seconds
        )
    return results


def _report(results: dict[str, Any], path: Path) -> None:
    print(f"\nDispatch benchmark on {os.cpu_count()} cores (echo backend; same client for both paths)\n")
    print(f"{'path':<14}{'conc':>5}{'jobs/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for concurrency in (1, 64):
        for name in ("direct", "ferryman"):
            r = results[f"{name}_c{concurrency}"]
            print(
                f"{name:<14}{concurrency:>5}{r['per_second']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
                f"{r['errors']:>8}"
            )
    summary = {}
    for concurrency in (1, 64):
        d, f = results[f"direct_c{concurrency}"], results[f"ferryman_c{concurrency}"]
        summary[f"c{concurrency}"] = {
            "added_p50_ms": f["p50_ms"] - d["p50_ms"],
            "added_p99_ms": f["p99_ms"] - d["p99_ms"],
            "throughput_ratio_vs_direct": f["per_second"] / d["per_second"],
        }
    print("\nadded by Ferryman over the direct call:")
    for key, s in summary.items():
        print(
            f"  {key}: p50 +{s['added_p50_ms']:.2f} ms, p99 +{s['added_p99_ms']:.2f} ms, "
            f"throughput {s['throughput_ratio_vs_direct']:.2f}x of direct"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"results": results, "summary": summary}, indent=2))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
