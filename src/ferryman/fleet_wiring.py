"""The live autoscaler as Settings describe it: which provider serves each region and model, the offer filter, how
rented machines join (one-time enrolment secrets) and where their rents and destroys are recorded (the audit log).

`container.open_container` calls `open_autoscaler` when `autoscale` is on; `cli` calls `check` first, so a setting
that cannot work (Vast.ai without a key or an image) stops `ferryman serve` with a clear message, not a traceback.
The Vast.ai API key is read from the environment or a file, never from a flag, and is never logged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
import structlog
from prometheus_client import CollectorRegistry

from ferryman import autoscale, dispatch, identity
from ferryman.autoscale import providers
from ferryman.clock import Clock
from ferryman.config import Settings
from ferryman.errors import ConfigError
from ferryman.types import Priority, Region, Task

log = structlog.get_logger(__name__)

PROVIDERS = ("local", "vastai")
# the tasks each backend serves, so a region's node takes jobs for an autoscaled model before any worker of it
# has connected (tests/test_cli_up.py keeps this equal to what the backends offer)
BACKEND_TASKS: Mapping[str, frozenset[Task]] = {
    "echo": frozenset(Task),
    "llamacpp": frozenset({Task.CHAT, Task.COMPLETION, Task.EMBEDDINGS}),
    "espeak": frozenset({Task.SPEECH}),
    "pocketsphinx": frozenset({Task.TRANSCRIPTION}),
}


def managed_models(settings: Settings) -> dict[str, str]:
    """Model → backend of every autoscaled model: `autoscale_models`, else the one `ferryman up` serves."""
    if settings.autoscale_models:
        return dict(settings.autoscale_models)
    return {"echo-1": "echo"} if settings.dev else {settings.model_name: "llamacpp"}


def provider_name(settings: Settings, region: str, model: str) -> str:
    chosen = settings.autoscale_providers
    return chosen.get(f"{region}/{model}") or chosen.get(region) or settings.autoscale_provider


def check(settings: Settings) -> list[str]:
    """What keeps the autoscaler from starting as configured, one sentence each (empty: nothing)."""
    if not settings.autoscale:
        return []
    problems = []
    models = managed_models(settings)
    names = {provider_name(settings, r, m) for r in settings.regions for m in models}
    if unknown := sorted(names - set(PROVIDERS)):
        problems.append(f"unknown autoscale provider {unknown}; choose one of {list(PROVIDERS)}")
    if unknown_backends := sorted(set(models.values()) - set(BACKEND_TASKS)):
        problems.append(f"autoscale_models name backends it does not know: {unknown_backends}")
    if "vastai" in names:
        try:
            _vastai_key(settings)
        except ConfigError as exc:
            problems.append(exc.message)
        if not settings.vastai_image:
            problems.append("vastai needs a worker image: set FERRYMAN_VASTAI_IMAGE (docs/deploy.md)")
    return problems


def _vastai_key(settings: Settings) -> str:
    if settings.vastai_api_key is not None:
        key = settings.vastai_api_key.get_secret_value().strip()
    elif settings.vastai_api_key_file is not None:
        try:
            key = settings.vastai_api_key_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read vastai_api_key_file {settings.vastai_api_key_file}: {exc.strerror}"
            ) from None
    else:
        key = ""
    if not key:
        raise ConfigError(
            "vastai needs an API key: set FERRYMAN_VASTAI_API_KEY or FERRYMAN_VASTAI_API_KEY_FILE "
            "(never a flag: command lines are visible to every local user)"
        )
    return key


class _Enroller:
    """autoscale.Enroller over identity's enrolments: the secrets live `ttl_seconds`."""

    def __init__(self, service: identity.EnrolmentService, ttl_seconds: float) -> None:
        self._service, self._ttl = service, ttl_seconds

    async def issue(self, *, region: Region, worker_id: str, models: Sequence[str]) -> autoscale.Enrolment:
        issued = await self._service.issue(
            region=region, worker_id=worker_id, models=models, ttl_seconds=self._ttl
        )
        return autoscale.Enrolment(issued.id, issued.secret)

    async def bind(self, enrolment_id: str, instance_id: str) -> None:
        await self._service.bind_instance(enrolment_id, instance_id)

    async def retire(self, enrolment_id: str) -> None:
        await self._service.retire(enrolment_id)


def _journal(audit: identity.AuditLog) -> autoscale.FleetJournal:
    """Every rent and destroy as an org-less audit event by the system, with its price and (destroy) its cost."""

    async def record(event: autoscale.FleetEvent) -> None:
        action = (
            identity.AuditAction.INSTANCE_RENTED
            if event.kind == "rented"
            else identity.AuditAction.INSTANCE_DESTROYED
        )
        details = {
            "region": event.region.value,
            "model": event.model,
            "provider": event.provider,
            "instance_id": event.instance_id,
            "worker_id": event.worker_id,
            "host_id": event.host_id,
            "price_usd_per_hour": f"{event.price_usd_per_hour:.4f}",
        }
        if event.kind != "rented":
            details |= {
                "reason": event.reason,
                "held_seconds": f"{event.held_seconds:.1f}",
                "cost_usd": f"{event.cost_usd:.6f}",
            }
        await audit.record(
            action, org_id=None, actor=None, target=f"{event.provider}:{event.instance_id}", details=details
        )

    return record


class SavedQuarantine(providers.Quarantine):
    """The Vast.ai host quarantine, written to a file at each addition so a restart does not rent a bad host again."""

    def __init__(self, path: Path) -> None:
        hosts: dict[str, str] = {}
        try:
            hosts = dict(providers.Quarantine.from_json(path.read_text()).items())
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.warning("autoscaler.quarantine_unreadable", path=str(path), error=type(exc).__name__)
        super().__init__(hosts)
        self._path = path

    def add(self, host_id: str, reason: str) -> None:
        known = host_id in self
        super().add(host_id, reason)
        if not known:
            temporary = self._path.with_suffix(".tmp")
            temporary.write_text(self.to_json())
            temporary.replace(self._path)


