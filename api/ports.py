"""Free TCP ports on this machine, for servers started on the fly (the embedded
emulator, benchmark and test servers)."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nothing listens on at `host` right now (the OS picks it).

    Another process may take it before the caller binds it: a caller that cannot
    tolerate that retries with a new port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def bound_socket(host: str = LOOPBACK) -> socket.socket:
    """A TCP socket already bound to a free port at `host`, for a server to take as it
    is: unlike `free_port`, nothing can take the port in between. The caller closes it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
    except OSError:
        sock.close()
        raise
    return sock
