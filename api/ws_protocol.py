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
