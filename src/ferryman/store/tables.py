"""ORM-free table definitions (SQLAlchemy Core) of the global store and of each region store.

The global store holds account metadata; a region store holds everything derived from a job's payload. The two
never share a metadata object, so a region table cannot be created in the global database by mistake.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

global_metadata = MetaData()
region_metadata = MetaData()

users = Table(
    "users",
    global_metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("email", String(320), nullable=True),
    Column("is_platform_admin", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("adult_confirmed_at", Float, nullable=True),
)

orgs = Table(
    "orgs",
    global_metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("region", String(8), nullable=False),
    Column("weight", Float, nullable=False, default=1.0),
    Column("webhook_secret", String(100), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("billing_address", Text, nullable=True),
)

members = Table(
    "members",
    global_metadata,
    Column("org_id", String(40), ForeignKey("orgs.id"), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id"), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    global_metadata,
    Column("id", String(40), primary_key=True),
    Column("org_id", String(40), ForeignKey("orgs.id"), nullable=False, index=True),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("last4", String(4), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("last_used_at", Float, nullable=True),
    Column("last_used_ip", String(64), nullable=True),
)

worker_tokens = Table(
    "worker_tokens",
    global_metadata,
    Column("id", String(40), primary_key=True),
    Column("region", String(8), nullable=False),
    Column("name", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    # set for a token an autoscaled instance got by enrolment: it may register only this worker id and models
    Column("worker_id", String(80), nullable=True),
    Column("models", Text, nullable=True),
)

# one-time secrets an autoscaled instance exchanges for its worker token (docs/autoscaler.md, "Enrolment")
worker_enrolments = Table(
    "worker_enrolments",
    global_metadata,
    Column("id", String(40), primary_key=True),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("region", String(8), nullable=False),
    Column("worker_id", String(80), nullable=False),
    Column("models", Text, nullable=False),
    Column("instance_id", String(80), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
    Column("token_id", String(40), nullable=True),
)

provider_identities = Table(
    "provider_identities",
    global_metadata,
    Column("provider", String(16), primary_key=True),
    Column("subject", String(255), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False, index=True),
    Column("email", String(320), nullable=True),
    Column("created_at", Float, nullable=False),
)

browser_sessions = Table(
    "browser_sessions",
    global_metadata,
    Column("id", String(40), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("ip", String(64), nullable=True),
    Column("user_agent", String(300), nullable=True),
)

invitations = Table(
    "invitations",
    global_metadata,
    Column("id", String(40), primary_key=True),
    Column("org_id", String(40), ForeignKey("orgs.id"), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("email", String(320), nullable=True),
    Column("role", String(16), nullable=False),
    Column("max_uses", Integer, nullable=False),
    Column("uses", Integer, nullable=False, default=0),
    Column("created_by", String(40), ForeignKey("users.id"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)

audit_events = Table(
    "audit_events",
    global_metadata,
    Column("id", String(40), primary_key=True),
    Column("org_id", String(40), nullable=True),
    Column("actor_user_id", String(40), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", String(200), nullable=True),
    Column("details", Text, nullable=False, default="{}"),
    Column("ip", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    Index("ix_audit_events_org_id_id", "org_id", "id"),
)

jobs = Table(
    "jobs",
    region_metadata,
    Column("id", String(48), primary_key=True),
    Column("org_id", String(40), nullable=False),
    Column("task", String(16), nullable=False),
    Column("model", String(200), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("fence", BigInteger, nullable=False, default=0),
    Column("worker_id", String(80), nullable=True),
    Column("idempotency_key", String(200), nullable=True),
    Column("request_digest", String(64), nullable=True),
    Column("webhook_url", Text, nullable=True),
    Column("payload", LargeBinary, nullable=True),
    Column("result", LargeBinary, nullable=True),
    Column("usage", Text, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),  # generic per code; the detail is sealed in error_detail
    Column("error_detail", LargeBinary, nullable=True),
    Column("crashed_workers", Text, nullable=False, default="[]"),
    Column("created_at", Float, nullable=False),
    Column("deadline_at", Float, nullable=False),
    Column("dispatched_at", Float, nullable=True),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("wait_ms", Float, nullable=True),
    Column("worker_rtt_ms", Float, nullable=True),
    Column("work_ms", Float, nullable=True),
    UniqueConstraint("org_id", "idempotency_key", name="uq_jobs_org_idempotency"),
    Index("ix_jobs_org_id_id", "org_id", "id"),
    Index("ix_jobs_state", "state"),
)

org_keys = Table(
    "org_keys",
    region_metadata,
    Column("org_id", String(40), primary_key=True),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)

blobs = Table(
    "blobs",
    region_metadata,
    Column("id", String(48), primary_key=True),
    Column("org_id", String(40), nullable=False),
    Column("job_id", String(48), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("size_bytes", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("job_id", "name", name="uq_blobs_job_name"),
)

node_starts = Table(
    "node_starts",
    region_metadata,
    Column("epoch", Integer, primary_key=True, autoincrement=True),
    Column("started_at", Float, nullable=False),
)

models = Table(
    "models",
    region_metadata,
    Column("name", String(200), primary_key=True),
    Column("tasks", Text, nullable=False),
    Column("last_seen_at", Float, nullable=False),
)

# The webhook outbox (docs/jobs.md, Webhooks): a delivery lives here from the moment its job ends until its receiver
# answers 2xx (then the row goes) or its attempts run out (then it stays, `abandoned`). `id` is the `webhook-id`
# header, the same on every attempt and across restarts; `body` is sealed like a payload (aad `<id>:webhook`).
webhook_deliveries = Table(
    "webhook_deliveries",
    region_metadata,
    Column("id", String(48), primary_key=True),
    Column("org_id", String(40), nullable=False),
    Column("job_id", String(48), nullable=False),
    Column("url", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("last_error", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
)

# The usage outbox (docs/adr/0005-usage-outbox.md): one row per job outcome, inserted in the same transaction as
# the job's terminal state, so a job never ends without its usage and never has it twice (`job_id`, `fence`).
# `seq` is the order consumers read in; no payload, no output text. Amounts are whole units or seconds.
usage_events = Table(
    "usage_events",
    region_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(48), nullable=False, unique=True),
    Column("org_id", String(40), nullable=False),
    Column("job_id", String(48), nullable=False),
    Column("fence", BigInteger, nullable=False),
    Column("model", String(200), nullable=False),
    Column("task", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False, default=0),
    Column("completion_tokens", BigInteger, nullable=False, default=0),
    Column("images", BigInteger, nullable=False, default=0),
    Column("audio_seconds", Float, nullable=False, default=0.0),
    Column("video_seconds", Float, nullable=False, default=0.0),
    Column("gpu_seconds", Float, nullable=False, default=0.0),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("job_id", "fence", name="uq_usage_events_job_fence"),
)

# how far each consumer of the usage outbox has acknowledged: every event with `seq` <= `acked_seq` is done
usage_cursors = Table(
    "usage_cursors",
    region_metadata,
    Column("consumer", String(64), primary_key=True),
    Column("acked_seq", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)
