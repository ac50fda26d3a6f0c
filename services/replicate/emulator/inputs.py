"""Fetching file inputs: `data:` URIs, the emulator's own files, and http(s) URLs.

Replicate downloads a prediction's file inputs before it runs; the emulator does
so before it creates the prediction, so an unreachable or unreadable image is a 422
the caller sees at once instead of a failed prediction later.

Replicate fetches from the public internet only; so does the emulator, through the
server's one outbound policy (`services.outbound`): a caller cannot make it reach
an address inside the machine or its network. Its own files need no request.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from urllib.parse import unquote_to_bytes, urlsplit

from services.outbound import Fetcher, FetchError


class InputFetchError(ValueError):
    """The input could not be fetched; the message says why, for `invalid_fields`."""


LocalLookup = Callable[[str], bytes | None]


def decode_data_uri(uri: str) -> bytes:
    """The bytes of a `data:[<type>][;base64],<data>` URI (RFC 2397); InputFetchError
    if it has no comma or its base64 is broken."""
    header, comma, payload = uri.partition(",")
    if not comma:
        raise InputFetchError("the data URI has no ',' before its data")
    if header.lower().endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError) as error:
            raise InputFetchError(f"the data URI is not valid base64 ({error})") from error
    return unquote_to_bytes(payload)


async def fetch_input(
    url: str,
    *,
    fetcher: Fetcher,
    local: LocalLookup,
    max_bytes: int,
) -> bytes:
    """The bytes at `url` (http(s) or a data URI); `InputFetchError` if they cannot
    be had, are empty, or are over `max_bytes` bytes.

    `local` resolves URLs of the emulator's own files (outputs and uploads) without
    a request to itself, which also works when the emulator is reached under another
    host name than the one in the URL.
    """
    if url.startswith("data:"):
        data = decode_data_uri(url)
    else:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InputFetchError("must be an http(s) URL or a data URI")
        found = local(url)
        if found is not None:
            data = found
        else:
            try:
                data = (await fetcher.fetch(url, expect=None, max_bytes=max_bytes)).data
            except FetchError as error:
                # Like Replicate, one message whatever the cause: no port scanning by 422s.
                raise InputFetchError(f"could not fetch {url}") from error
    if not data:
        raise InputFetchError("the file is empty")
    if len(data) > max_bytes:
        raise InputFetchError(f"the file is larger than {max_bytes} bytes")
    return data
