"""The baseline for bench/dispatch.py: the `echo` backend behind a bare HTTP endpoint, with no platform.

Same request body, same client, same machine: the difference to Ferryman is what the platform adds.
"""

from __future__ import annotations

import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ferryman.types import Task
from ferryman.worker.backends.base import BackendSettings, Output, WorkItem
from ferryman.worker.backends.echo import EchoBackend

backend = EchoBackend(BackendSettings())


async def run(request: Request) -> JSONResponse:
    body = json.loads(await request.body())
    item = WorkItem(job_id="direct", task=Task(body["task"]), model=body["model"], payload=body["input"])
    async for chunk in backend.run(item):
        if isinstance(chunk, Output):
            return JSONResponse({"status": "succeeded", "result": chunk.output, "usage": chunk.usage})
    return JSONResponse({"status": "failed"}, status_code=500)


app = Starlette(routes=[Route("/run", run, methods=["POST"]), Route("/healthz", lambda r: JSONResponse({}))])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
