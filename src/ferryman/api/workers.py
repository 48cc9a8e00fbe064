"""The worker endpoint: one WebSocket per worker agent, authenticated by a region-bound worker token."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect

from ferryman.container import Container
from ferryman.dispatch import QueueNode, WorkerConn, WorkerRefused, protocol
from ferryman.errors import Unauthenticated
from ferryman.identity import WorkerPrincipal
from ferryman.types import Region

log = structlog.get_logger(__name__)

REGISTER_TIMEOUT_SECONDS = 10.0
OUTBOX_LIMIT = 10_000


def _token(websocket: WebSocket) -> str | None:
    scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


async def _refuse(websocket: WebSocket, code: str, message: str) -> None:
    await websocket.send_text(protocol.encode(protocol.ErrorMessage(code=code, message=message)))
    await websocket.close(code=1008)


async def worker_endpoint(websocket: WebSocket) -> None:
    container: Container = websocket.state.container
    await websocket.accept()
    try:
        principal = await container.identity.authenticate_worker(_token(websocket))
        first = await asyncio.wait_for(websocket.receive_text(), REGISTER_TIMEOUT_SECONDS)
        register = protocol.decode_worker_message(first)
    except Unauthenticated as exc:
        await _refuse(websocket, "unauthorized", exc.message)
        return
    except (protocol.ProtocolError, TimeoutError, WebSocketDisconnect, KeyError) as exc:
        with contextlib.suppress(Exception):
            await _refuse(websocket, "protocol_error", f"expected a register frame first: {exc}")
        return
    if not isinstance(register, protocol.Register):
        await _refuse(websocket, "protocol_error", f"expected a register frame first, got {register.type!r}")
        return
    if register.region != principal.region.value:
        await _refuse(
            websocket,
            "forbidden",
            f"this worker token is bound to region {principal.region.value}, not {register.region}",
        )
        return
    if (refusal := _binding_refusal(principal, register)) is not None:
        await _refuse(websocket, "forbidden", refusal)
        return
    node = container.nodes.get(Region(register.region))
    if node is None:
        await _refuse(websocket, "forbidden", f"region {register.region} is not served by this API")
        return
    await _serve(websocket, node, register, credential=principal.token_id)


def _binding_refusal(principal: WorkerPrincipal, register: protocol.Register) -> str | None:
    """Why an enrolled machine's token may not register this (its token names one worker id and its models)."""
    if principal.worker_id is not None and register.worker_id != principal.worker_id:
        return f"this worker token is bound to worker id {principal.worker_id}, not {register.worker_id}"
    offered = {offer.name for offer in register.models}
    if principal.models is not None and (extra := sorted(offered - principal.models)):
        return f"this worker token may not offer {extra}; it was enrolled for {sorted(principal.models)}"
    return None


async def _serve(
    websocket: WebSocket, node: QueueNode, register: protocol.Register, *, credential: str
) -> None:
    outbox: asyncio.Queue[str | None] = asyncio.Queue()

    def send(frame: str) -> None:
        outbox.put_nowait(frame)

    def close() -> None:
        outbox.put_nowait(None)

    async def write_frames() -> None:
        while (frame := await outbox.get()) is not None:
            await websocket.send_text(frame)
        await websocket.close(code=1000)

    try:
        # the worker id is bound to the token that first registered it (docs/worker-protocol.md, "Identity")
        worker = node.attach(register, send=send, close=close, credential=credential)
    except WorkerRefused as exc:
        log.warning("worker.refused", worker_id=register.worker_id, region=register.region, code=exc.code)
        await _refuse(websocket, exc.code, exc.message)
        return
    writer = asyncio.create_task(write_frames())
    try:
        await _read_frames(websocket, node, worker)
    finally:
        node.detach(worker)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer


async def _read_frames(websocket: WebSocket, node: QueueNode, worker: WorkerConn) -> None:
    while True:
        try:
            message = await websocket.receive()
        except RuntimeError:
            return
        if message["type"] == "websocket.disconnect":
            return
        if (text := message.get("text")) is not None:
            try:
                node.handle(worker, protocol.decode_worker_message(text))
            except protocol.ProtocolError as exc:
                worker.send(
                    protocol.encode(
                        protocol.ErrorMessage(
                            code="protocol_error", message=str(exc), job_id=exc.job_id, fence=exc.fence
                        )
                    )
                )
                if exc.job_id is not None:
                    node.reject_output(worker, exc.job_id, exc.fence, str(exc))
        elif (data := message.get("bytes")) is not None:
            try:
                await node.store_blob(worker, protocol.decode_blob(data))
            except (protocol.ProtocolError, ValueError) as exc:
                worker.send(protocol.encode(protocol.ErrorMessage(code="protocol_error", message=str(exc))))
