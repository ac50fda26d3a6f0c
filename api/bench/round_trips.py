"""Counting a server's SQL round trips: a TCP proxy in front of PostgreSQL that reads
what clients send.

A client of PostgreSQL waits for the server when it ends a batch of messages: with
Sync (`S`) in the extended query protocol (Parse/Bind/Describe/Execute ... Sync), with
each Query (`Q`) in the simple one, and with Flush (`H`), which asks for the answers so
far without ending the batch (asyncpg prepares a statement with Parse, Describe, Flush
and waits for the description). So those three counted over a run are the run's round
trips, whatever the driver, and Bind (`B`) plus Query are the statements it ran.
Message formats: https://www.postgresql.org/docs/current/protocol-message-formats.html

The proxy runs its own event loop in a thread, so a caller may block (start a server
that connects through it, wait on it) without stalling the traffic it counts. It
answers an SSL or GSSAPI encryption request with `N` itself, so every connection
stays readable; it is for loopback benchmarks only.

    with CountingProxy("127.0.0.1", 5432) as proxy:
        before = proxy.counts()
        ...  # a server connected to 127.0.0.1:{proxy.port} answers requests
        sent = proxy.counts() - before
        sent.round_trips, sent.statements
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
"""Codes of the untyped packets asking to encrypt the connection (answered `N` here)."""
STARTUP_HEADER = 8  # an untyped packet: int32 length, int32 code (protocol or request)
MESSAGE_HEADER = 5  # a typed message: one type byte, int32 length counting itself
CHUNK = 256 * 1024
STOP_SECONDS = 10.0


@dataclass(frozen=True)
class MessageCounts:
    """Messages clients sent through the proxy, by type byte (`S`, `Q`, `P`, `B`, ...),
    and the connections they opened; two counts subtract."""

    by_type: dict[str, int] = field(default_factory=dict)
    connections: int = 0

    def __sub__(self, other: MessageCounts) -> MessageCounts:
        keys = set(self.by_type) | set(other.by_type)
        return MessageCounts(
            {key: self.by_type.get(key, 0) - other.by_type.get(key, 0) for key in keys},
            self.connections - other.connections,
        )

    def of(self, kind: str) -> int:
        """How many messages of type byte `kind` were sent."""
        return self.by_type.get(kind, 0)

    @property
    def round_trips(self) -> int:
        """Sync, Query and Flush messages: the times a client waited for the server."""
        return self.of("S") + self.of("Q") + self.of("H")

    @property
    def statements(self) -> int:
        """Bind plus Query messages: the statements executed (a Query may hold several)."""
        return self.of("B") + self.of("Q")

    @property
    def parses(self) -> int:
        """Parse messages: statements prepared (a driver's cache makes these rare)."""
        return self.of("P")


class CountingProxy:
    """A TCP proxy on 127.0.0.1 (a free port, `port`) to PostgreSQL at host:port,
    counting the protocol messages clients send; use it as a context manager (or
    `start()` and `stop()`). OSError from `start()` if it cannot listen."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._counts: Counter[str] = Counter()
        self._connections = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()

    def __enter__(self) -> CountingProxy:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Listen, in the proxy's own thread."""
        self._thread.start()
        try:
            future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
            self._server = future.result(STOP_SECONDS)
        except BaseException:
            self._shut_loop()
            raise
        self.port = int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        """Close the listener and every proxied connection, then end the thread."""
        if self._thread.is_alive():
            with contextlib.suppress(TimeoutError, RuntimeError):
                asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(STOP_SECONDS)
        self._shut_loop()

    def counts(self) -> MessageCounts:
        """What clients have sent so far."""
        with self._lock:
            return MessageCounts(dict(self._counts), self._connections)

    def _shut_loop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STOP_SECONDS)
        if not self._loop.is_running():
            self._loop.close()

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        with self._lock:
            self._connections += 1
        pumps = (
            asyncio.create_task(self._from_client(reader, up_writer, writer)),
            asyncio.create_task(self._copy(up_reader, writer)),
        )
        self._pumps.update(pumps)
        try:
            # Either side closing ends the pair.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._pumps.difference_update(pumps)
            for side in (writer, up_writer):
                side.close()

    async def _copy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()

    async def _from_client(
        self,
        reader: asyncio.StreamReader,
        upstream: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
    ) -> None:
        """Forward what the client sends, counting each typed message once it is whole."""
        parser = FrontendParser()
        while data := await reader.read(CHUNK):
            forward, refusals, kinds = parser.feed(data)
            if refusals:
                client.write(b"N" * refusals)  # no encryption: the stream stays readable
                await client.drain()
            if kinds:
                with self._lock:
                    self._counts.update(kinds)
            if forward:
                upstream.write(forward)
                await upstream.drain()


class FrontendParser:
    """Splits the bytes a PostgreSQL client sends into its messages.

    The first packet of a connection is untyped (a start-up message, a cancel request,
    or a request for SSL or GSSAPI encryption, after which another untyped packet
    comes); every later one is typed. `feed` returns the bytes to forward (all whole
    messages so far, less encryption requests), how many encryption requests to
    refuse, and the type bytes of the typed messages completed.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._started = False

    def feed(self, data: bytes) -> tuple[bytes, int, list[str]]:
        """See the class docstring; partial messages wait for the next call."""
        self._buffer += data
        forward = bytearray()
        refusals = 0
        kinds: list[str] = []
        start = 0
        buffer = self._buffer
        while True:
            if not self._started:
                if len(buffer) - start < STARTUP_HEADER:
                    break
                # A length below the header's own is malformed: step over the header.
                length = max(int.from_bytes(buffer[start : start + 4], "big"), STARTUP_HEADER)
                if len(buffer) - start < length:
                    break
                code = int.from_bytes(buffer[start + 4 : start + 8], "big")
                if code in (SSL_REQUEST, GSSENC_REQUEST):
                    refusals += 1
                else:
                    self._started = True
                    forward += buffer[start : start + length]
                start += length
            else:
                if len(buffer) - start < MESSAGE_HEADER:
                    break
                length = int.from_bytes(buffer[start + 1 : start + 5], "big")
                end = start + 1 + length
                if len(buffer) < end:
                    break
                kinds.append(chr(buffer[start]))
                forward += buffer[start:end]
                start = end
        del buffer[:start]
        return bytes(forward), refusals, kinds
