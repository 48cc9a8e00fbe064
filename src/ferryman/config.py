"""Every setting of the platform, declared once: its type, default, and description.

Only `cli.py` and test fixtures build `Settings`; everything else receives the piece it needs. The CLI help and
docs/configuration.md come from these declarations, and a test checks that they agree.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path(os.environ.get("FERRYMAN_HOME", ".ferryman"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FERRYMAN_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where the SQLite stores, region blob directories, keys and tokens live (FERRYMAN_HOME).",
    )
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8000, description="Port the API listens on.")
    global_database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the global store; default: SQLite file global.db in the data dir.",
    )
    region_database_urls: dict[str, str] = Field(
        default_factory=dict,
        description="SQLAlchemy URL per region store (e.g. {'us': 'postgresql+asyncpg://…'}); default: SQLite.",
    )
    regions: list[str] = Field(default_factory=lambda: ["us", "eu"], description="Regions this API serves.")
    max_body_bytes: int = Field(4 * 1024 * 1024, description="Largest request body accepted (413 above it).")
    max_header_bytes: int = Field(
        32 * 1024,
        description="Largest request header block (request line and headers) accepted (431 above it).",
    )
    max_headers: int = Field(100, description="Most request header lines accepted (431 above it).")
    header_timeout_seconds: float = Field(
        10.0,
        description="A connection whose request headers are not complete this long after it opened (or after "
        "its next request began) is answered 408 and closed: slow clients cannot hold connections.",
    )
    keepalive_timeout_seconds: int = Field(
        5, description="An idle keep-alive connection is closed after this many seconds without a request."
    )
    max_connections: int | None = Field(
        4096, description="Open connections (HTTP and WebSocket) above which new requests are answered 503."
    )
    max_connections_per_address: int | None = Field(
        256,
        description="Open connections one client address may hold; more are answered 503 and closed. Behind a "
        "reverse proxy every client shares the proxy's address: raise this or let the proxy limit instead.",
    )
    lease_seconds: float = Field(30.0, description="Lease a worker gets on a job; progress renews it.")
    lease_check_interval_seconds: float = Field(
        0.5, description="How often the queue node looks for lapsed leases."
    )
    poison_threshold: int = Field(
        3, description="Distinct workers a job may crash before it fails as poison."
    )
    max_attempts: int = Field(5, description="Attempts (dispatches) a job may have before it fails for good.")
    quarantine_after_failures: int = Field(
        5,
        description="Jobs in a row that fail or lapse on a worker and then succeed on another before that worker "
        "is quarantined (gets no work).",
    )
    quarantine_cooldown_seconds: float = Field(
        60.0,
        description="How long a quarantined worker gets no work before it is given one probe job; a failed probe "
        "doubles it.",
    )
    quarantine_max_cooldown_seconds: float = Field(
        3600.0, description="The longest cool-down a failed probe can double a quarantine to."
    )
    max_models_per_worker: int = Field(
        16, description="Models one worker may offer; a register offering more is refused (protocol_error)."
    )
    model_retention_seconds: float = Field(
        7 * 86400.0,
        description="A model no worker has served for this long leaves the catalog (and /v1/models); a worker "
        "that offers it again brings it back.",
    )
    backlog_cap: int = Field(
        100_000, description="Queued jobs per region, model and priority class (429 above)."
    )
    default_deadline_seconds: dict[str, float] = Field(
        default_factory=lambda: {"interactive": 600.0, "async": 3600.0, "batch": 86400.0},
        description="Deadline per priority class when a job names none: queued past it → expired, running → timeout.",
    )
    max_wait_seconds: float = Field(300.0, description="Longest `wait` a synchronous request may ask for.")
    allow_private_webhooks: bool = Field(
        False,
        description="Allow webhook URLs on private, loopback or link-local addresses (local development).",
    )
    allow_private_input_urls: bool = Field(
        False,
        description="Allow image and audio URLs in job inputs on addresses that are not publicly routable "
        "(local development); a backend would fetch them from inside your network.",
    )
    webhook_max_attempts: int = Field(
        12, description="Delivery attempts per webhook before it is abandoned (counted across restarts)."
    )
    webhook_backoff_seconds: float = Field(
        1.0, description="First retry delay of a webhook; doubles each attempt."
    )
    webhook_max_backoff_seconds: float = Field(
        1800.0, description="Longest delay between two webhook attempts."
    )
    webhook_timeout_seconds: float = Field(10.0, description="Timeout of one webhook delivery attempt.")
    event_retention_seconds: float = Field(
        10.0,
        description="How long a finished job's events stay in memory for stream resumption; after that its "
        "stream replays only the final state, from the store. Memory grows with this times the job rate.",
    )
    log_level: str = Field("info", description="Log level: debug, info, warning or error.")
    access_log: bool = Field(False, description="Log every HTTP request (slow under load).")
    dev: bool = Field(
        False, description="Serve the `echo` test backend instead of the real model in `ferryman up`."
    )
    model_name: str = Field(
        "smollm2-135m", description="Name under which `ferryman up` serves its local model."
    )
    worker_slots: int = Field(1, description="Slots of each local worker `ferryman up` starts.")
    worker_healthy_after_seconds: float = Field(
        60.0,
        description="A local worker of `ferryman up` that ran this long before it died was healthy: its "
        "restart backoff starts over. A shorter run is a quick failure.",
    )
    worker_give_up_after: int = Field(
        5, description="Quick failures in a row after which `ferryman up` stops restarting a local worker."
    )
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate (chain) to serve HTTPS and WSS with; plain HTTP when unset."
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")
    tls_ca_file: Path | None = Field(
        None,
        description="CA bundle the local workers of `ferryman up` verify the API's certificate with "
        "(default: the system's trust store).",
    )
    speech_workers: bool = Field(
        True,
        description="`ferryman up` also starts espeak (speech) and pocketsphinx (transcription) workers "
        "when their engines are installed.",
    )

    # autoscaling (docs/autoscaler.md)
    autoscale: bool = Field(
        False,
        description="Size each region's fleet per model with the autoscaler; `ferryman up --autoscale` "
        "starts local workers through it instead of a fixed set.",
    )
    autoscale_interval_seconds: float = Field(
        2.0, description="How often the autoscaler decides, per region."
    )
    autoscale_min_workers: int = Field(
        1, description="Fewest workers per (region, model); batch-only models may still go to zero."
    )
    autoscale_max_workers: int = Field(4, description="Most workers per (region, model).")
    autoscale_cooldown_seconds: float = Field(
        300.0, description="How long the need must stay lower before the autoscaler drains a worker."
    )
    autoscale_spend_cap_usd_per_hour: float | None = Field(
        None, description="Most the autoscaled workers may cost per hour, over all models of a region."
    )
    autoscale_batch_scales_to_zero: bool = Field(
        True, description="Let a model that only gets batch jobs scale to zero workers."
    )
    autoscale_short_window_seconds: float = Field(60.0, description="Short EWMA window of job arrivals.")
    autoscale_long_window_seconds: float = Field(600.0, description="Long EWMA window of job arrivals.")
    autoscale_wait_target_seconds: dict[str, float] = Field(
        default_factory=lambda: {"interactive": 2.0, "async": 30.0, "batch": 600.0},
        description="Queue-wait objective per priority class: the autoscaler sizes for 99% of jobs to start "
        "within it.",
    )
    autoscale_backlog_deadline_seconds: dict[str, float] = Field(
        default_factory=lambda: {"interactive": 60.0, "async": 600.0, "batch": 3600.0},
        description="Per priority class, the time within which the autoscaler means to clear a backlog.",
    )
    autoscale_boot_seconds: float = Field(
        30.0,
        description="Provisioning lag assumed until the first autoscaled worker registers and it is measured.",
    )
    autoscale_boot_timeout_seconds: float = Field(
        600.0,
        description="An autoscaled worker that has not registered after this long is destroyed (and a rented "
        "machine's host quarantined).",
    )
    autoscale_models: dict[str, str] = Field(
        default_factory=dict,
        description="Models the autoscaler runs workers for, each with the backend that serves it (e.g. "
        "{'llama-3-8b': 'llamacpp'}); default: the model `ferryman up` serves.",
    )
    autoscale_provider: str = Field(
        "local",
        description="Where autoscaled workers run: `local` (processes on this machine) or `vastai` (GPUs rented "
        "on Vast.ai; see the vastai_* settings and docs/deploy.md).",
    )
    autoscale_providers: dict[str, str] = Field(
        default_factory=dict,
        description="The provider per region or per region and model, over autoscale_provider: e.g. "
        "{'eu': 'vastai', 'us/echo-1': 'local'}.",
    )
    autoscale_worker_url: str | None = Field(
        None,
        description="URL rented workers reach this API at (they connect out to it); default public_base_url, "
        "else http://host:port.",
    )
    autoscale_enrolment_ttl_seconds: float = Field(
        900.0,
        description="How long a rented machine's one-time enrolment secret may be traded for its worker token.",
    )
    vastai_api_key: SecretStr | None = Field(
        None,
        description="Vast.ai API key, from the environment only (FERRYMAN_VASTAI_API_KEY); never a flag. Or "
        "vastai_api_key_file.",
    )
    vastai_api_key_file: Path | None = Field(
        None, description="File holding the Vast.ai API key (e.g. a mounted secret); read at start."
    )
    vastai_base_url: str = Field("https://console.vast.ai/api/v0", description="Vast.ai REST API base URL.")
    vastai_image: str | None = Field(
        None,
        description="Docker image of rented workers: it must have `ferryman` installed (docs/deploy.md).",
    )
    vastai_onstart: str | None = Field(
        None,
        description="Start-up command of rented workers (placeholders {url} {region} {backend} {models} {slots} "
        "{worker_id}; the enrolment secret is in $FERRYMAN_ENROLMENT_SECRET); default runs `python -m ferryman "
        "worker`.",
    )
    vastai_gpu_name: str = Field("RTX 4090", description="GPU model to rent, as Vast.ai names it.")
    vastai_num_gpus: int = Field(1, description="GPUs per rented machine.")
    vastai_min_gpu_ram_gb: float | None = Field(None, description="Least memory per GPU, in GB.")
    vastai_min_reliability: float = Field(
        0.98, description="Least host reliability (0 to 1) Vast.ai reports."
    )
    vastai_max_price_usd_per_hour: float | None = Field(
        None, description="Most a rented machine may cost per hour, in dollars."
    )
    vastai_disk_gb: float = Field(64.0, description="Disk of each rented machine, in GB.")
    vastai_crash_limit: int = Field(
        3, description="Worker crashes on one host after which that host is quarantined (never rented again)."
    )

    # identity and sign-in (docs/identity.md)
    public_base_url: str | None = Field(
        None,
        description="URL users reach Ferryman at (OAuth callbacks, invitation links); default http://host:port.",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Key signing short-lived tokens and CSRF tokens; share it between API nodes. "
        "Default: generated once into the data dir (secret-key).",
    )
    invite_required: bool = Field(False, description="Only people with an invitation may sign up.")
    session_lifetime_seconds: float = Field(14 * 86400.0, description="Lifetime of a browser session.")
    github_client_id: str | None = Field(
        None, description="GitHub OAuth app client id; GitHub sign-in is off without it."
    )
    github_client_secret: SecretStr | None = Field(None, description="GitHub OAuth app client secret.")
    github_authorize_url: str = Field(
        "https://github.com/login/oauth/authorize", description="GitHub's OAuth authorization endpoint."
    )
    github_token_url: str = Field(
        "https://github.com/login/oauth/access_token", description="GitHub's OAuth token endpoint."
    )
    github_api_url: str = Field("https://api.github.com/", description="GitHub's REST API base (for /user).")
    google_client_id: str | None = Field(
        None, description="Google OAuth client id; Google sign-in is off without it."
    )
    google_client_secret: SecretStr | None = Field(None, description="Google OAuth client secret.")
    google_discovery_url: str = Field(
        "https://accounts.google.com/.well-known/openid-configuration",
        description="OpenID Connect discovery document of the Google (or any OIDC) provider.",
    )
    oauth_timeout_seconds: float = Field(10.0, description="Timeout of each call to an OAuth provider.")
    smtp_host: str | None = Field(
        None, description="SMTP server for invitation emails; none: links are shown only."
    )
    smtp_port: int = Field(25, description="SMTP server port.")
    smtp_sender: str = Field("ferryman@localhost", description="From address of invitation emails.")
    smtp_username: str | None = Field(None, description="SMTP user name, if the server needs one.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")

    def base_url(self) -> str:
        return (self.public_base_url or f"http://{self.host}:{self.port}").rstrip("/")

    def region_database_url(self, region: str) -> str:
        if url := self.region_database_urls.get(region):
            return url
        return f"sqlite+aiosqlite:///{self.data_dir / 'regions' / region / 'region.db'}"

    def global_url(self) -> str:
        return self.global_database_url or f"sqlite+aiosqlite:///{self.data_dir / 'global.db'}"

    def region_dir(self, region: str) -> Path:
        return self.data_dir / "regions" / region


def settings_markdown() -> str:
    """docs/configuration.md, generated from the declarations above (`ferryman config-docs` writes it)."""
    lines = [
        "# Configuration",
        "",
        "Every setting is an environment variable `FERRYMAN_<NAME>` (nested values use `__`, dicts take JSON).",
        "This page is generated from `ferryman.config.Settings` by `ferryman config-docs`; a test keeps them equal.",
        "",
        "| setting | environment variable | type | default | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        if name == "data_dir":
            shown = "`./.ferryman` (or `$FERRYMAN_HOME`)"
        else:
            shown = f"`{field.get_default(call_default_factory=True)!r}`"
        kind = str(field.annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")
        row = f"| `{name}` | `FERRYMAN_{name.upper()}` | `{kind}` | {shown} | {field.description or ''} |"
        lines.append(row.replace(" | None", " \\| None"))
    return "\n".join(lines) + "\n"
