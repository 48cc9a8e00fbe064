"""Ferryman's overhead and throughput beside LiteLLM's proxy, in one run (`make bench`; see bench/README.md).

    python -m bench.suite [--quick] [--no-litellm] [--only latency,streaming,throughput,memory,scale]

Starts the fake upstream (bench/upstream.py), Ferryman (`ferryman serve` and one `openai-upstream` worker) and,
when its venv exists, LiteLLM's proxy, then runs measures 1–4 against all three paths and measure 5 against a
second Ferryman with simulated workers. Prints one table per measure, writes bench/results/latest.json and PNG
plots beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from tests.e2e.processes import FerrymanServer, free_port

from bench import measures, procs, profile, report, scale
from bench.measures import Target

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LITELLM_BIN = ROOT / "bench" / ".venv-litellm" / "bin" / "litellm"
MODEL = "fake-model"
MESSAGES = [{"role": "user", "content": "ping"}]
MEASURES = ("latency", "streaming", "throughput", "memory", "scale")


@dataclass(frozen=True)
class Plan:
    """How long each measure runs; the full plan fits `make bench` in under 10 minutes on 2 cores."""

    rounds: int = 5
    latency_slice_s: float = 1.5
    stream_concurrency: int = 8
    stream_rounds: int = 3
    stream_slice_s: float = 3.0
    stream_tokens: int = 200
    token_interval_ms: float = 10.0
    throughput_s: float = 10.0
    throughput_connections: int = 64
    memory_marks: tuple[int, ...] = (10_000, 100_000)
    litellm_memory_marks: tuple[int, ...] = (10_000, 100_000)
    memory_budget_s: float = 210.0  # ~500 req/s reaches the 100,000 mark; the suite stays under 10 min
    litellm_memory_budget_s: float = 60.0
    scale_workers: tuple[int, ...] = (1, 100, 1000)
    scale_s: float = 5.0
    scale_queued: int = 100_000


QUICK = Plan(
    rounds=1,
    latency_slice_s=0.5,
    stream_concurrency=2,
    stream_rounds=1,
    stream_slice_s=0.3,
    stream_tokens=20,
    token_interval_ms=2.0,
    throughput_s=1.0,
    throughput_connections=8,
    memory_marks=(200, 400),
    litellm_memory_marks=(200, 400),
    memory_budget_s=5.0,
    litellm_memory_budget_s=5.0,
    scale_workers=(1, 10),
    scale_s=0.5,
    scale_queued=300,
)


def ferryman_target(server: FerrymanServer, processes: dict[str, int]) -> Target:
    """The OpenAI-compatible surface when this build has it (the fair match for LiteLLM), else the native API."""
    auth = {"Authorization": f"Bearer {server.token}"}
    if find_spec("ferryman.api.openai") is not None:
        body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 16}
        return Target(
            "ferryman",
            server.url + "/openai/v1/chat/completions",
            body,
            {**body, "stream": True},
            auth,
            processes,
        )
    body = {"task": "chat", "model": MODEL, "input": {"messages": MESSAGES, "max_tokens": 16}, "wait": 30}
    return Target("ferryman", server.url + "/v1/jobs", body, {**body, "stream": True}, auth, processes)


def openai_target(name: str, base: str, headers: dict[str, str], processes: dict[str, int]) -> Target:
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 16}
    return Target(name, base + "/chat/completions", body, {**body, "stream": True}, headers, processes)


@contextlib.contextmanager
def gateways(plan: Plan, work: Path, *, with_litellm: bool) -> Iterator[list[Target]]:
    """The fake upstream and the gateways in front of it, running; the direct target first."""
    port = free_port()
    upstream = procs.start_upstream(
        port, work, stream_tokens=plan.stream_tokens, token_interval_ms=plan.token_interval_ms
    )
    upstream_url = f"http://127.0.0.1:{port}/v1"
    server = FerrymanServer(work / "ferryman", env={"FERRYMAN_LOG_LEVEL": "warning"})
    litellm: procs.Spawned | None = None
    try:
        server.start()
        worker = server.start_worker(
            backend="openai-upstream",
            models=(MODEL,),
            slots=256,
            worker_id="bench",
            extra=["--upstream-url", upstream_url],
        )
        assert server.proc is not None
        targets = [openai_target("direct", upstream_url, {}, {"upstream": upstream.pid})]
        if with_litellm:
            litellm, key = procs.start_litellm(LITELLM_BIN, free_port(), upstream_url, MODEL, work)
            base = f"http://127.0.0.1:{litellm.argv[litellm.argv.index('--port') + 1]}/v1"
            targets.append(
                openai_target("litellm", base, {"Authorization": f"Bearer {key}"}, {"proxy": litellm.pid})
            )
        targets.append(ferryman_target(server, {"serve": server.proc.pid, "worker": worker.pid}))
        yield targets
    finally:
        if litellm is not None:
            litellm.stop()
        server.stop()
        upstream.stop()


def run_gateway_measures(
    plan: Plan, work: Path, *, only: set[str], with_litellm: bool, profile_dir: Path | None
) -> dict[str, Any]:
    results: dict[str, Any] = {"samples": {}}
    with gateways(plan, work, with_litellm=with_litellm) as targets:
        results["paths"] = {t.name: t.url for t in targets}
        if "latency" in only:
            results["latency"], results["samples"]["latency"] = {}, {}
            for conc in (1, 32):
                print(f"1. latency at concurrency {conc} …", flush=True)
                got = asyncio.run(
                    measures.latency(
                        targets, concurrency=conc, rounds=plan.rounds, slice_s=plan.latency_slice_s
                    )
                )
                results["latency"][f"c{conc}"] = {name: r.summary() for name, r in got.items()}
                results["samples"]["latency"][f"c{conc}"] = {name: r.latencies_ms for name, r in got.items()}
        if "streaming" in only:
            print("2. streaming …", flush=True)
            got_s = asyncio.run(
                measures.streaming(
                    targets,
                    concurrency=plan.stream_concurrency,
                    rounds=plan.stream_rounds,
                    slice_s=plan.stream_slice_s,
                )
            )
            results["streaming"] = {name: s.summary(plan.stream_tokens) for name, s in got_s.items()}
            results["samples"]["streaming"] = {
                name: ([x.ttft_ms for x in s.streams if x.tokens], [g for x in s.streams for g in x.gaps_ms])
                for name, s in got_s.items()
            }
        if "throughput" in only:
            results.update(throughput_all(plan, targets, profile_dir))
        if "memory" in only:
            results["memory"] = {}
            for target in targets[1:]:
                is_litellm = target.name == "litellm"
                marks = plan.litellm_memory_marks if is_litellm else plan.memory_marks
                budget_s = plan.litellm_memory_budget_s if is_litellm else plan.memory_budget_s
                print(
                    f"4. memory of {target.name} over {marks[-1]:,} requests (at most {budget_s:.0f} s) …",
                    flush=True,
                )
                results["memory"][target.name] = asyncio.run(
                    measures.memory(target, marks=marks, connections=32, budget_s=budget_s)
                )
    return results


def throughput_all(plan: Plan, targets: list[Target], profile_dir: Path | None) -> dict[str, Any]:
    """Measure 3 for every target, the direct one (the upstream alone) first; py-spy on Ferryman if asked."""
    results: dict[str, Any] = {"throughput": {}}
    for target in targets:
        print(f"3. throughput of {target.name} on one core …", flush=True)
        profilers = []
        if profile_dir is not None and target.name == "ferryman":
            profilers = profile.record(target.processes, profile_dir, seconds=plan.throughput_s)
        results["throughput"][target.name] = measures.throughput(
            target,
            upstream_root=targets[0].roots[0],
            seconds=plan.throughput_s,
            connections=plan.throughput_connections,
        )
        for profiler in profilers:
            profiler.wait(timeout=60)
        if profilers and profile_dir is not None:
            results["profile"] = {
                name: profile.summarise(profile_dir / f"{name}.folded") for name in target.processes
            }
    return results


def run_scale(plan: Plan, work: Path) -> dict[str, Any]:
    print("5. dispatch at scale …", flush=True)
    env = {"FERRYMAN_LOG_LEVEL": "warning", "FERRYMAN_BACKLOG_CAP": str(2 * plan.scale_queued)}
    server = FerrymanServer(work / "scale", env=env)
    try:
        server.start()
        return asyncio.run(
            scale.measure(
                server, ROOT, worker_counts=plan.scale_workers, seconds=plan.scale_s, queued=plan.scale_queued
            )
        )
    finally:
        server.stop()


def environment(plan: Plan, with_litellm: bool) -> dict[str, Any]:
    litellm_version = None
    if with_litellm:
        pip = LITELLM_BIN.parent / "pip"
        out = subprocess.run(
            [str(pip), "show", "litellm"], capture_output=True, text=True, check=False
        ).stdout
        litellm_version = next((ln.split()[-1] for ln in out.splitlines() if ln.startswith("Version:")), None)
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "litellm": litellm_version,
        "load_average_before": os.getloadavg(),
        "plan": asdict(plan),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="Tiny durations: proves the harness works (CI).")
    parser.add_argument("--no-litellm", action="store_true", help="Skip LiteLLM even if its venv exists.")
    parser.add_argument("--only", default=",".join(MEASURES), help=f"Comma list of {MEASURES}.")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Directory for latest.json and the plots.")
    parser.add_argument("--memory-requests", type=int, help="Override the last memory mark for Ferryman.")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="Attach py-spy to Ferryman's processes during the throughput run (folded stacks "
        "and a summary go beside latest.json).",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    if args.memory_requests:
        plan = replace(plan, memory_marks=(plan.memory_marks[0], args.memory_requests))
    only = {m.strip() for m in args.only.split(",") if m.strip()}
    with_litellm = not args.no_litellm and LITELLM_BIN.exists()
    if not with_litellm and not args.no_litellm:
        print(
            f"LiteLLM not found at {LITELLM_BIN} (make bench installs it); measuring without it", flush=True
        )
    began = time.perf_counter()
    results: dict[str, Any] = {"environment": environment(plan, with_litellm)}
    with tempfile.TemporaryDirectory(prefix="ferryman-bench-") as tmp:
        work = Path(tmp)
        if only & {"latency", "streaming", "throughput", "memory"}:
            profile_dir = args.out / "profile" if args.profile else None
            results.update(
                run_gateway_measures(
                    plan, work, only=only, with_litellm=with_litellm, profile_dir=profile_dir
                )
            )
        if "scale" in only:
            results["scale"] = run_scale(plan, work)
    results["environment"]["load_average_after"] = os.getloadavg()
    results["environment"]["seconds"] = time.perf_counter() - began
    results["goals"] = report.goals(results)
    return write(results, args.out)


def write(results: dict[str, Any], out: Path) -> dict[str, Any]:
    samples = results.pop("samples", {})
    sections = [
        (report.latency_table, "latency"),
        (report.streaming_table, "streaming"),
        (report.throughput_table, "throughput"),
        (report.memory_table, "memory"),
        (report.scale_table, "scale"),
    ]
    text = "\n".join(render(results[key]) for render, key in sections if results.get(key))
    text += "\n" + report.goals_table(results["goals"])
    for name, summary in results.get("profile", {}).items():
        text += "\n" + report.profile_table(name, summary)
    env = results["environment"]
    text += (
        f"\n{env['date']} on {env['cpu']} ({env['cores']} cores), load average before "
        f"{env['load_average_before'][0]:.2f}, after {env['load_average_after'][0]:.2f}; "
        f"took {env['seconds']:.0f} s\n"
    )
    print("\n" + text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "latest.md").write_text(text)
    plots = report.plot(samples, out)
    print(f"wrote {out / 'latest.json'}, {out / 'latest.md'} and {', '.join(p.name for p in plots)}")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
