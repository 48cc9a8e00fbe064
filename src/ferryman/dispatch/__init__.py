"""The region queue node and the worker protocol it speaks."""

from ferryman import protocol
from ferryman.dispatch.metrics import NodeGauges, NodeMetrics
from ferryman.dispatch.node import NodeSettings, QueueNode
from ferryman.dispatch.registry import WorkerConn, WorkerRefused
from ferryman.dispatch.signals import FleetSnapshot, NodeObserver, WorkerSnapshot

__all__ = [
    "FleetSnapshot",
    "NodeGauges",
    "NodeMetrics",
    "NodeObserver",
    "NodeSettings",
    "QueueNode",
    "WorkerConn",
    "WorkerRefused",
    "WorkerSnapshot",
    "protocol",
]
