"""Local ports for the servers the tests start (cxlake cluster nodes, s3s-fs)."""

import socket
import time


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, what, process=None, seconds=60):
    """Waits until something accepts connections on `port`; fails naming `what` when `process`
    exits first or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert process is None or process.poll() is None, f"{what} exited before it listened on port {port}"
            assert time.monotonic() < deadline, f"{what} did not start within {seconds} s"
            time.sleep(0.1)
