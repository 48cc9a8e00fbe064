"""Workers on Vast.ai's GPU marketplace, driven through its REST API with httpx.AsyncClient.

API shapes follow Vast.ai's published OpenAPI files and CLI (github.com/vast-ai/vast-cli:
openapi/yaml/search_offers.yaml, create_instance.yaml, show_instances.yaml, destroy_instance.yaml;
vast.py `search__offers` and `create__instance`) and vast.ai/developers/api:

- POST   /api/v0/bundles/         search offers; body maps field → {op: value} (eq, neq, gt, gte,
                                  lt, lte, in, nin) plus "order": [[field, "asc"]], "limit", "type";
                                  answers {"offers": [...]} with id, machine_id, gpu_name, num_gpus,
                                  dph_total ($/h), reliability, geolocation ("City, CC")
- PUT    /api/v0/asks/{id}/       rent offer `id`; body image, disk, label, onstart, env (a dict,
                                  as the CLI sends it); answers {"success": true, "new_contract": N}.
                                  env carries the one-time enrolment secret, never a worker token
- GET    /api/v0/instances/       {"instances": [...]} with id, label, machine_id, actual_status,
                                  intended_status, dph_total
- DELETE /api/v0/instances/{id}/  {"success": true}; 404 when it does not exist

Authentication is `Authorization: Bearer <key>`. Residency is enforced twice: the search asks only
for the region's countries, and every returned offer is checked again (an offer whose location we
cannot read is dropped), because an EU job must never reach a machine outside the EU.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import httpx

from ferryman.types import Region

from .base import Instance, InstanceState, Offer, OfferQuery, ProviderError, WorkerLaunch
from .quarantine import Quarantine

DEFAULT_BASE_URL = "https://console.vast.ai/api/v0"
EU_COUNTRIES = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split()
)
REGION_COUNTRIES: Mapping[Region, frozenset[str]] = MappingProxyType(
    {Region.EU: EU_COUNTRIES, Region.US: frozenset({"US"})}
)
ENROLMENT_ENV = "FERRYMAN_ENROLMENT_SECRET"
# The one-time enrolment secret travels in the instance's environment, not in the onstart text; no worker token
# is ever written into an instance (the worker trades the secret for one at start, docs/autoscaler.md).
DEFAULT_ONSTART = (
    'python -m ferryman worker --url {url} --enrolment-secret "$' + ENROLMENT_ENV + '" '
    "--region {region} --backend {backend} --models {models} --slots {slots} --worker-id {worker_id}"
)
_STATES = {
    "running": InstanceState.RUNNING,
    "loading": InstanceState.STARTING,
    "created": InstanceState.STARTING,
    "scheduling": InstanceState.STARTING,
    "exited": InstanceState.EXITED,
    "offline": InstanceState.EXITED,
    "stopped": InstanceState.EXITED,
}
_CRASHED = {"exited", "offline"}


class VastAIProvider:
    """Rents Vast.ai offers for workers, lists and destroys them, and quarantines bad hosts.

    A host is quarantined at once when the caller reports a failed GPU health check, and after
    `crash_limit` crashes (reported by the caller, or seen in `list()` as an instance that exited
    while meant to run). Quarantined hosts are filtered from searches and refused by `provision`.
    Quarantining does not destroy anything: the caller drains and destroys the instance.
    """

    name = "vastai"

    def __init__(
        self,
        *,
        api_key: str,
        image: str,
        client: httpx.AsyncClient | None = None,
        base_url: str = DEFAULT_BASE_URL,
        disk_gb: float = 64.0,
        onstart: str = DEFAULT_ONSTART,
        quarantine: Quarantine | None = None,
        crash_limit: int = 3,
        region_countries: Mapping[Region, frozenset[str]] = REGION_COUNTRIES,
        label_prefix: str = "ferryman",
        timeout_s: float = 30.0,
    ) -> None:
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self.base_url = base_url.rstrip("/")
        self.image, self.disk_gb, self.onstart = image, disk_gb, onstart
        self.quarantine = quarantine if quarantine is not None else Quarantine()
        self.crash_limit = crash_limit
        self.region_countries = region_countries
        self.label_prefix, self.timeout_s = label_prefix, timeout_s
        self._hosts: dict[str, str] = {}
        self._crashes: dict[str, int] = {}
        self._crashed_instances: set[str] = set()

    async def offers(self, query: OfferQuery) -> Sequence[Offer]:
        countries = self.region_countries.get(query.region, frozenset())
        if not countries:
            return ()
        body = await self._call("POST", "/bundles/", json=self._search_body(query, countries))
        offers = (_parse_offer(row, self.region_countries) for row in _rows(body, "offers"))
        matching = [offer for offer in offers if offer is not None and self._acceptable(offer, query)]
        return sorted(matching, key=lambda offer: offer.price_usd_per_hour)[: query.limit]

    async def provision(self, offer: Offer, launch: WorkerLaunch) -> Instance:
        """Rent `offer` for a worker of `launch.region`. Raises ProviderError for a quarantined host,
        an offer outside the worker's region, or a refusal by Vast.ai (e.g. the offer is gone)."""
        if offer.host_id in self.quarantine:
            raise ProviderError(
                f"host {offer.host_id} is quarantined: {self.quarantine.reason(offer.host_id)}"
            )
        if offer.region is not launch.region:
            raise ProviderError(
                f"offer {offer.offer_id} is in region {offer.region.value!r}, "
                f"the worker serves {launch.region.value!r}"
            )
        if not launch.enrolment_secret:
            raise ProviderError("a rented machine joins with an enrolment secret; the launch carries none")
        label = f"{self.label_prefix}:{launch.region.value}:{launch.backend}"
        body = await self._call("PUT", f"/asks/{offer.offer_id}/", json=self._create_body(launch, label))
        contract = body.get("new_contract")
        if not body.get("success") or contract is None:
            raise ProviderError(f"vast.ai did not rent offer {offer.offer_id}: {_message(body)}")
        instance_id = str(contract)
        self._hosts[instance_id] = offer.host_id
        return Instance(
            instance_id, self.name, launch.region, InstanceState.STARTING, offer.host_id,
            offer.price_usd_per_hour, label,
        )  # fmt: skip

    async def list(self) -> Sequence[Instance]:
        """Our instances (by label prefix). Notes crashes of instances meant to be running."""
        body = await self._call("GET", "/instances/")
        found = []
        for row in _rows(body, "instances"):
            instance = self._parse_instance(row)
            if instance is None:
                continue
            self._hosts[instance.instance_id] = instance.host_id
            if row.get("actual_status") in _CRASHED and row.get("intended_status") == "running":
                self._note_crash_once(instance.instance_id)
            found.append(instance)
        return tuple(found)

    async def destroy(self, instance_id: str) -> None:
        await self._call("DELETE", f"/instances/{instance_id}/", missing_ok=True)

    def report_unhealthy(self, instance_id: str, reason: str) -> None:
        """The worker on this instance failed its GPU health check: never rent its host again."""
        self.quarantine.add(self._host_of(instance_id), f"health check failed: {reason}")

    def report_crash(self, instance_id: str) -> None:
        """The worker on this instance crashed; its host is quarantined after `crash_limit` crashes."""
        host = self._host_of(instance_id)
        self._crashes[host] = self._crashes.get(host, 0) + 1
        if self._crashes[host] >= self.crash_limit:
            self.quarantine.add(host, f"crash loop: {self._crashes[host]} worker crashes")

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # -- request bodies ---------------------------------------------------------------------------

    def _search_body(self, query: OfferQuery, countries: frozenset[str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "verified": {"eq": True},
            "external": {"eq": False},
            "rentable": {"eq": True},
            "rented": {"eq": False},
            "gpu_name": {"eq": query.gpu_name},
            "num_gpus": {"eq": query.num_gpus},
            "reliability": {"gte": query.min_reliability},
            "geolocation": {"in": sorted(countries)},
            "order": [["dph_total", "asc"]],
            "type": "on-demand",
            "limit": query.limit,
        }
        if query.max_price_usd_per_hour is not None:
            body["dph_total"] = {"lte": query.max_price_usd_per_hour}
        if query.min_gpu_ram_gb is not None:
            body["gpu_ram"] = {"gte": query.min_gpu_ram_gb * 1024}  # Vast.ai counts GPU memory in MB
        if len(self.quarantine):
            body["machine_id"] = {"nin": [_id_value(host) for host in sorted(self.quarantine.hosts)]}
        return body

    def _create_body(self, launch: WorkerLaunch, label: str) -> dict[str, Any]:
        onstart = self.onstart.format(
            url=shlex.quote(launch.url),
            region=shlex.quote(launch.region.value),
            backend=shlex.quote(launch.backend),
            models=shlex.quote(",".join(launch.models)),
            slots=launch.slots,
            worker_id=shlex.quote(launch.worker_id),
        )
        return {
            "client_id": "me",
            "image": self.image,
            "disk": self.disk_gb,
            "label": label,
            "onstart": onstart,
            # never launch.token: instance metadata is readable by the account and the host
            "env": {ENROLMENT_ENV: launch.enrolment_secret, "FERRYMAN_REGION": launch.region.value},
        }

    # -- responses --------------------------------------------------------------------------------

    def _acceptable(self, offer: Offer, query: OfferQuery) -> bool:
        price_ok = (
            query.max_price_usd_per_hour is None or offer.price_usd_per_hour <= query.max_price_usd_per_hour
        )
        ram_ok = query.min_gpu_ram_gb is None or offer.gpu_ram_gb >= query.min_gpu_ram_gb
        return (
            offer.region is query.region
            and ram_ok
            and offer.host_id not in self.quarantine
            and offer.reliability >= query.min_reliability
            and price_ok
        )

    def _parse_instance(self, row: Mapping[str, Any]) -> Instance | None:
        label = str(row.get("label") or "")
        parts = label.split(":")
        if len(parts) < 2 or parts[0] != self.label_prefix or parts[1] not in {r.value for r in Region}:
            return None
        status = str(row.get("actual_status") or "")
        return Instance(
            instance_id=str(row.get("id")),
            provider=self.name,
            region=Region(parts[1]),
            state=_STATES.get(status, InstanceState.UNKNOWN if status else InstanceState.STARTING),
            host_id=str(row.get("machine_id")),
            price_usd_per_hour=float(row.get("dph_total") or 0.0),
            label=label,
        )

    def _note_crash_once(self, instance_id: str) -> None:
        if instance_id not in self._crashed_instances:
            self._crashed_instances.add(instance_id)
            self.report_crash(instance_id)

    def _host_of(self, instance_id: str) -> str:
        try:
            return self._hosts[instance_id]
        except KeyError:
            raise ProviderError(f"unknown instance {instance_id!r}; provision it or list() first") from None

    async def _call(
        self, method: str, path: str, *, json: Mapping[str, Any] | None = None, missing_ok: bool = False
    ) -> dict[str, Any]:
        what = f"vast.ai {method} {path}"
        try:
            response = await self._client.request(
                method, self.base_url + path, json=json, headers=self._headers, timeout=self.timeout_s
            )
        except httpx.TimeoutException:
            raise ProviderError(f"{what} timed out after {self.timeout_s:.0f}s", retryable=True) from None
        except httpx.HTTPError as exc:
            raise ProviderError(f"{what} failed: {type(exc).__name__}", retryable=True) from None
        if missing_ok and response.status_code == 404:
            return {}
        body = _json_object(response)
        if response.status_code >= 400:
            retryable = response.status_code == 429 or response.status_code >= 500
            raise ProviderError(
                f"{what} answered {response.status_code}: {_message(body)}", retryable=retryable
            )
        return body


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _rows(body: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    rows = body.get(key)
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def _message(body: Mapping[str, Any]) -> str:
    return str(body.get("msg") or body.get("error") or body.get("detail") or "no message")


def _country_code(geolocation: str) -> str | None:
    """'Lisbon, PT' → 'PT'. None when the last part is not a two-letter code (fail closed)."""
    last = geolocation.rsplit(",", 1)[-1].strip()
    return last.upper() if len(last) == 2 and last.isalpha() else None


def _parse_offer(row: Mapping[str, Any], region_countries: Mapping[Region, frozenset[str]]) -> Offer | None:
    code = _country_code(str(row.get("geolocation") or ""))
    region = next((r for r, codes in region_countries.items() if code in codes), None)
    try:
        offer_id, price = row["id"], float(row["dph_total"])
    except (KeyError, TypeError, ValueError):
        return None
    if region is None:
        return None
    return Offer(
        offer_id=str(offer_id),
        provider=VastAIProvider.name,
        gpu_name=str(row.get("gpu_name") or ""),
        num_gpus=int(row.get("num_gpus") or 1),
        price_usd_per_hour=price,
        region=region,
        host_id=str(row.get("machine_id")),
        reliability=float(row.get("reliability") or row.get("reliability2") or 0.0),
        location=str(row.get("geolocation") or ""),
        gpu_ram_gb=_number(row.get("gpu_ram")) / 1024,
    )


def _number(value: Any) -> float:
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0


def _id_value(host_id: str) -> int | str:
    return int(host_id) if host_id.isdigit() else host_id
