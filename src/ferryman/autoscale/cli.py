"""`ferryman simulate`: replay a trace against the autoscaling policies and compare them.

`app` holds the one command, named "simulate". Mount it with `main_app.add_typer(autoscale.simulate_app)`
(no name: Typer merges the command into the main app), giving `ferryman simulate --trace FILE`.
On its own, the app runs the command directly.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table

from .plots import write_plots
from .registry import OURS, POLICY_NAMES, SLO_TARGET, build_policy
from .report import Comparison, SimulationResult, compare_to_best_baseline
from .service_model import DEFAULT_SERVICE_MODEL, SERVICE_MODELS, ServiceModel, get_service_model
from .simulator import SimulationConfig, simulate_trace
from .traces import Trace, TraceError, load_trace

EXIT_BAD_INPUT = 2

app = typer.Typer(add_completion=False, help="Replay a request trace against autoscaling policies.")


def simulate(
    trace: Path,
    policies: list[str] | None,
    as_json: bool,
    plot_dir: Path | None,
    *,
    service: str = DEFAULT_SERVICE_MODEL,
    seed: int = 0,
) -> int:
    """Run each policy (all of POLICY_NAMES when None) over `trace`; print JSON or a table.

    Returns the exit code: 0, or 2 with a one-line error on stderr for a bad trace, an unknown
    policy or service model. With `as_json`, stdout holds exactly one JSON object keyed by policy.
    """
    err = Console(stderr=True)
    try:
        loaded = load_trace(trace)
        model = get_service_model(service)
        names = _check_policies(policies)
    except TraceError as exc:
        return _fail(err, f"{trace}: {exc}")
    except OSError as exc:
        return _fail(err, f"cannot read trace {trace}: {exc.strerror or exc}")
    except (KeyError, ValueError) as exc:
        return _fail(err, str(exc.args[0]) if exc.args else str(exc))
    config = SimulationConfig(seed=seed)
    results = _run_all(loaded, model, config, names, err if not as_json else None)
    if as_json:
        sys.stdout.write(json.dumps({r.policy: r.summary() for r in results}) + "\n")
    else:
        _print_table(Console(), loaded, model, results)
    if plot_dir is not None:
        try:
            written = write_plots(results, plot_dir)
        except (OSError, RuntimeError) as exc:
            err.print(f"error: cannot write plots to {plot_dir}: {exc}", markup=False, highlight=False)
            return 1
        for path in written:
            err.print(f"wrote {path}", markup=False, highlight=False)
    return 0


@app.command("simulate")
def simulate_command(
    trace: Annotated[
        Path, typer.Option("--trace", help="Trace CSV (TIMESTAMP,ContextTokens,GeneratedTokens).")
    ],
    policy: Annotated[
        list[str] | None,
        typer.Option("--policy", help=f"Policy to run (repeatable): {', '.join(POLICY_NAMES)}."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object keyed by policy.")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write fleet and wait PNGs into DIR.")] = None,
    service: Annotated[
        str, typer.Option("--service", help=f"Service model: {', '.join(SERVICE_MODELS)}.")
    ] = DEFAULT_SERVICE_MODEL,
    seed: Annotated[int, typer.Option("--seed", help="Seed for boot times and service noise.")] = 0,
) -> None:
    """Replay a trace against autoscaling policies and report GPU-hours, cost and queue waits."""
    raise typer.Exit(simulate(trace, policy, as_json, plot, service=service, seed=seed))


def _check_policies(policies: list[str] | None) -> list[str]:
    names = list(policies) if policies else list(POLICY_NAMES)
    unknown = [name for name in names if name not in POLICY_NAMES]
    if unknown:
        raise ValueError(f"unknown policies {unknown}; known: {list(POLICY_NAMES)}")
    return list(dict.fromkeys(names))


def _fail(err: Console, message: str) -> int:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return EXIT_BAD_INPUT


def _run_all(
    trace: Trace, service: ServiceModel, config: SimulationConfig, names: list[str], err: Console | None
) -> list[SimulationResult]:
    if err is None:
        return [_run_one(trace, service, config, name, None) for name in names]
    results = []
    with Progress(console=err, transient=True) as progress:
        for name in names:
            task = progress.add_task(f"{name:<20}", total=1.0)

            def advance(done: float, task: TaskID = task) -> None:
                progress.update(task, completed=done)

            results.append(_run_one(trace, service, config, name, advance))
            progress.update(task, completed=1.0)
    return results


def _run_one(
    trace: Trace,
    service: ServiceModel,
    config: SimulationConfig,
    name: str,
    on_progress: Callable[[float], None] | None,
) -> SimulationResult:
    policy = build_policy(name, trace=trace, service=service, config=config)
    return simulate_trace(trace, policy, service, config, on_progress=on_progress)


def _print_table(
    console: Console, trace: Trace, service: ServiceModel, results: list[SimulationResult]
) -> None:
    table = Table(
        title=f"{trace.name}: {len(trace)} jobs over {trace.duration_s / 60:.0f} min on {service.name}",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for column in ("policy", "GPU-h", "cost $", "SLO ≤2s", "p50 s", "p95 s", "p99 s", "events"):
        table.add_column(column, justify="left" if column == "policy" else "right", no_wrap=True)
    for r in results:
        summary = r.summary()
        table.add_row(
            r.policy,
            f"{r.gpu_hours:.2f}",
            f"{r.cost_usd:.2f}",
            f"{100 * r.waits.slo_attainment:.2f}%",
            *(f"{summary[key]:.2f}" for key in ("p50_wait_s", "p95_wait_s", "p99_wait_s")),
            str(r.scale_events),
        )
    console.print(table)
    comparison = compare_to_best_baseline(
        results, ours=OURS, slo_target=SLO_TARGET, exclude=("fixed-oracle",)
    )
    if comparison is not None:
        console.print(_describe(comparison))


def _describe(comparison: Comparison) -> str:
    base, ours = comparison.baseline, comparison.ours
    verdict = "at equal or better SLO" if comparison.slo_at_least_baseline else "but at a LOWER SLO"
    return (
        f"{OURS}: {100 * comparison.gpu_hours_saved:+.1f}% GPU-hours saved vs best baseline {base.policy} "
        f"({base.gpu_hours:.2f} GPU-h, SLO {100 * base.waits.slo_attainment:.2f}%) {verdict} "
        f"({100 * ours.waits.slo_attainment:.2f}%)"
    )
