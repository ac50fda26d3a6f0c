"""uvicorn's WebSocket protocol, with permessage-deflate for messages worth compressing.

RFC 7692 (§6) lets a sender choose per message: a message whose first frame has
RSV1 set is compressed, one without is not, and the receiver's inflater only
ever sees the compressed ones, so skipping a message leaves the shared
compression context (context takeover) as it was. Clients (browsers, the
`websockets` package) take both.

Most of what this server sends are small graphql-transport-ws frames (a `next`
of a few fields, `pong`, `complete`), written to every subscriber of an event:
deflating one costs more CPU per subscriber than writing it (a zlib call and a
sync flush for a few bytes saved), so, as Node's `ws` (`threshold`, 1024 bytes)
and OkHttp (`minWebSocketMessageToCompress`, 1024 bytes) do by default, a message
below `COMPRESS_MIN_BYTES` goes uncompressed. Larger ones (a storyboard snapshot,
a page of assets) are compressed exactly as before.

`StudioWebSocketProtocol` is passed to uvicorn as its `ws` protocol class
(`api.cli`): uvicorn's `websockets-sansio` protocol (what its `auto` picks with
`websockets` installed), whose permessage-deflate offer, when compression is on
(`WEBSOCKET_COMPRESSION`), negotiates `SmallMessagesUncompressed` instead of
`websockets`' own `PerMessageDeflate`.

It also writes a message without a coroutine (`write_now`), for the frames one
event sends to every subscriber (`api.fanout`): a `TextMessage` below
`COMPRESS_MIN_BYTES` is framed once (RFC 6455 §5.2: a server's frames are not
masked, and such a message is not compressed) and the same bytes go to every
socket that negotiated nothing else, so that what is left per subscriber is
the `write` itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.base import ServerExtensionFactory
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN
from websockets.server import ServerProtocol
from websockets.typing import ExtensionParameter

if TYPE_CHECKING:
    from uvicorn._types import ASGISendEvent

COMPRESS_MIN_BYTES = 1024
"""Messages (whole, in one frame) shorter than this many bytes are sent uncompressed."""

_DATA = (Opcode.TEXT, Opcode.BINARY)


class SmallMessagesUncompressed(PerMessageDeflate):
    """permessage-deflate that compresses a message only from `COMPRESS_MIN_BYTES` up.

    Only a message sent whole in one frame (FIN set) is left uncompressed: the
    continuation frames of a fragmented message are compressed as its first was.
    """

    def encode(self, frame: Frame) -> Frame:
        """The frame as sent: unchanged (RSV1 clear) for a small whole data message,
        else compressed by `PerMessageDeflate.encode`."""
        if frame.fin and frame.opcode in _DATA and len(frame.data) < COMPRESS_MIN_BYTES:
            return frame
        return super().encode(frame)


class TextMessage:
    """A text message to write to many sockets: `data`, its UTF-8 bytes, and `frame`,
    the whole frame a server sends for it uncompressed (one unmasked text frame, FIN
    set), or None from `COMPRESS_MIN_BYTES` up, where each socket's compression
    context makes its own frame."""

    __slots__ = ("data", "frame", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.data = text.encode()
        self.frame: bytes | None = None
        if len(self.data) < COMPRESS_MIN_BYTES:
            self.frame = Frame(Opcode.TEXT, self.data).serialize(mask=False)


class _Factory(ServerPerMessageDeflateFactory):
    def process_request_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Any],
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        response, negotiated = super().process_request_params(params, accepted_extensions)
        return response, SmallMessagesUncompressed(
            negotiated.remote_no_context_takeover,
            negotiated.local_no_context_takeover,
            negotiated.remote_max_window_bits,
            negotiated.local_max_window_bits,
            negotiated.compress_settings,
        )


class StudioWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's `websockets-sansio` protocol whose permessage-deflate (when
    `ws_per_message_deflate` is on) leaves small messages uncompressed; the same
    offer otherwise (12-bit windows, memLevel 5, as uvicorn's)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._frames_as_is: bool | None = None
        # Whether the transport has paused writing (`writable` cleared), as a plain
        # flag: `write_now` asks it for every subscriber of every event.
        self._paused = False
        extensions: list[ServerExtensionFactory] = []
        if self.config.ws_per_message_deflate:
            extensions.append(
                _Factory(
                    server_max_window_bits=12,
                    client_max_window_bits=12,
                    compress_settings={"memLevel": 5},
                )
            )
        self.conn = ServerProtocol(
            extensions=extensions,
            max_size=self.config.ws_max_size,
            logger=logging.getLogger("uvicorn.error"),
        )

    async def send(self, message: ASGISendEvent) -> None:
        """uvicorn's `send`; a handshake refused with an HTTP response (the ASGI
        `websocket.http.response` extension, as `api.limits.refuse_handshake` sends
        it: 429, 503) is then over, as uvicorn already counts one refused with
        `websocket.close`. Without this, uvicorn 0.54 logs "ASGI callable returned
        without completing handshake." at ERROR for every such refusal, which any
        client could fill the log with."""
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get(
            "more_body", False
        ):
            self.handshake_complete = True

    def write_now(self, message: TextMessage) -> bool:
        """Write `message` as `send({"type": "websocket.send", "text": ...})` would,
        without a coroutine; True if it was written, False if it was not because
        that `send` would wait or fail (the handshake not done or refused, the
        socket closing or closed, or its buffer over the high-water mark, when the
        transport has paused writing): then the caller uses `send`, which waits or
        raises as it always does."""
        if (
            self._paused
            or not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or self.initial_response is not None
        ):
            return False
        conn = self.conn
        if conn.state is not OPEN or conn.expect_continuation_frame:
            return False
        frame = message.frame
        if frame is not None and (self._frames_as_is or self._frames_taken_as_is()):
            self.transport.write(frame)
        else:
            conn.send_text(message.data)
            self.transport.write(b"".join(conn.data_to_send()))
        return True

    def pause_writing(self) -> None:
        """The transport's buffer is over its high-water mark: `send` waits, and
        `write_now` declines, until `resume_writing`."""
        self._paused = True
        super().pause_writing()

    def resume_writing(self) -> None:
        """The transport's buffer drained below its low-water mark."""
        self._paused = False
        super().resume_writing()

    def _frames_taken_as_is(self) -> bool:
        """Whether this connection's extensions leave a small text frame as it is:
        none were negotiated, or only `SmallMessagesUncompressed`."""
        if self._frames_as_is is None:
            self._frames_as_is = all(
                isinstance(extension, SmallMessagesUncompressed)
                for extension in self.conn.extensions
            )
        return self._frames_as_is
