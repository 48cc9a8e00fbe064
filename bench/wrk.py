"""Saturation load with `wrk` (C, one thread): a client that costs far less per request than any gateway here.

A Lua script POSTs a fixed JSON body and counts answers that are not 200 with a `"choices"` list in the body
(a job that failed is an error even when its HTTP status is 200); `done` prints one JSON line we parse.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
wrk.method = "POST"
wrk.body = %(body)s
wrk.headers["Content-Type"] = "application/json"
%(headers)s
function init(args) bad = 0 end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"choices"', 1, true) then bad = bad + 1 end
end
function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests":%%d,"duration_us":%%d,"bad":%%d,"socket_errors":%%d,' ..
    '"p50_us":%%d,"p99_us":%%d}\\n', summary.requests, summary.duration, b,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string with only ASCII escapes is a valid Lua string literal


def run(
    url: str, body: dict[str, Any], *, headers: dict[str, str], connections: int, seconds: float
) -> dict[str, Any]:
    """Drive `url` with `connections` keep-alive connections for `seconds`; a summary like `LoadResult.summary`."""
    lines = "\n".join(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items())
    script = SCRIPT % {"body": _lua_string(json.dumps(body)), "headers": lines}
    with tempfile.TemporaryDirectory(prefix="ferryman-wrk-") as tmp:
        path = Path(tmp) / "post.lua"
        path.write_text(script)
        argv = [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            str(path),
            url,
        ]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    line = next((line for line in out.splitlines() if line.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    elapsed_s = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "errors": raw["bad"] + raw["socket_errors"],
        "per_second": raw["requests"] / elapsed_s if elapsed_s else 0.0,
        "elapsed_s": elapsed_s,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "client": "wrk",
    }
