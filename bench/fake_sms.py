"""A fake SMS gateway: a real HTTP server on loopback speaking the generic HTTP JSON gateway
protocol (``services/notify/gateways/http.py``), for the tests and the benchmarks.

It records every number it was handed (``handed``: number -> times), so a test can assert
"each exactly once", and can be told to misbehave: answer slowly (``delay``), answer an error
status (``mode="fail"`` with ``fail_status`` 500, 503 or 429), accept a batch and then never
answer (``mode="hang"``: the client times out after the gateway acted), stop listening
altogether (:meth:`FakeSms.stop`), and lose, duplicate or reorder its delivery receipts.
``times`` limits a misbehaviour to that many calls. Receipts wait in ``receipts`` for a test
to post them (:meth:`FakeSms.take_receipts`), or are pushed, signed, to ``receipt_url``.

In-process: ``fake = await FakeSms.start()``; as a process (benchmarks): ``python -m
bench.fake_sms --port 9100``, told what to do over ``POST /control``, asked ``GET /records``.
"""

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests"}


@dataclass
class FakeSms:
    host: str = "127.0.0.1"
    port: int = 0
    # The Authorization header value a caller must send; "" accepts anyone.
    token: str = ""
    mode: str = "ok"  # ok | fail | hang
    fail_status: int = 500
    times: int | None = None
    delay: float = 0.0
    hang_seconds: float = 3600.0
    # Numbers answered as rejected (a final error for that number only).
    invalid: set[str] = field(default_factory=set)
    receipt_mode: str = "normal"  # normal | lose | duplicate | reverse | none
    receipt_url: str = ""
    receipt_secret: str = ""
    handed: Counter[str] = field(default_factory=Counter)
    # When each number was first handed over (monotonic), for latency figures.
    arrived: dict[str, float] = field(default_factory=dict)
    calls: int = 0
    refused_calls: int = 0
    references: dict[str, dict[str, Any]] = field(default_factory=dict)
    receipts: list[dict[str, Any]] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _connections: set[asyncio.StreamWriter] = field(default_factory=set)
    _closing: asyncio.Event = field(default_factory=asyncio.Event)
    _progress: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def start(cls, **options: Any) -> "FakeSms":
        fake = cls(**options)
        await fake.listen()
        return fake

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def listen(self) -> None:
        """Listen (again, on the same port after :meth:`stop`)."""
        self._closing = asyncio.Event()
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop open connections: callers find the gateway down."""
        self._closing.set()
        if self._server is not None:
            self._server.close()
            for writer in list(self._connections):
                writer.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()

    def twice(self) -> list[str]:
        return [number for number, count in self.handed.items() if count > 1]

    async def arrival(self, number: str) -> float:
        """When ``number`` was first handed over (monotonic), waiting for it if need be."""
        while number not in self.arrived:
            self._progress.clear()
            await self._progress.wait()
        return self.arrived[number]

    def take_receipts(self) -> list[dict[str, Any]]:
        taken, self.receipts = self.receipts, []
        return taken

    def control(self, **options: Any) -> None:
        for name, value in options.items():
            if name == "invalid":
                value = set(value)
            setattr(self, name, value)

    # ---- HTTP ----

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                method, path, headers, body = request
                status, answer, extra = await self._route(method, path, headers, body)
                _write(writer, status, answer, extra)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._connections.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _route(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        if method == "POST" and path == "/control":
            self.control(**json.loads(body or b"{}"))
            return 200, {"ok": True}, {}
        if method == "GET" and path == "/records":
            return 200, {"calls": self.calls, "handed": self.handed, "twice": self.twice()}, {}
        if self.token and headers.get("authorization") != self.token:
            return 401, {"reason": "bad credentials"}, {}
        if method == "POST" and path == "/v1/messages":
            return await self._send(json.loads(body))
        if method == "GET" and path.startswith("/v1/messages/"):
            known = self.references.get(path.removeprefix("/v1/messages/"))
            return (200, known, {}) if known is not None else (404, {"reason": "unknown"}, {})
        return 404, {"reason": "no such path"}, {}

    async def _send(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if self.delay:
            await asyncio.sleep(self.delay)
        mode = self._misbehaviour()
        if mode == "fail":
            self.refused_calls += 1
            extra = {"Retry-After": "1"} if self.fail_status == 429 else {}
            return self.fail_status, {"reason": f"fake failure {self.fail_status}"}, extra
        self.calls += 1
        reference, numbers = str(body["reference"]), [str(n) for n in body["numbers"]]
        accepted, rejected = [], []
        for number in numbers:
            if number in self.invalid:
                rejected.append({"number": number, "reason": "invalid number"})
                continue
            self.handed[number] += 1
            self.arrived.setdefault(number, time.monotonic())
            accepted.append({"number": number, "id": f"fake-{next(self._ids)}"})
        self._progress.set()
        answer = {"accepted": accepted, "rejected": rejected}
        self.references[reference] = answer
        self._receipts_for(reference, accepted)
        if mode == "hang":
            # Until told to stop: the caller gives up waiting, the batch was accepted.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.hang_seconds)
        return 200, answer, {}

    def _misbehaviour(self) -> str:
        if self.mode == "ok":
            return "ok"
        mode = self.mode
        if self.times is not None:
            self.times -= 1
            if self.times <= 0:
                self.mode, self.times = "ok", None
        return mode

    def _receipts_for(self, reference: str, accepted: list[dict[str, str]]) -> None:
        if self.receipt_mode == "none":
            return
        at = datetime.now(UTC).isoformat()
        made = [
            {
                "reference": reference,
                "number": a["number"],
                "status": "delivered",
                "provider_message_id": a["id"],
                "at": at,
            }
            for a in accepted
        ]
        if self.receipt_mode == "lose":
            made = [r for r in made if random.random() < 0.5]
        elif self.receipt_mode == "duplicate":
            made = made + made
        elif self.receipt_mode == "reverse":
            made.reverse()
        self.receipts.extend(made)
        if self.receipt_url and made:
            task = asyncio.create_task(self._push(self.take_receipts()))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _push(self, receipts: list[dict[str, Any]]) -> None:
        body = json.dumps({"receipts": receipts}).encode()
        signature = (
            "sha256=" + hmac.new(self.receipt_secret.encode(), body, hashlib.sha256).hexdigest()
        )
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient(timeout=10) as client:
                await client.post(
                    self.receipt_url,
                    content=body,
                    headers={"Content-Type": "application/json", "X-Signature": signature},
                )


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return method, path, headers, body


def _write(writer: asyncio.StreamWriter, status: int, answer: Any, extra: dict[str, str]) -> None:
    payload = json.dumps(answer).encode()
    head = [
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        "Connection: keep-alive",
        *(f"{name}: {value}" for name, value in extra.items()),
    ]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)


async def _main(port: int, receipt_url: str, secret: str) -> None:
    fake = await FakeSms.start(port=port, receipt_url=receipt_url, receipt_secret=secret)
    print(f"fake SMS gateway on {fake.url}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--receipt-url", default="")
    parser.add_argument("--receipt-secret", default="")
    arguments = parser.parse_args()
    asyncio.run(_main(arguments.port, arguments.receipt_url, arguments.receipt_secret))
