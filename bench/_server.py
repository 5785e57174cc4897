"""A Cordon API process for benchmarks: `cordon serve` as a subprocess on 127.0.0.1, the way
a deployment runs it, so the load generator does not share its interpreter."""

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class Server:
    base: str
    pid: int

    def cpu_seconds(self) -> float:
        """CPU time the server process has used (user + system), whatever else runs here."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def cordon_serve(
    service: str, *, env: dict[str, str], ready_within: float = 60
) -> Iterator[Server]:
    """Run `cordon serve -s <service>` until the block ends; yield its address. Its log goes
    to a temporary file, shown if it fails to start."""
    port = free_port()
    cordon = Path(sys.executable).with_name("cordon")
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [str(cordon), "serve", "-s", service, "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(process, f"{base}/readyz", ready_within, log)
            yield Server(base, process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(process: subprocess.Popen[str], url: str, within: float, log: IO[str]) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + within
    while True:
        problem = None
        if process.poll() is not None:
            problem = "cordon serve exited"
        elif time.monotonic() > deadline:
            problem = f"cordon serve was not ready at {url} within {within}s"
        if problem:
            log.seek(0)
            raise RuntimeError(f"{problem}:\n{log.read()[-4000:]}")
        try:
            with opener.open(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
