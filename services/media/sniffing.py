"""What kind of media a file holds, from its first bytes (its "magic number").

`/media` serves only images, video and audio, each with the type its bytes
show, whatever its name says: a stored file named `.png` that holds HTML is
not served at all. The signatures are those of the WHATWG MIME Sniffing
standard (sections 6.1 to 6.2, https://mimesniff.spec.whatwg.org/) plus the
ISO base media file format brands (ISO/IEC 14496-12) for MP4, MOV and AVIF.

    sniff(b"\\x89PNG\\r\\n\\x1a\\n...")  # "image/png"
    sniff(b"<html>")                 # None
"""

from __future__ import annotations

SNIFF_BYTES = 64
"""How many leading bytes `sniff` needs to see."""

_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x1a\x45\xdf\xa3", "video/webm"),  # EBML: WebM or Matroska
    (b"OggS\x00", "audio/ogg"),
    (b"fLaC", "audio/flac"),
    (b"ID3", "audio/mpeg"),
)

_ISO_BRANDS: dict[bytes, str] = {
    b"avif": "image/avif",
    b"avis": "image/avif",
    b"qt  ": "video/quicktime",
    b"M4A ": "audio/mp4",
}


def _iso_media(head: bytes) -> str | None:
    """ISO base media files open with a box `size, "ftyp", major brand`."""
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    box_size = int.from_bytes(head[:4], "big")
    if box_size < 8:
        return None
    return _ISO_BRANDS.get(head[8:12], "video/mp4")


def sniff(head: bytes) -> str | None:
    """The image/*, video/* or audio/* type of a file starting with `head`, or None.

    `head` should be the first `SNIFF_BYTES` bytes (fewer if the file is shorter).
    """
    for prefix, media_type in _PREFIXES:
        if head.startswith(prefix):
            return media_type
    if head[:4] == b"RIFF" and len(head) >= 12:
        return {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}.get(
            head[8:12]
        )
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "audio/mpeg"  # an MPEG audio frame sync (layer bits not 00)
    return _iso_media(head)
