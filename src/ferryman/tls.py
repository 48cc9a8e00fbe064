"""A local certificate authority and a server certificate it signed, for HTTPS on this machine.

fal-client speaks only HTTPS, so trying the fal surface locally needs a certificate the client trusts; a
self-signed server certificate would have to be trusted as a CA, which Python's ssl refuses for a leaf. A tiny CA
(`ca.pem`, given to clients as `SSL_CERT_FILE`) that signed `server.pem` for localhost and 127.0.0.1 is what
`ferryman tls dev-cert` writes and what the tests serve with. Private keys are written mode 600.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DEFAULT_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class LocalCA:
    ca_file: Path  # what clients trust (SSL_CERT_FILE, --ca-file)
    cert_file: Path  # --tls-cert
    key_file: Path  # --tls-key


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _subject_names(names: tuple[str, ...]) -> list[x509.GeneralName]:
    found: list[x509.GeneralName] = []
    for name in names:
        try:
            found.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            found.append(x509.DNSName(name))
    return found


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=True,
        crl_sign=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_private(path: Path, data: bytes) -> None:
    """Write `data` readable by its owner only, also when the file was there before with wider rights."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(data)


def make_local_ca(
    directory: Path,
    *,
    names: tuple[str, ...] = DEFAULT_NAMES,
    days: int = 1,
    ca_name: str = "Ferryman test CA",
) -> LocalCA:
    """A CA (its certificate in ca.pem) that signed a server certificate (server.pem, server.key) for `names`.

    The CA's private key is never written: once the server certificate is signed, nothing else can be signed
    with the CA a client was told to trust."""
    now = datetime.datetime.now(datetime.UTC)
    valid_from, valid_to = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(ca_name))
        .issuer_name(_name(ca_name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(x509.SubjectAlternativeName(_subject_names(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    local = LocalCA(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    local.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    local.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_private(local.key_file, _pem_key(key))
    return local
