"""Autoscaling: the policy that sizes each (region, model) fleet, the baselines it is measured
against, a trace-driven simulator, and the providers that rent worker machines.

Live, an Autoscaler (one task per region) builds FleetSignals from the queue node's snapshot and a
TrafficObserver it feeds, asks a ScalingPolicy for a Decision and carries it out through a Provider.
`cli.app` is the `ferryman simulate` command. See docs/autoscaler.md.
"""

from __future__ import annotations

from .baselines import FixedFleet, KnativeKPA, RayServe, RunPodQueueDelay, peak_fleet_size
from .cli import app as simulate_app
from .cli import simulate
from .controller import Autoscaler, AutoscalerConfig, RegionLink, build_autoscaler
from .estimators import (
    ArrivalEstimator,
    ArrivalWindow,
    PeakednessEstimator,
    RateEstimator,
    ServiceTimeEstimator,
    ServiceTimeFit,
)
from .fleet_events import Enroller, Enrolment, FleetEvent, FleetJournal, InstanceView
from .fleet_plan import plan_fleet
from .metrics import AutoscalerGauges, AutoscalerMetrics
from .models import Decision, FleetSignals, ScalingPolicy, WorkerState, WorkerView
from .observer import DEFAULT_SERVICE_PRIOR, ModelTraffic, SignalWindows, TrafficObserver
from .policy import FerrymanPolicy, PolicyConfig, Sizing, forecast_load, size_slots
from .region_fleet import (
    NO_ELIGIBLE_OFFER,
    SPEND_CAP_REACHED,
    DecisionRecord,
    FleetStatus,
    FleetTargets,
    ManagedModel,
    RegionFleet,
)
from .registry import POLICY_NAMES, build_policy
from .report import Comparison, SimulationResult, Timeline, WaitSummary, compare_to_best_baseline
from .service_model import DEFAULT_SERVICE_MODEL, SERVICE_MODELS, BootTime, ServiceModel, get_service_model
from .simulator import SimulationConfig, simulate_trace
from .traces import Trace, TraceError, load_trace, trace_from_arrays

__all__ = [
    "DEFAULT_SERVICE_MODEL",
    "DEFAULT_SERVICE_PRIOR",
    "NO_ELIGIBLE_OFFER",
    "SPEND_CAP_REACHED",
    "POLICY_NAMES",
    "SERVICE_MODELS",
    "ArrivalEstimator",
    "ArrivalWindow",
    "Autoscaler",
    "AutoscalerConfig",
    "AutoscalerGauges",
    "AutoscalerMetrics",
    "BootTime",
    "Comparison",
    "Decision",
    "Enroller",
    "Enrolment",
    "FleetEvent",
    "FleetJournal",
    "InstanceView",
    "DecisionRecord",
    "FerrymanPolicy",
    "FixedFleet",
    "FleetSignals",
    "FleetStatus",
    "FleetTargets",
    "KnativeKPA",
    "ManagedModel",
    "ModelTraffic",
    "PeakednessEstimator",
    "PolicyConfig",
    "RateEstimator",
    "RayServe",
    "RegionFleet",
    "RegionLink",
    "RunPodQueueDelay",
    "ScalingPolicy",
    "ServiceModel",
    "ServiceTimeEstimator",
    "ServiceTimeFit",
    "SignalWindows",
    "SimulationConfig",
    "SimulationResult",
    "Sizing",
    "Timeline",
    "Trace",
    "TraceError",
    "TrafficObserver",
    "WaitSummary",
    "WorkerState",
    "WorkerView",
    "build_autoscaler",
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
