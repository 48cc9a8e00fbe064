"""Jobs: the spec every surface produces, the durable job, its events, webhooks and the service."""

from ferryman.jobs.admission import (
    Admission,
    AdmissionCheck,
    BacklogRoom,
    Candidate,
    HoldingCheck,
    IdempotentReplay,
    InputUrlsAllowed,
    ModelServed,
    RegionServed,
    TaskServed,
    WebhookAllowed,
    standard_checks,
)
from ferryman.jobs.completion import CompletionObserver, Completions, OnFinished
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
from ferryman.jobs.usage import Units, UsageEvent, units_of
from ferryman.jobs.usage_outbox import UsageOutbox
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
    "Admission",
    "AdmissionCheck",
    "BacklogRoom",
    "Candidate",
    "CompletionObserver",
    "Completions",
    "HoldingCheck",
    "IdempotentReplay",
    "InputUrlsAllowed",
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
    "ModelServed",
    "OnFinished",
    "QueueClient",
    "QueueInfo",
    "RegionServed",
    "TaskServed",
    "Timings",
    "Units",
    "UsageEvent",
    "UsageOutbox",
    "WebhookAllowed",
    "WebhookOutbox",
    "WebhookSender",
    "check_transition",
    "check_url",
    "delivery_id",
    "new_webhook_secret",
    "region_of",
    "sign",
    "standard_checks",
    "units_of",
    "verify",
    "webhook_client",
]