def _worker_url(settings: Settings) -> str:
    if settings.autoscale_worker_url:
        return settings.autoscale_worker_url.rstrip("/")
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    return f"{'https' if settings.tls_cert_file else 'http'}://{settings.host}:{settings.port}"


async def open_autoscaler(
    settings: Settings,
    nodes: Mapping[Region, dispatch.QueueNode],
    *,
    clock: Clock,
    registry: CollectorRegistry,
    accounts: identity.Accounts,
    stack: contextlib.AsyncExitStack,
) -> autoscale.Autoscaler:
    """Build the autoscaler (not started). Provider clients close on `stack`; push the autoscaler's stop after
    this returns, so machines are destroyed before their provider's client closes."""
    if problems := check(settings):
        raise ConfigError("; ".join(problems))
    models = managed_models(settings)
    vast = await _open_vastai(settings, stack) if "vastai" in _names(settings, models) else None
    enroller = _Enroller(accounts.enrolments, settings.autoscale_enrolment_ttl_seconds)
    journal = _journal(accounts.audit)
    links = {}
    for region, node in nodes.items():
        for model, backend in models.items():
            node.expect_model(model, BACKEND_TASKS[backend])
        local = _local_provider(settings, region)
        chosen = {
            m: vast if provider_name(settings, region.value, m) == "vastai" and vast else local
            for m in models
        }
        rents = any(p is vast for p in chosen.values())
        links[region] = autoscale.RegionLink(
            node=node,
            launch_url=_worker_url(settings) if rents else _local_url(settings),
            provider=local,
            model_providers=chosen,
            queries={m: _query(settings, region) for m, p in chosen.items() if p is vast},
            worker_token=(settings.data_dir / f"worker-token-{region.value}").read_text().strip(),
            enroller=enroller if rents else None,
            journal=journal,
        )
    config = _config(settings, models)
    log.info(
        "autoscaler.configured",
        models=sorted(models),
        providers={f"{r.value}/{m}": provider_name(settings, r.value, m) for r in nodes for m in models},
    )
    return autoscale.build_autoscaler(links, config, clock=clock, registry=registry)


def _names(settings: Settings, models: Mapping[str, str]) -> set[str]:
    return {provider_name(settings, r, m) for r in settings.regions for m in models}


async def _open_vastai(settings: Settings, stack: contextlib.AsyncExitStack) -> providers.VastAIProvider:
    assert settings.vastai_image is not None  # check() said so
    client = httpx.AsyncClient(timeout=30.0)
    stack.push_async_callback(client.aclose)
    extra = {"onstart": settings.vastai_onstart} if settings.vastai_onstart else {}
    return providers.VastAIProvider(
        api_key=_vastai_key(settings),
        image=settings.vastai_image,
        client=client,
        base_url=settings.vastai_base_url,
        disk_gb=settings.vastai_disk_gb,
        crash_limit=settings.vastai_crash_limit,
        quarantine=SavedQuarantine(settings.data_dir / "vastai-quarantine.json"),
        **extra,  # type: ignore[arg-type]
    )


def _query(settings: Settings, region: Region) -> providers.OfferQuery:
    return providers.OfferQuery(
        gpu_name=settings.vastai_gpu_name,
        region=region,
        num_gpus=settings.vastai_num_gpus,
        max_price_usd_per_hour=settings.vastai_max_price_usd_per_hour,
        min_reliability=settings.vastai_min_reliability,
        min_gpu_ram_gb=settings.vastai_min_gpu_ram_gb,
    )


def _local_url(settings: Settings) -> str:
    return f"{'https' if settings.tls_cert_file else 'http'}://{settings.host}:{settings.port}"


def _local_provider(settings: Settings, region: Region) -> providers.LocalProvider:
    command: tuple[str, ...] = providers.DEFAULT_WORKER_COMMAND
    if settings.tls_ca_file:
        command = (*command, "--ca-file", str(settings.tls_ca_file))
    return providers.LocalProvider(
        command=command,
        region=region,
        log_dir=settings.data_dir / "workers" / region.value,
        stop_timeout_s=10.0,
    )


def _config(settings: Settings, models: Mapping[str, str]) -> autoscale.AutoscalerConfig:
    waits, deadlines = settings.autoscale_wait_target_seconds, settings.autoscale_backlog_deadline_seconds
    return autoscale.AutoscalerConfig(
        models=tuple(autoscale.ManagedModel(m, b, settings.worker_slots) for m, b in models.items()),
        policy=autoscale.PolicyConfig(
            cooldown_s=settings.autoscale_cooldown_seconds,
            min_workers=settings.autoscale_min_workers,
            max_workers=settings.autoscale_max_workers,
            spend_cap_usd_per_hour=settings.autoscale_spend_cap_usd_per_hour,
            batch_scales_to_zero=settings.autoscale_batch_scales_to_zero,
        ),
        targets=autoscale.FleetTargets(
            wait_target_s={p: waits[p.value] for p in Priority},
            deadline_s={p: deadlines[p.value] for p in Priority},
            initial_lag_s=settings.autoscale_boot_seconds,
            boot_timeout_s=settings.autoscale_boot_timeout_seconds,
        ),
        windows=autoscale.SignalWindows(
            settings.autoscale_short_window_seconds, settings.autoscale_long_window_seconds
        ),
        interval_s=settings.autoscale_interval_seconds,
    )
