"""The `ferryman` command: `up` runs everything, `serve` the API alone, `worker` a worker agent."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import shlex
import shutil
import signal
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ferryman.autoscale import simulate_app
from ferryman.cli_identity import identity_app
from ferryman.cli_tls import tls_app
from ferryman.cli_worker import run_on_uvloop, worker
from ferryman.config import Settings
from ferryman.fleet_wiring import BACKEND_TASKS
from ferryman.logs import configure_logging
from ferryman.types import Region, Task

if TYPE_CHECKING:
    from ferryman.dispatch import QueueNode

T = TypeVar("T")

app = typer.Typer(
    help="Ferryman: one API in front of a fleet of GPU workers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
orgs_app = typer.Typer(help="Manage organizations (operator commands; they act on the data dir directly).")
app.add_typer(orgs_app, name="orgs")
app.add_typer(simulate_app)
app.add_typer(identity_app)
app.add_typer(tls_app)
app.command("worker")(worker)
console = Console(stderr=True)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (default ./.ferryman or $FERRYMAN_HOME).")
]
Port = Annotated[int, typer.Option("--port", help="API port.")]
TlsCert = Annotated[Path | None, typer.Option("--tls-cert", help="PEM certificate: serve HTTPS and WSS.")]
TlsKey = Annotated[Path | None, typer.Option("--tls-key", help="PEM private key of --tls-cert.")]
Providers = Annotated[
    list[str] | None,
    typer.Option(
        "--provider",
        help="Where autoscaled workers run: local or vastai; for one region or model: eu=vastai, "
        "us/echo-1=local (repeatable). The Vast.ai API key comes only from FERRYMAN_VASTAI_API_KEY(_FILE).",
    ),
]
AutoscaleModels = Annotated[
    list[str] | None,
    typer.Option(
        "--autoscale-model", help="A model to autoscale and its backend: name=backend (repeatable)."
    ),
]
VastImage = Annotated[str | None, typer.Option("--vastai-image", help="Docker image of rented workers.")]
VastGpu = Annotated[str | None, typer.Option("--vastai-gpu", help="GPU model to rent, e.g. 'RTX 4090'.")]
MaxPrice = Annotated[
    float | None, typer.Option("--max-price", help="Most a rented machine may cost, $ per hour.")
]
SpendCap = Annotated[
    float | None, typer.Option("--spend-cap", help="Most a region's autoscaled workers may cost, $ per hour.")
]


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    pairs = {}
    for value in values or []:
        key, sep, chosen = value.partition("=")
        if not sep or not key or not chosen:
            raise typer.BadParameter(f"{what} takes key=value, got {value!r}")
        pairs[key.strip()] = chosen.strip()
    return pairs


def _autoscale_overrides(
    providers: list[str] | None,
    models: list[str] | None,
    image: str | None,
    gpu: str | None,
    max_price: float | None,
    spend_cap: float | None,
) -> dict[str, object]:
    """Settings the autoscaling flags override; a bare --provider (no `=`) is the default provider."""
    default = [p for p in providers or [] if "=" not in p]
    overrides: dict[str, object] = {
        "autoscale_provider": default[-1] if default else None,
        "autoscale_providers": _pairs([p for p in providers or [] if "=" in p], "--provider") or None,
        "autoscale_models": _pairs(models, "--autoscale-model") or None,
        "vastai_image": image,
        "vastai_gpu_name": gpu,
        "vastai_max_price_usd_per_hour": max_price,
        "autoscale_spend_cap_usd_per_hour": spend_cap,
    }
    return overrides


def _check_autoscaling(settings: Settings) -> None:
    from ferryman.fleet_wiring import check

    if problems := check(settings):
        for problem in problems:
            _say(f"cannot autoscale: {problem}", "red")
        raise typer.Exit(2)


def _settings(data_dir: Path | None, **overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)  # type: ignore[arg-type]


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


# the tasks of the backends `ferryman up` starts, so each region's node takes jobs for their models before the
# workers have connected (tests/test_cli_up.py keeps this equal to what the backends offer)
LOCAL_BACKEND_TASKS: Mapping[str, frozenset[Task]] = BACKEND_TASKS
READY_POLL_SECONDS = 0.25


def _say(text: str, style: str | None = None) -> None:
    """A console line as it is: no markup read into it (it may quote a worker's stderr), no wrapping."""
    console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)


def _try_curl(url: str, settings: Settings, model: str) -> str:
    """The README's first request, for this server and model."""
    body = json.dumps(
        {
            "task": "chat",
            "model": model,
            "wait": 60,
            "input": {"messages": [{"role": "user", "content": "Say hello in French."}], "max_tokens": 32},
        }
    )
    token = shlex.quote(str(settings.data_dir / "admin-token"))
    return f'curl -s {url}/v1/jobs -H "Authorization: Bearer $(cat {token})" -d {shlex.quote(body)}'


