"""Turning the suite's results into tables (Markdown, printed), the goal check, and PNG plots.

Every table puts the gateways side by side with the ratio Ferryman/LiteLLM; "added" always means the gateway's
figure minus the direct call's, measured in the same interleaved run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

Row = list[Any]
GATEWAYS = ("litellm", "ferryman")


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return "–" if value is None else str(value)


def table(title: str, header: list[str], rows: list[Row]) -> str:
    """A Markdown table, aligned so it also reads as plain text in a terminal."""
    cells = [header, *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return f"### {title}\n\n" + "\n".join(lines) + "\n"


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def added(value: dict[str, Any] | None, base: dict[str, Any], key: str) -> float | None:
    return None if value is None else value[key] - base[key]


def latency_table(latency: dict[str, dict[str, Any]]) -> str:
    rows: list[Row] = []
    for conc, by_path in latency.items():
        direct = by_path["direct"]
        for q in ("p50_ms", "p95_ms", "p99_ms"):
            gained = {g: added(by_path.get(g), direct, q) for g in GATEWAYS}
            rows.append(
                [
                    conc,
                    q.removesuffix("_ms"),
                    direct[q],
                    *(by_path.get(g, {}).get(q) for g in GATEWAYS),
                    gained["litellm"],
                    gained["ferryman"],
                    ratio(gained["ferryman"], gained["litellm"]),
                ]
            )
        rows.append(
            [
                conc,
                "req/s",
                direct["per_second"],
                *(by_path.get(g, {}).get("per_second") for g in GATEWAYS),
                None,
                None,
                ratio(by_path["ferryman"]["per_second"], by_path.get("litellm", {}).get("per_second")),
            ]
        )
    header = [
        "conc",
        "stat",
        "direct ms",
        "LiteLLM ms",
        "Ferryman ms",
        "LiteLLM added",
        "Ferryman added",
        "Ferryman/LiteLLM",
    ]
    return table("1. Added latency, non-streaming chat (ms; added = minus direct)", header, rows)


def streaming_table(streaming: dict[str, Any]) -> str:
    direct, rows = streaming["direct"], []
    for key in ("ttft_p50_ms", "ttft_p99_ms", "gap_p50_ms", "gap_p99_ms"):
        gained = {g: added(streaming.get(g), direct, key) for g in GATEWAYS}
        rows.append(
            [
                key.removesuffix("_ms"),
                direct[key],
                *(streaming.get(g, {}).get(key) for g in GATEWAYS),
                gained["litellm"],
                gained["ferryman"],
                ratio(gained["ferryman"], gained["litellm"]),
            ]
        )
    for key in ("streams", "errors", "all_tokens_arrived"):
        rows.append([key, direct[key], *(streaming.get(g, {}).get(key) for g in GATEWAYS), None, None, None])
    header = ["stat", "direct", "LiteLLM", "Ferryman", "LiteLLM added", "Ferryman added", "Ferryman/LiteLLM"]
    return table("2. Streaming (ms; added = minus direct)", header, rows)


def throughput_table(throughput: dict[str, Any]) -> str:
    up, lite, ferry = throughput["direct"], throughput.get("litellm"), throughput["ferryman"]
    rows: list[Row] = []
    for key in (
        "per_second",
        "error_rate",
        "p50_ms",
        "p99_ms",
        "gateway_cpu_share",
        "gateway_core_busy",
        "client_core_busy",
        "peak_rss_mb",
        "requests",
    ):
        l_value = lite.get(key) if lite else None
        rows.append(
            [
                key,
                up.get(key),
                l_value,
                ferry.get(key),
                ratio(ferry.get(key), l_value),
                ratio(ferry.get(key), up.get(key)),
            ]
        )
    header = ["stat", "upstream alone", "LiteLLM", "Ferryman", "Ferryman/LiteLLM", "Ferryman/upstream"]
    return table(f"3. Throughput, gateway pinned to one core (client: {ferry.get('client')})", header, rows)


def memory_table(memory: dict[str, Any]) -> str:
    rows: list[Row] = []
    for label, index in (("first mark", 0), ("last mark", -1)):
        values, counts = [], []
        for g in GATEWAYS:
            after = memory.get(g, {}).get("rss_mb_after", {})
            count = sorted(after, key=int)[index] if after else None
            counts.append(f"{int(count):,}" if count else None)
            values.append(after.get(count) if count else None)
        rows.append([f"requests at {label}", *counts, None])
        rows.append([f"RSS MB at {label}", *values, ratio(values[1], values[0])])
    for name in sorted({n for r in memory.values() for n in r.get("rss_mb_by_process", {})}):
        values = [memory.get(g, {}).get("rss_mb_by_process", {}).get(name) for g in GATEWAYS]
        rows.append([f"RSS MB of {name} at the end", *values, None])
    for key in ("growth_mb", "peak_rss_mb", "errors", "seconds"):
        values = [memory.get(g, {}).get(key) for g in GATEWAYS]
        rows.append([key, *values, ratio(values[1], values[0])])
    return table(
        "4. Memory of the gateway's processes", ["stat", "LiteLLM", "Ferryman", "Ferryman/LiteLLM"], rows
    )


def scale_table(scale: dict[str, Any]) -> str:
    rows: list[Row] = []
    for key, r in scale.items():
        if key.startswith("workers_"):
            rows.append(
                [
                    key.removeprefix("workers_"),
                    r["per_second"],
                    r["p50_ms"],
                    r["p99_ms"],
                    r["dispatch_p50_ms"],
                    r["dispatch_p99_ms"],
                    r["errors"],
                ]
            )
    header = ["workers", "jobs/s", "e2e p50 ms", "e2e p99 ms", "dispatch p50 ms", "dispatch p99 ms", "errors"]
    text = table("5. Dispatch at scale (Ferryman only: LiteLLM has no queue or workers)", header, rows)
    q = scale.get("queued")
    if q:
        text += table(
            f"5b. With {q['queued']:,} batch jobs queued, drained by 100 workers",
            ["stat", "value"],
            [
                ["submit jobs/s (into the queue)", q["submit_per_second"]],
                ["submit errors", q["submit_errors"]],
                ["drain jobs/s", q["drain_jobs_per_second"]],
                ["drain seconds", q["drain_seconds"]],
                ["interactive dispatch p50 ms", q["interactive_dispatch_p50_ms"]],
                ["interactive dispatch p99 ms", q["interactive_dispatch_p99_ms"]],
                ["interactive jobs probed", q["interactive_jobs"]],
            ],
        )
    return text


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals, each with what was measured and whether it was met (None: not measured)."""
    out: list[dict[str, Any]] = []
    lat = results.get("latency", {}).get("c1")
    if lat and "ferryman" in lat:
        gained = lat["ferryman"]["p50_ms"] - lat["direct"]["p50_ms"]
        out.append({"goal": "added p50 at concurrency 1 <= 2 ms", "measured": gained, "met": gained <= 2.0})
    thr = results.get("throughput", {})
    if "ferryman" in thr:
        f = thr["ferryman"]["per_second"]
        if "litellm" in thr:
            r = f / thr["litellm"]["per_second"]
            out.append({"goal": "throughput on one core >= 10x LiteLLM", "measured": r, "met": r >= 10})
        r = f / thr["direct"]["per_second"]
        out.append(
            {"goal": "throughput >= 40% of the fake upstream on one core", "measured": r, "met": r >= 0.4}
        )
    peaks = [results.get(k, {}).get("ferryman", {}).get("peak_rss_mb") for k in ("throughput", "memory")]
    peak = max((p for p in peaks if p is not None), default=None)
    if peak is not None:
        out.append({"goal": "peak RSS < 200 MB", "measured": peak, "met": peak < 200})
    mem = results.get("memory", {}).get("ferryman")
    if mem:
        first = mem["rss_mb_after"][min(mem["rss_mb_after"], key=int)]
        # growth under 5% of the RSS (or 5 MB) is allocator noise, not memory kept per request
        allowed = max(5.0, 0.05 * first)
        counts = sorted(mem["rss_mb_after"], key=int)
        out.append(
            {
                "goal": f"no RSS growth 10k -> 100k requests (measured {int(counts[0]):,} -> "
                f"{int(counts[-1]):,})",
                "measured": mem["growth_mb"],
                "met": _growth_met(mem["growth_mb"], allowed, reached=mem["reached_last_mark"]),
            }
        )
    return out


