"""Token secrets: `fm_` (API) or `fmw_` (worker) + 32 random bytes; stored only as SHA-256 hashes.

The secrets carry 256 bits of randomness, so a fast unsalted hash is enough: nothing to brute-force.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

API_PREFIX = "fm_"
WORKER_PREFIX = "fmw_"
MAX_TOKEN_LENGTH = 200


def new_secret(prefix: str) -> str:
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
