"""PNG charts of a simulation: fleet size and queue wait over time, one line per policy.

Uses matplotlib's object API on an Agg canvas, so it needs no display and touches no global pyplot
state (safe to call from a server or a test). matplotlib is an optional dependency (the `plots`
extra), imported only when a plot is written, so the simulator works without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .report import SimulationResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_MINUTE_S = 60.0


def write_plots(results: list[SimulationResult], plot_dir: Path) -> list[Path]:
    """Write `<trace>-fleet.png` and `<trace>-wait.png` into `plot_dir` (created if missing).

    Returns the paths written. Raises OSError if the directory cannot be written.
    """
    plot_dir.mkdir(parents=True, exist_ok=True)
    trace = results[0].trace if results else "trace"
    return [
        _save(_fleet_figure(_new_figure(), results), plot_dir / f"{trace}-fleet.png"),
        _save(_wait_figure(_new_figure(), results), plot_dir / f"{trace}-wait.png"),
    ]


def _new_figure() -> Figure:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise RuntimeError("plots need matplotlib: pip install 'ferryman[plots]'") from None
    figure = Figure(figsize=(10, 4.5))
    FigureCanvasAgg(figure)
    return figure


def _fleet_figure(figure: Figure, results: list[SimulationResult]) -> Figure:
    axes = figure.add_subplot()
    for result in results:
        timeline = result.timeline
        axes.step(timeline.time_s / _MINUTE_S, timeline.billed_workers, where="post", label=result.policy)
    axes.set(xlabel="minutes", ylabel="workers billed", title=f"Fleet size — {_title(results)}")
    axes.legend(loc="upper right", fontsize="small")
    axes.grid(alpha=0.3)
    return figure


def _wait_figure(figure: Figure, results: list[SimulationResult]) -> Figure:
    axes = figure.add_subplot()
    for result in results:
        minutes, p95 = _per_minute_p95(result)
        axes.plot(minutes, p95, label=result.policy)
    axes.set(
        xlabel="minutes", ylabel="p95 queue wait per minute (s)", title=f"Queue wait — {_title(results)}"
    )
    axes.set_yscale("symlog", linthresh=1.0)
    axes.legend(loc="upper right", fontsize="small")
    axes.grid(alpha=0.3)
    return figure


def _per_minute_p95(result: SimulationResult) -> tuple[np.ndarray, np.ndarray]:
    if result.arrival_s.size == 0:
        return np.zeros(0), np.zeros(0)
    minute = (result.arrival_s // _MINUTE_S).astype(np.int64)
    waits = np.where(np.isfinite(result.wait_s), result.wait_s, np.nan)
    bins = np.arange(int(minute.max()) + 1)
    p95 = np.array([_p95(waits[minute == m]) for m in bins])
    return bins.astype(np.float64), p95


def _p95(waits: np.ndarray) -> float:
    finite = waits[~np.isnan(waits)]
    return float(np.percentile(finite, 95)) if finite.size else float("nan")


def _title(results: list[SimulationResult]) -> str:
    return f"{results[0].trace} on {results[0].service}" if results else ""


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path
