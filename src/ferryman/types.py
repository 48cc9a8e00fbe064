"""The platform's shared vocabulary: ids, regions, tasks and priority classes.

A leaf module: it imports nothing from Ferryman, so every package may import it.
"""

from __future__ import annotations

import os
import time
from enum import StrEnum
from typing import NewType

JobId = NewType("JobId", str)
OrgId = NewType("OrgId", str)
UserId = NewType("UserId", str)
TokenId = NewType("TokenId", str)
WorkerId = NewType("WorkerId", str)


class Region(StrEnum):
    US = "us"
    EU = "eu"


class Task(StrEnum):
    CHAT = "chat"
    COMPLETION = "completion"
    EMBEDDINGS = "embeddings"
    SPEECH = "speech"
    TRANSCRIPTION = "transcription"
    IMAGE = "image"
    VIDEO = "video"


class Priority(StrEnum):
    """Priority classes, served strictly in this order: interactive before async before batch."""

    INTERACTIVE = "interactive"
    ASYNC = "async"
    BATCH = "batch"

    @property
    def rank(self) -> int:
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.INTERACTIVE: 0, Priority.ASYNC: 1, Priority.BATCH: 2}

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str) -> str:
    """A prefixed, time-ordered id (48-bit milliseconds + 80 random bits, Crockford base32).

    Ids sort by creation time, which makes them usable as pagination cursors.
    """
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"
