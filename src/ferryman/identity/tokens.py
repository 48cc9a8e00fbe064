"""Token secrets: `fm_` (API) or `fmw_` (worker) + 32 random bytes, stored only as SHA-256 hashes; and
`fms_` short-lived tokens, HMAC-signed claims that verify without the database (docs/adr/0003-short-lived-tokens.md).

The random secrets carry 256 bits of randomness, so a fast unsalted hash is enough: nothing to brute-force.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from typing import Any

API_PREFIX = "fm_"
WORKER_PREFIX = "fmw_"
SHORT_PREFIX = "fms_"
SESSION_PREFIX = "fmb_"
INVITATION_PREFIX = "fmi_"
ENROLMENT_PREFIX = "fme_"
MAX_TOKEN_LENGTH = 200
MAX_SHORT_TOKEN_LENGTH = 1500


def new_secret(prefix: str) -> str:
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_claims(key: bytes, claims: dict[str, Any]) -> str:
    """`fms_<claims>.<mac>`: base64url of compact JSON, then base64url of HMAC-SHA256 over the claims part."""
    body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return f"{SHORT_PREFIX}{body}.{_b64(mac)}"


def verify_claims(key: bytes, token: str) -> dict[str, Any] | None:
    """The claims of a token this key signed, or None for anything else (never raises on bad input)."""
    if not token.startswith(SHORT_PREFIX) or len(token) > MAX_SHORT_TOKEN_LENGTH:
        return None
    body, dot, mac = token[len(SHORT_PREFIX) :].partition(".")
    if not dot:
        return None
    try:
        expected = hmac.new(key, body.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(mac)):
            return None
        claims = json.loads(_unb64(body))
    except (ValueError, binascii.Error, UnicodeError):
        return None
    return claims if isinstance(claims, dict) else None
