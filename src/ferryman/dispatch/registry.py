"""Connected workers: what each serves, its slots, the jobs it holds, and its standing (quarantine, probe)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ferryman.protocol import ModelOffer


class WorkerRefused(Exception):
    """A registration the node will not accept; `code` goes to the worker in an `error` frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(slots=True)
class Quarantine:
    """Why a worker id gets no work: until `until_mono`, then one probe job at a time. Kept by worker id, so a
    reconnect does not wash it away; a probe that fails doubles `cooldown_seconds` (up to a maximum)."""

    cooldown_seconds: float
    until_mono: float


@dataclass(slots=True, eq=False)
class WorkerConn:
    id: str
    region: str
    offers: tuple[ModelOffer, ...]
    slots: int
    send: Callable[[str], None]
    close: Callable[[], None]
    backend: str = ""
    connected_mono: float = 0.0
    credential: str | None = None
    # ids of the jobs it holds, in dispatch order (a set that keeps order); the job itself lives in the node,
    # so this module needs no job type and `live.py` may name this one
    running: dict[str, None] = field(default_factory=dict)
    draining: bool = False
    paused: bool = False
    quarantined: bool = False
    # a quarantined worker whose cool-down is over takes one job (the probe) when this is set
    probe_due: bool = False
    probe_job: str | None = None
    # jobs that failed or lapsed here and then succeeded elsewhere, since this worker last succeeded
    failures_in_row: int = 0

    # offered models still loading (registered before its backend had loaded them): no jobs for them yet
    loading: set[str] = field(default_factory=set)
    models: frozenset[str] = frozenset()  # the models it takes jobs for now

    def __post_init__(self) -> None:
        self.models = frozenset(o.name for o in self.offers) - self.loading

    def model_loaded(self, model: str) -> bool:
        """A loading model is ready: it takes jobs for it from now on. False if it was not loading."""
        if model not in self.loading:
            return False
        self.loading.discard(model)
        self.models = self.models | {model}
        return True

    @property
    def free_slots(self) -> int:
        return self.slots - len(self.running)

    @property
    def in_service(self) -> bool:
        """Whether it takes work in principle (now or once a slot frees): a retry may wait for it."""
        return not (self.draining or self.paused or self.quarantined)

    @property
    def accepts_jobs(self) -> bool:
        if self.draining or self.paused:
            return False
        if self.quarantined:
            return self.probe_due and not self.running
        return len(self.running) < self.slots

    @property
    def load(self) -> float:
        return len(self.running) / self.slots
