"""The region queue node and the worker protocol it speaks."""

from ferryman.dispatch import protocol
from ferryman.dispatch.metrics import NodeGauges, NodeMetrics
from ferryman.dispatch.node import NodeSettings, QueueNode
from ferryman.dispatch.registry import WorkerConn

__all__ = ["NodeGauges", "NodeMetrics", "NodeSettings", "QueueNode", "WorkerConn", "protocol"]
