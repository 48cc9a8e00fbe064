"""The worker agent GPU hosts run, and the backends it drives."""

from ferryman.worker.agent import AgentSettings, Unrecoverable, WorkerAgent, connect_url
from ferryman.worker.backends.base import (
    Backend,
    BackendError,
    BackendSettings,
    Blob,
    Chunk,
    Delta,
    Output,
    Progress,
    WorkItem,
)
from ferryman.worker.enrolment import enrol
from ferryman.worker.loading import load_backend

__all__ = [
    "AgentSettings",
    "Backend",
    "BackendError",
    "BackendSettings",
    "Blob",
    "Chunk",
    "Delta",
    "Output",
    "Progress",
    "Unrecoverable",
    "WorkItem",
    "WorkerAgent",
    "connect_url",
    "enrol",
    "load_backend",
]
