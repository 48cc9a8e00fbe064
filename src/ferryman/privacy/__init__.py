"""Privacy by construction: payload encryption with per-org region keys (more to come: retention, erasure)."""

from ferryman.privacy.keys import PayloadCipher, load_or_create_master_key

__all__ = ["PayloadCipher", "load_or_create_master_key"]