def _growth_met(growth_mb: float, allowed_mb: float, *, reached: bool) -> bool | None:
    """Growth over the allowance fails at any count; no growth proves the goal only at the full count."""
    if growth_mb > allowed_mb:
        return False
    return True if reached else None


def goals_table(rows: list[dict[str, Any]]) -> str:
    return table("Goals", ["goal", "measured", "met"], [[g["goal"], g["measured"], g["met"]] for g in rows])


def profile_table(process: str, summary: dict[str, Any], top: int = 20) -> str:
    rows: list[Row] = [[f"{100 * f['share']:.1f}%", f["function"]] for f in summary["top"][:top]]
    title = f"Profile of Ferryman's {process} during the throughput run (event loop thread, inclusive)"
    return table(f"{title}: {summary['loop_samples']} samples", ["share", "function (file)"], rows)


def plot(samples: dict[str, Any], out_dir: Path) -> list[Path]:
    """Latency CDFs per concurrency and streaming TTFT/gap histograms, beside the JSON."""
    import matplotlib  # noqa: PLC0415 - a heavy import that only this step needs

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    written: list[Path] = []
    latency = samples.get("latency", {})
    if latency:
        fig, axes = plt.subplots(1, len(latency), figsize=(6 * len(latency), 4.5), squeeze=False)
        for ax, (conc, by_path) in zip(axes[0], latency.items(), strict=True):
            for name, values in by_path.items():
                ordered = sorted(values)
                if ordered:
                    ax.plot(ordered, [i / len(ordered) for i in range(len(ordered))], label=name)
            ax.set(
                xscale="log",
                xlabel="latency ms (log)",
                ylabel="fraction of requests",
                title=f"non-streaming chat, concurrency {conc.removeprefix('c')}",
            )
            ax.grid(alpha=0.3)
            ax.legend()
        written.append(_save(fig, plt, out_dir / "latency.png"))
    streaming = samples.get("streaming", {})
    if streaming:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for name, (ttfts, gaps) in streaming.items():
            axes[0].hist(ttfts, bins=40, alpha=0.5, label=name)
            axes[1].hist(gaps, bins=80, alpha=0.5, label=name, log=True)
        axes[0].set(xlabel="time to first token ms", ylabel="streams", title="TTFT")
        axes[1].set(xlabel="gap between tokens ms", ylabel="gaps (log)", title="inter-token gap")
        for ax in axes:
            ax.legend()
        written.append(_save(fig, plt, out_dir / "streaming.png"))
    return written


def _save(fig: Any, plt: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