async def _announce_ready(
    nodes: Mapping[Region, QueueNode], model: str, given_up: set[Region], try_it: str
) -> None:
    """Print one line each time `model` becomes warm in every region still trying (again after a restart)."""
    announced = False
    while True:
        trying = [r for r in nodes if r not in given_up]
        warm = [r.value for r in trying if model in nodes[r].model_readiness()["warm"]]
        all_warm = bool(trying) and len(warm) == len(trying)
        if all_warm and not announced:
            _say(f"ready: {model} warm in {', '.join(warm)} — try: {try_it}", "bold green")
        announced = all_warm
        await asyncio.sleep(READY_POLL_SECONDS)


def _speech_backends() -> list[tuple[str, str]]:
    """(backend, model) of the speech engines installed here: espeak-ng for speech, pocketsphinx to transcribe."""
    found = []
    if shutil.which("espeak-ng"):
        found.append(("espeak", "espeak-ng"))
    if shutil.which("ffmpeg") and importlib.util.find_spec("pocketsphinx") is not None:
        found.append(("pocketsphinx", "pocketsphinx-en-us"))
    return found


async def _serve(settings: Settings, *, with_workers: bool) -> None:
    from ferryman.server import ApiServer, StartupFailed
    from ferryman.supervisor import RestartPolicy, WorkerCommand, WorkerSupervisor, worker_argv

    server = ApiServer(settings)
    try:
        await server.start()
    except StartupFailed as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    assert server.container is not None
    url = f"{'https' if settings.tls_cert_file else 'http'}://{settings.host}:{settings.port}"
    boot = server.container.bootstrap
    console.print(f"[bold green]Ferryman[/] API on {url}  (data: {settings.data_dir})")
    if boot.admin_token:
        console.print(f"Admin API token (shown once, also in {settings.data_dir / 'admin-token'}):")
        print(boot.admin_token, flush=True)
    else:
        console.print(f"Admin API token: in {settings.data_dir / 'admin-token'}")
    supervisor = None
    watcher: asyncio.Task[None] | None = None
    if with_workers:
        backend = "echo" if settings.dev else "llamacpp"
        model = "echo-1" if settings.dev else settings.model_name
        commands = []
        serves: dict[str, tuple[Region, str]] = {}  # command name -> (region, model)
        nodes = server.container.nodes
        ca = ["--ca-file", str(settings.tls_ca_file)] if settings.tls_ca_file else []
        # with --autoscale the autoscaler starts (and stops) the model's workers; speech stays a fixed set
        served = ([] if settings.autoscale else [(backend, model)]) + (
            [] if settings.dev or not settings.speech_workers else _speech_backends()
        )
        for region in settings.regions:
            token = (settings.data_dir / f"worker-token-{region}").read_text().strip()
            for name, served_model in served:
                argv = worker_argv(
                    url=url,
                    region=region,
                    backend=name,
                    models=[served_model],
                    slots=settings.worker_slots,
                    extra=["--worker-id", f"local-{region}-{name}-{socket.gethostname()}", *ca],
                )
                commands.append(
                    WorkerCommand(f"worker-{region}-{name}", argv, {"FERRYMAN_WORKER_TOKEN": token})
                )
                serves[commands[-1].name] = (Region(region), served_model)
                nodes[Region(region)].expect_model(served_model, LOCAL_BACKEND_TASKS[name])
        given_up: set[Region] = set()

        def on_give_up(command: WorkerCommand) -> None:
            region, served_model = serves[command.name]
            nodes[region].forget_expected(served_model)
            if served_model == model:
                given_up.add(region)

        supervisor = WorkerSupervisor(
            commands,
            policy=RestartPolicy(
                healthy_after_seconds=settings.worker_healthy_after_seconds,
                give_up_after=settings.worker_give_up_after,
            ),
            report=lambda text: _say(text, "red"),
            on_give_up=on_give_up,
        )
        supervisor.start()
        watcher = asyncio.create_task(
            _announce_ready(nodes, model, given_up, _try_curl(url, settings, model))
        )
        console.print(
            f"Started {len(commands)} local workers ({backend}, model {model}). Ctrl-C stops everything."
        )
        if settings.autoscale:
            console.print(f"Autoscaling {model} ({backend}) workers per region: see GET /v1/admin/fleet.")
    waiter = asyncio.create_task(_wait_for_signal())
    server_done = asyncio.create_task(server.wait())
    await asyncio.wait([waiter, server_done], return_when=asyncio.FIRST_COMPLETED)
    console.print("Stopping: draining workers…")
    if watcher is not None:
        watcher.cancel()
    if supervisor is not None:
        await supervisor.stop()
    if server.container.autoscaler is not None:
        await server.container.autoscaler.stop()  # while the API still runs, so workers can finish their jobs
    await server.stop()
    waiter.cancel()
    console.print("Stopped.")


