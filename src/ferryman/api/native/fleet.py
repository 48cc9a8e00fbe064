"""GET /v1/admin/fleet: the autoscaler's fleets and recent decisions, for the operator only.

A fleet spans every org's traffic, so an org role is not enough: the caller needs the `org:admin` scope and must
be a platform admin (the user `ferryman up` created first).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.responses import JSONResponse

from ferryman.api.deps import AppContainer, OrgAdmin
from ferryman.autoscale import DecisionRecord, FleetEvent, FleetStatus
from ferryman.errors import Forbidden
from ferryman.identity import Principal

router = APIRouter()


async def require_platform_admin(principal: OrgAdmin, container: AppContainer) -> Principal:
    if not await container.identity.is_platform_admin(principal.user_id):
        raise Forbidden(
            "the fleet is visible to platform admins only (the operator account of this Ferryman)"
        )
    return principal


PlatformAdmin = Annotated[Principal, Depends(require_platform_admin)]


@router.get("/admin/fleet")
async def get_fleet(
    _: PlatformAdmin,
    container: AppContainer,
    decisions: Annotated[
        int, Query(ge=0, le=1000, description="Recent decisions per fleet, newest first.")
    ] = 20,
) -> JSONResponse:
    autoscaler = container.autoscaler
    fleets = autoscaler.status() if autoscaler is not None else []
    events = autoscaler.events()[-decisions:] if autoscaler is not None and decisions else []
    # the durable record of every rent and destroy (org-less audit events), newest first
    audited = await container.accounts.audit.find_system(action_prefix="fleet.instance_", limit=100)
    return JSONResponse(
        {
            "object": "fleet",
            "autoscaling": autoscaler is not None,
            "data": [_fleet(f, decisions) for f in fleets],
            "spent_usd_by_region": _spent_by_region(fleets),
            "events": [_event(e) for e in reversed(events)],
            "audit": [
                {"id": a.id, "action": a.action.value, "target": a.target, "at": a.created_at, **a.details}
                for a in audited
            ],
        }
    )


def _spent_by_region(fleets: list[FleetStatus]) -> dict[str, float]:
    spent: dict[str, float] = {}
    for status in fleets:
        spent[status.region.value] = spent.get(status.region.value, 0.0) + status.spent_usd
    return spent


def _event(event: FleetEvent) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "at": event.at,
        "region": event.region.value,
        "model": event.model,
        "provider": event.provider,
        "instance_id": event.instance_id,
        "worker_id": event.worker_id,
        "host_id": event.host_id,
        "price_usd_per_hour": event.price_usd_per_hour,
        "reason": event.reason,
        "held_seconds": event.held_seconds,
        "cost_usd": event.cost_usd,
    }


def _fleet(status: FleetStatus, decisions: int) -> dict[str, Any]:
    recent = list(reversed(status.decisions))[:decisions]
    workers = recent[0].decision.signals.workers if recent else ()
    return {
        "region": status.region.value,
        "model": status.model,
        "provider": status.provider,
        "provisioning_lag_seconds": status.provisioning_lag_s,
        "spend_usd_per_hour": status.spend_usd_per_hour,
        "spent_usd": status.spent_usd,
        "instances": [
            {
                "worker_id": i.worker_id,
                "instance_id": i.instance_id,
                "provider": i.provider,
                "host_id": i.host_id,
                "price_usd_per_hour": i.price_usd_per_hour,
                "rented_at": i.rented_at,
                "state": i.state,
            }
            for i in status.instances
        ],
        "workers": [
            {"id": w.worker_id, "state": w.state.value, "slots": w.slots, "busy_slots": w.busy_slots}
            for w in workers
        ],
        "decisions": [_decision(r) for r in recent],
    }


def _decision(record: DecisionRecord) -> dict[str, Any]:
    decision, signals = record.decision, record.decision.signals
    return {
        "at": record.at,
        "desired_workers": decision.desired_workers,
        "scale_up": decision.scale_up,
        "resume": list(decision.resume),
        "drain": list(decision.drain),
        "reason": decision.reason,
        "actions": list(record.actions),
        "signals": {
            "priority": signals.priority.value,
            "arrival_rate_per_second": {"short": signals.short.rate_per_s, "long": signals.long.rate_per_s},
            "mean_service_seconds": signals.mean_service_s(signals.short),
            "offered_load_slots": signals.offered_load(signals.short),
            "peakedness": signals.demand_peakedness,
            "queue_depth": signals.queue_depth,
            "oldest_job_age_seconds": signals.oldest_job_age_s,
            "workers": {
                "starting": signals.starting,
                "warm": signals.warm,
                "busy": signals.busy,
                "draining": signals.draining,
            },
            "provisioning_lag_seconds": signals.provisioning_lag_s,
        },
    }
