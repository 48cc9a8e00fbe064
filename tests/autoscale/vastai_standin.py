"""A TEST DOUBLE for Vast.ai's REST API: a small Starlette app speaking the endpoints VastAIProvider
uses, served by a real uvicorn server in a thread. It holds offers and instances in memory and
implements the search filter operators, so the production client is exercised over real HTTP.

With `boot_dir` set it also "boots" each rented instance as Vast.ai would: it runs the instance's `onstart`
with `bash -c`, in the environment the create request gave it (with this interpreter first on PATH, standing
in for the image's `python`), and destroying the instance terminates that process. With `ignore_geolocation`
it answers searches as if it had no location filter, to exercise the provider's own residency check.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

API_KEY = "standin-key"


@dataclass
class StandinState:
    """What the stand-in knows; tests read `requests` and set instance statuses directly."""

    offers: list[dict[str, Any]] = field(default_factory=list)
    instances: dict[int, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    next_contract: int = 7000
    boot_dir: Path | None = None
    ignore_geolocation: bool = False
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def reset(self, offers: list[dict[str, Any]]) -> None:
        self.offers = [dict(offer) for offer in offers]
        self.instances.clear()
        self.requests.clear()
        self.next_contract = 7000

    def boot(self, instance_id: int, onstart: str, env: dict[str, str]) -> None:
        assert self.boot_dir is not None
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        log = self.boot_dir / f"instance-{instance_id}.log"
        with log.open("ab") as out:
            self.processes[instance_id] = subprocess.Popen(
                ["bash", "-c", onstart],
                env={**os.environ, **env, "PATH": path},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def halt(self, instance_id: int, timeout_s: float = 10.0) -> None:
        """What destroying a machine does to its processes: SIGTERM, then SIGKILL."""
        process = self.processes.pop(instance_id, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout_s)

    def halt_all(self) -> None:
        for instance_id in list(self.processes):
            self.halt(instance_id)


def offer(
    offer_id: int, *, machine_id: int, geolocation: str, dph_total: float, **extra: Any
) -> dict[str, Any]:
    row = {
        "id": offer_id,
        "ask_contract_id": offer_id,
        "machine_id": machine_id,
        "host_id": machine_id + 100_000,
        "gpu_name": "A100 SXM4",
        "num_gpus": 1,
        "gpu_ram": 81920,
        "dph_total": dph_total,
        "reliability": 0.995,
        "reliability2": 0.995,
        "geolocation": geolocation,
        "verified": True,
        "rentable": True,
        "rented": False,
        "external": False,
    }
    row.update(extra)
    return row


def _country(geolocation: str) -> str:
    return geolocation.rsplit(",", 1)[-1].strip()


def _matches(row: dict[str, Any], field_name: str, condition: dict[str, Any]) -> bool:
    value = _country(row.get("geolocation", "")) if field_name == "geolocation" else row.get(field_name)
    checks: dict[str, Callable[[Any, Any], bool]] = {
        "eq": lambda v, x: v == x,
        "neq": lambda v, x: v != x,
        "gt": lambda v, x: v is not None and v > x,
        "gte": lambda v, x: v is not None and v >= x,
        "lt": lambda v, x: v is not None and v < x,
        "lte": lambda v, x: v is not None and v <= x,
        "in": lambda v, x: v in x,
        "nin": lambda v, x: v not in x,
    }
    return all(checks[op](value, expected) for op, expected in condition.items())


def create_app(state: StandinState) -> Starlette:
    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {API_KEY}"

    def unauthorized() -> JSONResponse:
        return JSONResponse(
            {"success": False, "error": "auth_error", "msg": "Invalid user key"}, status_code=401
        )

    async def search(request: Request) -> JSONResponse:
        if not authorized(request):
            return unauthorized()
        body = await request.json()
        state.requests.append(("POST", "/bundles/", body))
        filters = {k: v for k, v in body.items() if isinstance(v, dict)}
        if state.ignore_geolocation:
            filters.pop("geolocation", None)
        rows = [row for row in state.offers if all(_matches(row, k, v) for k, v in filters.items())]
        for field_name, direction in reversed(body.get("order", [])):
            rows.sort(key=lambda row: row.get(field_name, 0), reverse=direction == "desc")
        return JSONResponse({"offers": rows[: body.get("limit", 64)]})

    async def create(request: Request) -> JSONResponse:
        if not authorized(request):
            return unauthorized()
        ask_id = int(request.path_params["ask_id"])
        body = await request.json()
        state.requests.append(("PUT", f"/asks/{ask_id}/", body))
        row = next((o for o in state.offers if o["id"] == ask_id and not o["rented"]), None)
        if row is None:
            message = f"error 404/3603: no_such_ask Instance type by id {ask_id} is not available."
            return JSONResponse({"success": False, "error": "invalid_args", "msg": message}, status_code=404)
        row["rented"] = True
        state.next_contract += 1
        state.instances[state.next_contract] = {
            "id": state.next_contract,
            "label": body.get("label"),
            "machine_id": row["machine_id"],
            "actual_status": "loading",
            "intended_status": "running",
            "cur_state": "running",
            "dph_total": row["dph_total"],
            "geolocation": row["geolocation"],
            "onstart": body.get("onstart"),
            "image_uuid": body.get("image"),
            "extra_env": [[k, v] for k, v in (body.get("env") or {}).items()],
        }
        if state.boot_dir is not None and body.get("onstart"):
            state.boot(state.next_contract, body["onstart"], dict(body.get("env") or {}))
            state.instances[state.next_contract]["actual_status"] = "running"
        return JSONResponse({"success": True, "new_contract": state.next_contract})

    async def show(request: Request) -> JSONResponse:
        if not authorized(request):
            return unauthorized()
        rows = list(state.instances.values())
        return JSONResponse({"instances_found": len(rows), "instances": rows})

    async def destroy(request: Request) -> JSONResponse:
        if not authorized(request):
            return unauthorized()
        instance_id = int(request.path_params["instance_id"])
        state.requests.append(("DELETE", f"/instances/{instance_id}/", None))
        if state.instances.pop(instance_id, None) is None:
            return JSONResponse(
                {"success": False, "error": "not_found", "msg": "Instance not found"}, status_code=404
            )
        await asyncio.to_thread(state.halt, instance_id)
        return JSONResponse({"success": True, "msg": "Instance destroyed successfully"})

    return Starlette(
        routes=[
            Route("/api/v0/bundles/", search, methods=["POST"]),
            Route("/api/v0/asks/{ask_id:int}/", create, methods=["PUT"]),
            Route("/api/v0/instances/", show, methods=["GET"]),
            Route("/api/v0/instances/{instance_id:int}/", destroy, methods=["DELETE"]),
        ]
    )


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the main thread keeps its handlers
        pass


@contextmanager
def serve(state: StandinState, *, timeout_s: float = 10.0) -> Iterator[str]:
    """Serve the stand-in on a free port; yields its API base URL (…/api/v0)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(state), log_level="warning", lifespan="off", ws="none")
    server = _ThreadServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Vast.ai stand-in did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}/api/v0"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
        sock.close()
