"""`ferryman tls dev-cert`: a CA and a localhost certificate in the data dir, keys mode 600, lines to paste."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

from typer.testing import CliRunner

from ferryman.cli import app


def test_dev_cert_writes_a_ca_and_a_certificate_it_signed_and_keeps_them(tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["tls", "dev-cert", "--data-dir", str(tmp_path), "--port", "8443"])
    tls_dir = tmp_path / "tls"
    context = ssl.create_default_context(cafile=str(tls_dir / "ca.pem"))
    context.load_cert_chain(tls_dir / "server.pem", tls_dir / "server.key")  # the key matches the cert
    before = (tls_dir / "ca.pem").read_bytes()
    again = runner.invoke(app, ["tls", "dev-cert", "--data-dir", str(tmp_path)])
    assert (first.exit_code, again.exit_code, stat.S_IMODE((tls_dir / "server.key").stat().st_mode)) == (
        0,
        0,
        0o600,
    )
    assert f"export SSL_CERT_FILE={tls_dir / 'ca.pem'}" in first.output
    assert f"--tls-cert {tls_dir / 'server.pem'} --tls-key {tls_dir / 'server.key'}" in first.output
    assert "FAL_RUN_HOST=localhost:8443/fal/run FAL_QUEUE_RUN_HOST=localhost:8443/fal" in first.output
    assert (tls_dir / "ca.pem").read_bytes() == before  # clients that trust it keep working
