"""Jobs: the spec every surface produces, the durable job, its events, webhooks and the service."""

from ferryman.jobs.events import JobEvents
from ferryman.jobs.models import (
    TERMINAL_STATES,
    Job,
    JobEvent,
    JobFailure,
    JobPage,
    JobSpec,
    JobState,
    ModelInfo,
    QueueClient,
    QueueInfo,
    Timings,
    check_transition,
)
from ferryman.jobs.repository import JobRepository
from ferryman.jobs.service import JobService, JobSettings, region_of
from ferryman.jobs.webhook_outbox import WebhookOutbox
from ferryman.jobs.webhooks import (
    WebhookSender,
    check_url,
    delivery_id,
    new_webhook_secret,
    sign,
    verify,
    webhook_client,
)

__all__ = [
    "TERMINAL_STATES",
    "Job",
    "JobEvent",
    "JobEvents",
    "JobFailure",
    "JobPage",
    "JobRepository",
    "JobService",
    "JobSettings",
    "JobSpec",
    "JobState",
    "ModelInfo",
    "QueueClient",
    "QueueInfo",
    "Timings",
    "WebhookOutbox",
    "WebhookSender",
    "check_transition",
    "check_url",
    "delivery_id",
    "new_webhook_secret",
    "region_of",
    "sign",
    "verify",
    "webhook_client",
]
