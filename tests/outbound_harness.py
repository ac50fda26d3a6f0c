"""A real HTTP file host on a loopback port, for the outbound-fetch tests.

`FileHost` serves the shapes a download can take: a PNG served under any name and
type, HTML (also dressed up as a PNG), a tiny MP4, a body too big to keep, slow
answers, redirects and any status. It records every request it gets, so a test
can tell a refused download (no request at all) from a failed one.

    with FileHost() as host:
        url = host.url_for("/png")
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.emulator_harness import ThreadedServer

HTML = b"<!doctype html><html><body><script>alert(document.domain)</script></body></html>"
# An MP4's first box: size, `ftyp`, major brand `isom`, version, compatible brands.
MP4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + b"\x00" * 64


def png_bytes(size: tuple[int, int] = (32, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 40, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class Seen:
    """One request the host got."""

    path: str
    host: str


class FileHost(ThreadedServer):
    """Serves test files on 127.0.0.1; `requests` lists what it was asked for."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self.png = png_bytes()

        def remember(request: Request) -> None:
            with self._lock:
                self.requests.append(Seen(request.url.path, request.headers.get("host", "")))

        async def png(request: Request) -> Response:
            remember(request)
            # The type the server claims is deliberately wrong: the sniff decides.
            return Response(self.png, media_type=request.query_params.get("type", "text/plain"))

        async def page(request: Request) -> Response:
            remember(request)
            return Response(HTML, media_type="text/html")

        async def fake_png(request: Request) -> Response:
            remember(request)
            return Response(HTML, media_type="image/png")

        async def mp4(request: Request) -> Response:
            remember(request)
            return Response(MP4, media_type="video/mp4")

        async def huge(request: Request) -> StreamingResponse:
            remember(request)
            total = int(request.query_params.get("bytes", str(300 * 1024 * 1024)))
            chunk = self.png + b"\x00" * (64 * 1024 - len(self.png))

            async def body() -> object:
                sent = 0
                while sent < total:
                    yield chunk
                    sent += len(chunk)

            return StreamingResponse(body(), media_type="image/png")  # type: ignore[arg-type]

        async def slow(request: Request) -> Response:
            remember(request)
            await asyncio.sleep(float(request.query_params.get("seconds", "5")))
            return Response(self.png, media_type="image/png")

        async def redirect(request: Request) -> Response:
            remember(request)
            return RedirectResponse(request.query_params["to"], status_code=302)

        async def loop(request: Request) -> Response:
            remember(request)
            return RedirectResponse("/loop", status_code=302)

        async def status(request: Request) -> Response:
            remember(request)
            return Response(b"nope", status_code=int(request.path_params["code"]))

        super().__init__(
            lambda _: Starlette(
                routes=[
                    Route("/png", png),
                    Route("/photo.html", png),
                    Route("/page.html", page),
                    Route("/fake.png", fake_png),
                    Route("/clip.mp4", mp4),
                    Route("/huge", huge),
                    Route("/slow", slow),
                    Route("/redirect", redirect),
                    Route("/loop", loop),
                    Route("/status/{code:int}", status),
                ]
            ),
            "file-host",
        )

    def url_for(self, path: str) -> str:
        return f"{self.url}{path}"

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    def seen(self, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for `name` (its own CA) and its key, made with the openssl CLI."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            f"/CN={name}",
            "-addext",
            f"subjectAltName=DNS:{name}",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class TlsFileHost(FileHost):
    """`FileHost` over HTTPS, with a certificate for one name."""

    def __init__(self, cert: Path, key: Path) -> None:
        super().__init__()
        # uvicorn builds its TLS context when it starts, from these.
        self._server.config.ssl_certfile = str(cert)
        self._server.config.ssl_keyfile = str(key)
