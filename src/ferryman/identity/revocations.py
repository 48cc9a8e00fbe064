"""In-process authentication state: cached principals of API tokens and the revocations short-lived tokens
are checked against. Every change (revoke, disable, role or region change) lands here at once.

Scaled out, each API node keeps its own copy and the same calls arrive through a broadcast channel (Redis
pub/sub); docs/identity.md and docs/adr/0003-short-lived-tokens.md describe it.
"""

from __future__ import annotations

from ferryman.identity.models import Principal
from ferryman.types import OrgId, Region, UserId

MAX_CACHED = 10_000
SHORT_TOKEN_MAX_SECONDS = 3600


class AuthState:
    def __init__(self) -> None:
        self._principals: dict[str, tuple[float, Principal]] = {}
        self._revoked: dict[str, float] = {}  # token or session id -> wall time after which it cannot matter
        self._member_changed: dict[tuple[OrgId, UserId], float] = {}
        self._org_region: dict[OrgId, Region] = {}

    def cached(self, digest: str, *, monotonic_now: float) -> Principal | None:
        entry = self._principals.get(digest)
        if entry is None or entry[0] <= monotonic_now:
            return None
        return entry[1]

    def cache(self, digest: str, principal: Principal, *, until: float) -> None:
        if len(self._principals) > MAX_CACHED:
            self._principals.clear()
        self._principals[digest] = (until, principal)

    def uncache(self, digest: str) -> None:
        self._principals.pop(digest, None)

    def _evict(
        self, *, token_id: str | None = None, org_id: OrgId | None = None, user_id: UserId | None = None
    ) -> None:
        for digest, (_, p) in list(self._principals.items()):
            if p.token_id == token_id or (p.org_id == org_id and user_id in (None, p.user_id)):
                del self._principals[digest]

    def revoke_token(self, token_id: str, *, now: float) -> None:
        """An API token or a browser session ended: it and the short-lived tokens minted from it stop now."""
        self._evict(token_id=token_id)
        self._revoked[token_id] = now + SHORT_TOKEN_MAX_SECONDS
        self._prune(now)

    def member_changed(self, org_id: OrgId, user_id: UserId, *, now: float) -> None:
        """A role changed or a member was disabled: their tokens re-read the role; short-lived ones stop."""
        self._evict(org_id=org_id, user_id=user_id)
        self._member_changed[(org_id, user_id)] = now

    def org_changed(self, org_id: OrgId, region: Region) -> None:
        self._evict(org_id=org_id)
        self._org_region[org_id] = region

    def is_short_token_valid(self, *, parent: str, org_id: OrgId, user_id: UserId, issued_at: float) -> bool:
        if parent in self._revoked:
            return False
        return issued_at > self._member_changed.get((org_id, user_id), 0.0)

    def region_of(self, org_id: OrgId, signed: Region) -> Region:
        return self._org_region.get(org_id, signed)

    def _prune(self, now: float) -> None:
        if len(self._revoked) > MAX_CACHED:
            self._revoked = {k: v for k, v in self._revoked.items() if v > now}
