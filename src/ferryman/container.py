"""The app container: every engine, store, service and queue node, built from Settings and owned in one place."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman import autoscale, dispatch, fleet_wiring, identity, jobs, privacy, store
from ferryman.background import Background
from ferryman.clock import Clock, SystemClock
from ferryman.config import Settings
from ferryman.types import Region

log = structlog.get_logger(__name__)


@dataclass
class Container:
    settings: Settings
    clock: Clock
    registry: CollectorRegistry
    autoscaler: autoscale.Autoscaler | None
    # background work of the domains (sweepers, outbox consumers): stopped before the stores it writes to
    background: Background
    # fields named like a package come last: from their line on, the name means the field in this class body
    webhooks: jobs.WebhookSender
    bootstrap: identity.Bootstrap
    accounts: identity.Accounts
    nodes: dict[Region, dispatch.QueueNode]
    identity: identity.IdentityService
    jobs: jobs.JobService


@contextlib.asynccontextmanager
async def open_container(settings: Settings, *, clock: Clock | None = None) -> AsyncIterator[Container]:
    """Open stores (migrating them), start the writers and queue nodes; close all of it in reverse on exit."""
    clock = clock or SystemClock()
    regions = [Region(r) for r in settings.regions]
    async with contextlib.AsyncExitStack() as stack:
        global_engine = store.create_engine(settings.global_url())
        stack.push_async_callback(global_engine.dispose)
        await store.migrate(global_engine, "global")
        global_writer = store.StoreWriter(global_engine, name="global")
        global_writer.start()
        stack.push_async_callback(global_writer.stop)
        accounts = _open_accounts(settings, engine=global_engine, writer=global_writer, clock=clock)
        identity_service = accounts.identity

        http = jobs.webhook_client(
            timeout_seconds=settings.webhook_timeout_seconds, allow_private=settings.allow_private_webhooks
        )
        stack.push_async_callback(http.aclose)
        webhooks = jobs.WebhookSender(
            client=http,
            secret_for=identity_service.webhook_secret,
            max_attempts=settings.webhook_max_attempts,
            backoff_seconds=settings.webhook_backoff_seconds,
            max_backoff_seconds=settings.webhook_max_backoff_seconds,
        )

        registry = CollectorRegistry()
        metrics = dispatch.NodeMetrics(registry)
        events = jobs.JobEvents()
        node_settings = dispatch.NodeSettings(
            lease_seconds=settings.lease_seconds,
            tick_seconds=settings.lease_check_interval_seconds,
            poison_threshold=settings.poison_threshold,
            max_attempts=settings.max_attempts,
            backlog_cap=settings.backlog_cap,
            event_retention_seconds=settings.event_retention_seconds,
            quarantine_after_failures=settings.quarantine_after_failures,
            quarantine_cooldown_seconds=settings.quarantine_cooldown_seconds,
            quarantine_max_cooldown_seconds=settings.quarantine_max_cooldown_seconds,
            max_models_per_worker=settings.max_models_per_worker,
            model_retention_seconds=settings.model_retention_seconds,
        )
        repos: dict[Region, jobs.JobRepository] = {}
        nodes: dict[Region, dispatch.QueueNode] = {}
        # the checks look regions up when a job comes, so they are built now and see the nodes added below
        admission = jobs.Admission(
            jobs.standard_checks(
                nodes=nodes,
                repos=repos,
                allow_private_webhooks=settings.allow_private_webhooks,
                allow_private_input_urls=settings.allow_private_input_urls,
            )
        )
        for region in regions:
            engine = store.create_engine(settings.region_database_url(region.value))
            stack.push_async_callback(engine.dispose)
            await store.migrate(engine, "region")
            writer = store.StoreWriter(engine, name=region.value)
            writer.start()
            stack.push_async_callback(writer.stop)
            region_dir = settings.region_dir(region.value)
            cipher = privacy.PayloadCipher(
                region=region.value,
                master_key=privacy.load_or_create_master_key(region_dir / "master.key"),
                engine=engine,
                writer=writer,
            )
            webhooks.add_region(region.value, jobs.WebhookOutbox(engine=engine, writer=writer, cipher=cipher))
            repos[region] = jobs.JobRepository(
                region=region,
                engine=engine,
                writer=writer,
                cipher=cipher,
                blobs=store.LocalBlobStore(region_dir / "blobs"),
            )
            node = dispatch.QueueNode(
                region,
                repo=repos[region],
                events=events,
                clock=clock,
                settings=node_settings,
                metrics=metrics,
                # in order: holds are released before anything else hears of the end
                completions=[admission, jobs.OnFinished(webhooks.notify)],
            )
            await node.start()
            stack.push_async_callback(node.stop)
            nodes[region] = node
        webhooks.start()  # stopped first: its last writes land before the region writers stop
        stack.push_async_callback(webhooks.aclose)
        registry.register(dispatch.NodeGauges(lambda: [n.snapshot() for n in nodes.values()]))

        job_service = jobs.JobService(
            repos=repos,
            nodes=dict(nodes),
            events=events,
            clock=clock,
            settings=jobs.JobSettings(
                default_deadline_seconds=settings.default_deadline_seconds,
                max_wait_seconds=settings.max_wait_seconds,
                allow_private_webhooks=settings.allow_private_webhooks,
                allow_private_input_urls=settings.allow_private_input_urls,
            ),
            admission=admission,
        )
        boot = await identity_service.bootstrap(settings.data_dir, regions)
        autoscaler = (
            await fleet_wiring.open_autoscaler(
                settings, nodes, clock=clock, registry=registry, accounts=accounts, stack=stack
            )
            if settings.autoscale
            else None
        )
        if autoscaler is not None:
            autoscaler.start()
            stack.push_async_callback(
                autoscaler.stop
            )  # before the nodes stop: workers finish their jobs first
        background = Background()
        stack.push_async_callback(background.stop)  # pushed last: stopped first
        yield Container(
            settings=settings,
            clock=clock,
            registry=registry,
            autoscaler=autoscaler,
            background=background,
            identity=identity_service,
            jobs=job_service,
            nodes=nodes,
            webhooks=webhooks,
            bootstrap=boot,
            accounts=accounts,
        )


@contextlib.asynccontextmanager
async def open_accounts(settings: Settings) -> AsyncIterator[identity.Accounts]:
    """The global store alone, for operator commands that run beside (or without) a server."""
    engine = store.create_engine(settings.global_url())
    try:
        await store.migrate(engine, "global")
        writer = store.StoreWriter(engine, name="global-cli")
        writer.start()
        try:
            yield _open_accounts(settings, engine=engine, writer=writer, clock=SystemClock())
        finally:
            await writer.stop()
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def open_identity(settings: Settings) -> AsyncIterator[identity.IdentityService]:
    async with open_accounts(settings) as accounts:
        yield accounts.identity


def _open_accounts(
    settings: Settings, *, engine: AsyncEngine, writer: store.StoreWriter, clock: Clock
) -> identity.Accounts:
    """Wire the identity services; the signing key comes from settings or, by default, the data dir."""
    key = (
        settings.secret_key.get_secret_value().encode()
        if settings.secret_key
        else identity.load_or_create_secret_key(settings.data_dir / "secret-key")
    )
    mailer = None
    if settings.smtp_host:
        mailer = identity.SmtpMailer(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_sender,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
        )
    return identity.build_accounts(
        engine=engine,
        writer=writer,
        clock=clock,
        key=key,
        mailer=mailer,
        link_base=settings.base_url(),
        regions=[Region(r) for r in settings.regions],
        invite_required=settings.invite_required,
        session_lifetime_seconds=settings.session_lifetime_seconds,
    )
