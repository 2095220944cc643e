"""The local HTTP API the example workflow's http_request node calls, in its own process.

`python -m bench.echo` starts automateos_devstack's EchoServer, prints its port on the first
line, and serves until SIGTERM/SIGINT. A process of its own so that answering the engine's
calls never competes with the bench's bookkeeping for the interpreter lock.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

from automateos_devstack.testing import EchoServer


def main() -> None:
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with EchoServer() as echo:
        sys.stdout.write(f"{echo.port}\n")
        sys.stdout.flush()
        while not stop.wait(5.0):
            echo.requests.clear()  # it keeps every request it saw; a bench sends tens of thousands


if __name__ == "__main__":
    main()
