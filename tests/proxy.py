"""A small TCP proxy for fault tests (Toxiproxy can't be installed here): it forwards to a real
service and can cut every open connection and refuse new ones until it is restored, or stall
them (hold every byte, keep the connections open: a half-open peer) until it is restored."""

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, *, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._refusing = False
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.connections = 0
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers |= {writer, upstream_writer}
        pipes = {
            asyncio.create_task(_pipe(reader, upstream_writer, self._flowing)),
            asyncio.create_task(_pipe(upstream_reader, writer, self._flowing)),
        }
        self._pipes |= pipes
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
            self._pipes -= pipes
            for w in (writer, upstream_writer):
                w.transport.abort()
                self._writers.discard(w)

    def cut(self) -> None:
        """Reset every open connection (both sides) and refuse new ones until restore()."""
        self._refusing = True
        for writer in list(self._writers):
            writer.transport.abort()

    def stall(self) -> None:
        """Forward nothing more, in either direction, until restore(); close nothing."""
        self._flowing.clear()

    def restore(self) -> None:
        self._refusing = False
        self._flowing.set()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flowing: asyncio.Event
) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while chunk := await reader.read(65536):
            await flowing.wait()
            writer.write(chunk)
            await writer.drain()