@app.command()
def up(
    port: Port = 8000,
    data_dir: DataDir = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    dev: Annotated[
        bool, typer.Option("--dev", help="Serve the `echo` test backend instead of the real model.")
    ] = False,
    slots: Annotated[int, typer.Option(help="Slots per local worker.")] = 1,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    tls_ca: Annotated[
        Path | None, typer.Option("--tls-ca", help="CA bundle local workers verify with.")
    ] = None,
    autoscale: Annotated[
        bool,
        typer.Option("--autoscale", help="Start and stop the model's workers with the autoscaler."),
    ] = False,
    provider: Providers = None,
    autoscale_model: AutoscaleModels = None,
    vastai_image: VastImage = None,
    vastai_gpu: VastGpu = None,
    max_price: MaxPrice = None,
    spend_cap: SpendCap = None,
) -> None:
    """Run the API, a queue node per region and local workers per region: the local model, speech, transcription."""
    settings = _settings(
        data_dir,
        port=port,
        host=host,
        dev=dev or None,
        worker_slots=slots,
        tls_cert_file=tls_cert,
        tls_key_file=tls_key,
        tls_ca_file=tls_ca,
        autoscale=autoscale or None,
        **_autoscale_overrides(provider, autoscale_model, vastai_image, vastai_gpu, max_price, spend_cap),
    )
    configure_logging(settings.log_level)
    _check_autoscaling(settings)
    run_on_uvloop(_serve(settings, with_workers=True))


@app.command()
def serve(
    port: Port = 8000,
    data_dir: DataDir = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    autoscale: Annotated[
        bool,
        typer.Option(
            "--autoscale", help="Size each region's fleet with the autoscaler (e.g. rent GPUs on Vast.ai)."
        ),
    ] = False,
    provider: Providers = None,
    autoscale_model: AutoscaleModels = None,
    vastai_image: VastImage = None,
    vastai_gpu: VastGpu = None,
    max_price: MaxPrice = None,
    spend_cap: SpendCap = None,
) -> None:
    """Run the API and the region queue nodes only; workers join from elsewhere with `ferryman worker`, or are
    started (local) or rented (vastai) by the autoscaler with --autoscale."""
    settings = _settings(
        data_dir,
        port=port,
        host=host,
        tls_cert_file=tls_cert,
        tls_key_file=tls_key,
        autoscale=autoscale or None,
        **_autoscale_overrides(provider, autoscale_model, vastai_image, vastai_gpu, max_price, spend_cap),
    )
    configure_logging(settings.log_level)
    _check_autoscaling(settings)
    run_on_uvloop(_serve(settings, with_workers=False))


@orgs_app.command("create")
def orgs_create(
    name: str,
    data_dir: DataDir = None,
    region: Annotated[str, typer.Option(help="Data region: us or eu.")] = "us",
    weight: Annotated[float, typer.Option(help="Fair-share weight against other orgs.")] = 1.0,
    token_days: Annotated[int, typer.Option(min=1, max=90, help="Expiry of the API token printed.")] = 30,
) -> None:
    """Create an organization with an owner and print an API token for it (shown once).

    The same checked, audited use cases as `POST /v1/orgs` and `POST /v1/tokens`: the org's audit log shows
    `org.created` and `token.created`, by its new Owner.
    """
    from ferryman.container import open_accounts
    from ferryman.errors import FerrymanError
    from ferryman.identity import ALL_SCOPES

    settings = _settings(data_dir)

    async def main() -> tuple[str, str]:
        async with open_accounts(settings) as accounts:
            owner = await accounts.orgs.create_for_operator(name=name, region=Region(region), weight=weight)
            issued, _ = await accounts.identity.create_token(
                owner, name=f"{name} owner", scopes=ALL_SCOPES, expires_in_days=token_days
            )
            return owner.org_id, issued.secret

    if region not in Region._value2member_map_:
        console.print(f"[red]unknown region {region!r}; choose one of {settings.regions}[/]")
        raise typer.Exit(2)
    try:
        org_id, secret = run_on_uvloop(main())
    except FerrymanError as exc:
        console.print(f"[red]{exc.code}: {escape(exc.message)}[/]", highlight=False)
        raise typer.Exit(2) from None
    console.print(f"Created org {org_id} in region {region}. API token (shown once):")
    print(secret)


@app.command("config-docs")
def config_docs(
    output: Annotated[Path, typer.Option(help="Where to write the page.")] = Path("docs/configuration.md"),
) -> None:
    """Write docs/configuration.md from the settings' declarations."""
    from ferryman.config import settings_markdown

    output.write_text(settings_markdown())
    console.print(f"wrote {output}")


def main() -> None:
    with contextlib.suppress(KeyboardInterrupt):
        app()
