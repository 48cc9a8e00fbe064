"""`ferryman tls dev-cert`: a local CA and a localhost certificate, so HTTPS-only clients (fal-client) can try
Ferryman on this machine with one command. Not for a server other machines reach: use a real certificate there.
"""

from __future__ import annotations

import datetime
import shlex
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from rich.console import Console

from ferryman import tls
from ferryman.config import Settings

tls_app = typer.Typer(name="tls", no_args_is_help=True, help="Certificates for serving HTTPS locally.")
console = Console()

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (default ./.ferryman or $FERRYMAN_HOME).")
]


def _quoted(path: Path) -> str:
    return shlex.quote(str(path))


def _still_valid(local: tls.LocalCA, *, for_days: int = 1) -> bool:
    """All three files are there and the certificate does not expire within `for_days`."""
    if not all(p.exists() for p in (local.ca_file, local.cert_file, local.key_file)):
        return False
    cert = x509.load_pem_x509_certificate(local.cert_file.read_bytes())
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=for_days)
    return cert.not_valid_after_utc > soon


def _say(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _instructions(local: tls.LocalCA, port: int) -> list[str]:
    """What to paste: the server's flags, and the client environment that keeps fal-client on this machine."""
    return [
        f"ferryman up --port {port} --tls-cert {_quoted(local.cert_file)} --tls-key {_quoted(local.key_file)}",
        f"export SSL_CERT_FILE={_quoted(local.ca_file)}",
        f"export FAL_RUN_HOST=localhost:{port}/fal/run FAL_QUEUE_RUN_HOST=localhost:{port}/fal",
    ]


@tls_app.command("dev-cert")
def dev_cert(
    data_dir: DataDir = None,
    port: Annotated[int, typer.Option("--port", help="Port the printed commands use.")] = 8000,
    days: Annotated[int, typer.Option(min=1, max=825, help="Validity of the CA and certificate.")] = 90,
    force: Annotated[bool, typer.Option("--force", help="Make a new CA even if one is there.")] = False,
) -> None:
    """Write a local CA (tls/ca.pem) and a certificate for localhost and 127.0.0.1 it signed (tls/server.pem,
    tls/server.key, mode 600) into the data dir, and print the flags and SSL_CERT_FILE line to use them."""
    settings = Settings(data_dir=data_dir) if data_dir is not None else Settings()
    directory = settings.data_dir / "tls"
    existing = tls.LocalCA(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    if not force and _still_valid(existing):
        local = existing  # clients already trust this CA: keep it (--force makes a new one)
        _say(f"# kept the CA and certificate already in {directory} (--force replaces them)")
    else:
        local = tls.make_local_ca(directory, days=days, ca_name="Ferryman local development CA")
        _say(f"# wrote {local.ca_file}, {local.cert_file} and {local.key_file} (key mode 600)")
    for line in _instructions(local, port):
        _say(line)
