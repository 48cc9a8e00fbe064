"""Autoscaling: the policy that sizes each (region, model) fleet, the baselines it is measured
against, a trace-driven simulator, and the providers that rent worker machines.

The queue node builds FleetSignals, asks a ScalingPolicy for a Decision and carries it out through
a Provider. `cli.app` is the `ferryman simulate` command. See docs/autoscaler.md.
"""

from __future__ import annotations

from .baselines import FixedFleet, KnativeKPA, RayServe, RunPodQueueDelay, peak_fleet_size
from .cli import app as simulate_app
from .cli import simulate
from .estimators import (
    ArrivalEstimator,
    ArrivalWindow,
    PeakednessEstimator,
    RateEstimator,
    ServiceTimeEstimator,
    ServiceTimeFit,
)
from .fleet_plan import plan_fleet
from .models import Decision, FleetSignals, ScalingPolicy, WorkerState, WorkerView
from .policy import FerrymanPolicy, PolicyConfig, Sizing, forecast_load, size_slots
from .registry import POLICY_NAMES, build_policy
from .report import Comparison, SimulationResult, Timeline, WaitSummary, compare_to_best_baseline
from .service_model import DEFAULT_SERVICE_MODEL, SERVICE_MODELS, BootTime, ServiceModel, get_service_model
from .simulator import SimulationConfig, simulate_trace
from .traces import Trace, TraceError, load_trace, trace_from_arrays

__all__ = [
    "DEFAULT_SERVICE_MODEL",
    "POLICY_NAMES",
    "SERVICE_MODELS",
    "ArrivalEstimator",
    "ArrivalWindow",
    "BootTime",
    "Comparison",
    "Decision",
    "FerrymanPolicy",
    "FixedFleet",
    "FleetSignals",
    "KnativeKPA",
    "PeakednessEstimator",
    "PolicyConfig",
    "RateEstimator",
    "RayServe",
    "RunPodQueueDelay",
    "ScalingPolicy",
    "ServiceModel",
    "ServiceTimeEstimator",
    "ServiceTimeFit",
    "SimulationConfig",
    "SimulationResult",
    "Sizing",
    "Timeline",
    "Trace",
    "TraceError",
    "WaitSummary",
    "WorkerState",
    "WorkerView",
    "build_policy",
    "compare_to_best_baseline",
    "forecast_load",
    "get_service_model",
    "load_trace",
    "peak_fleet_size",
    "plan_fleet",
    "simulate",
    "simulate_app",
    "simulate_trace",
    "size_slots",
    "trace_from_arrays",
]
