"""Connected workers: what each serves, its slots and the jobs it holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ferryman.dispatch.live import LiveJob
from ferryman.protocol import ModelOffer


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
    running: dict[str, LiveJob] = field(default_factory=dict)
    draining: bool = False
    paused: bool = False
    quarantined: bool = False
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
    def accepts_jobs(self) -> bool:
        return not (self.draining or self.paused or self.quarantined) and len(self.running) < self.slots

    @property
    def load(self) -> float:
        return len(self.running) / self.slots
