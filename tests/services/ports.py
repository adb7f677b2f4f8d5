"""Pick free TCP ports on the loopback interface."""

from __future__ import annotations

import socket
import threading

_lock = threading.Lock()
# Ports handed out by this process. The OS may hand the same port out again
# until somebody binds it, so remember them to never give one out twice.
_given: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that is currently free.

    The port is found by binding to port 0 and closing the socket again, so a
    small race with other processes remains; within this process a port is
    never returned twice.
    """
    with _lock:
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port = sock.getsockname()[1]
            if port not in _given:
                _given.add(port)
                return port
    raise RuntimeError(f"could not find a free TCP port on {host}")
