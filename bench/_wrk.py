"""HTTP load from wrk, a C load generator: a Python client would measure its own interpreter,
not the server (on two cores it tops out below what the API can answer).

Each request takes the next body from a file (one JSON document a line), so every tube is a
new one; wrk's threads take the lines in turn. The run stops when the bodies run out or the
duration ends, whichever comes first, and reports what wrk saw: requests, non-2xx answers,
the rate and latency percentiles.
"""

import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Per thread: bodies come from the shared file, thread t takes lines t, t + threads, ...; once
# its share is used up it keeps the connection busy with a cheap GET that `done` subtracts,
# and stops when its last body is answered. Each thread notes when it sent its first body and
# when its last one was answered (LuaJIT's FFI reads the monotonic clock): wrk's own duration
# is the whole -d, also when the bodies ran out long before.
_SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } cordon_timespec;
int clock_gettime(int clock, cordon_timespec *now);
]]
local clock = ffi.new("cordon_timespec")
local function now_us()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC: the same clock in every thread
  return tonumber(clock.tv_sec) * 1e6 + tonumber(clock.tv_nsec) / 1e3
end

-- Globals, not locals: setup() sets `id` in each thread and done() reads them back.
local threads, counter = {}, 0
bodies, id, nthreads, path, method, spare, next_body, posted = {}, 0, 1, "/", "GET", 0, 0, 0
key_prefix, answered, real, first_us, last_us = "", 0, 0, 0, 0
-- What GET /healthz answers: a spare request's answer, not a body's.
SPARE_ANSWER = '{"status":"ok"}'

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  nthreads, path, method = tonumber(args[1]), args[2], args[3]
  key_prefix = args[6] or ""
  wrk.headers["Content-Type"] = "application/json"
  if args[4] ~= "" then wrk.headers["Authorization"] = "Bearer " .. args[4] end
  if args[5] ~= "" then
    local n = 0
    for line in io.lines(args[5]) do
      if n % nthreads == id then table.insert(bodies, line) end
      n = n + 1
    end
  end
  real = #bodies
  -- wrk calls request() once in thread 0 to verify the script, a request it never sends:
  -- give that call a placeholder instead of a body.
  if id == 0 and #bodies > 0 then table.insert(bodies, 1, false) end
end

function request()
  if method == "GET" then return wrk.format("GET", path) end
  next_body = next_body + 1
  if next_body > #bodies then
    spare = spare + 1
    return wrk.format("GET", "/healthz")
  end
  if not bodies[next_body] then return wrk.format("GET", "/healthz") end
  posted = posted + 1
  if first_us == 0 then first_us = now_us() end
  if key_prefix == "" then return wrk.format(method, path, nil, bodies[next_body]) end
  -- A client's retry key, new for every body (wrk.format takes the headers whole).
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Idempotency-Key"] = key_prefix .. "-" .. id .. "-" .. next_body
  return wrk.format(method, path, headers, bodies[next_body])
end

function response(status, headers, body)
  if method == "GET" or first_us == 0 or body == SPARE_ANSWER then return end
  answered = answered + 1
  last_us = now_us()
  -- Stop once every body of this thread is answered (not "once a spare GET was asked for":
  -- spares wait a second, so the last body's answer usually comes before any).
  if answered == real then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local spares, sent, got, first, last = 0, 0, 0, nil, 0
  for _, thread in ipairs(threads) do
    spares = spares + thread:get("spare")
    sent = sent + thread:get("posted")
    got = got + thread:get("answered")
    local started, ended = thread:get("first_us"), thread:get("last_us")
    if started > 0 and (first == nil or started < first) then first = started end
    if ended > last then last = ended end
  end
  local bodies_seconds = 0
  if first ~= nil and last > first then bodies_seconds = (last - first) / 1e6 end
  io.write(string.format(
    'CORDON {"requests": %d, "posted": %d, "answered": %d, "spare": %d, "seconds": %f, '
    .. '"bodies_seconds": %f, "non2xx": %d, "errors": %d, "p50": %f, "p90": %f, "p99": %f, '
    .. '"max": %f}\n',
    summary.requests, sent, got, spares, summary.duration / 1e6, bodies_seconds,
    summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3))
end
"""

# With bodies: a spare request waits a second before it is sent, so that a connection whose
# thread still waits for the answers of its last bodies does not fill the latency percentiles
# with cheap GETs. Only then: wrk sends every request through a timer once `delay` exists.
_SPARE_DELAY = r"""
function delay()
  if next_body >= #bodies then return 1000 end
  return 0
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    # The run, or once the bodies ran out the time they took (first sent to last answered).
    seconds: float
    # Requests made after the bodies ran out (cheap GETs, left out of the rate; a few of their
    # latencies are among the percentiles).
    spare: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    # Every body was answered before the duration ended.
    complete: bool = False

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def available() -> bool:
    return shutil.which("wrk") is not None


def run(
    base: str,
    path: str,
    *,
    method: str = "GET",
    bodies: Sequence[dict[str, Any]] = (),
    token: str = "",
    connections: int = 16,
    threads: int = 2,
    seconds: float = 10,
    idempotency_prefix: str = "",
) -> WrkResult:
    """Load `base + path` for `seconds` (or until the bodies are used up) and return what wrk
    measured; an error answer or a socket error fails the run. With `idempotency_prefix`,
    every body is sent with an `Idempotency-Key` of its own (the prefix, the thread, the
    body's number), as staff clients on weak networks send creates."""
    if method != "GET" and not bodies:
        raise ValueError(f"{method} {path} needs bodies to send")
    if not available():
        raise RuntimeError("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch, "load.lua")
        script.write_text(_SCRIPT + (_SPARE_DELAY if bodies else ""))
        body_file = ""
        if bodies:
            body_file = str(Path(scratch, "bodies.jsonl"))
            Path(body_file).write_text("".join(json.dumps(b) + "\n" for b in bodies))
        command = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            base + path,
            "--",
            str(threads),
            path,
            method,
            token,
            body_file,
            idempotency_prefix,
        ]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next((x for x in output.splitlines() if x.startswith("CORDON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{output[-2000:]}")
    figures = json.loads(line.removeprefix("CORDON "))
    if figures["non2xx"] or figures["errors"]:
        raise RuntimeError(
            f"{method} {path}: {figures['non2xx']} error answers, "
            f"{figures['errors']} socket errors\n{output[-2000:]}"
        )
    # With bodies, the bodies answered over the time they took (first sent to last answered):
    # wrk's own duration is the whole -d even when every thread stopped early, and its count
    # includes the cheap GETs sent once a thread's bodies ran out.
    timed = bool(bodies) and figures["bodies_seconds"] > 0
    return WrkResult(
        requests=figures["answered"] if timed else figures["requests"],
        seconds=figures["bodies_seconds"] if timed else figures["seconds"],
        spare=figures["spare"],
        p50_ms=figures["p50"],
        p90_ms=figures["p90"],
        p99_ms=figures["p99"],
        max_ms=figures["max"],
        non_2xx=figures["non2xx"],
        complete=bool(bodies) and figures["answered"] >= len(bodies),
    )
