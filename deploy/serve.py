"""make serve: N app processes behind nginx on one port, for a room that one process cannot carry.

    python -m deploy.serve [--replicas 2] [--port 8500] [--host 127.0.0.1]

One Streamlit process runs every rerun under one Python interpreter (one core at most, whatever the
machine has); N processes use N cores. Each replica listens on loopback (port + 1 + i); nginx listens on
--port, upgrades websockets, and keeps each browser with one replica (a route cookie it sets and hashes
on: deploy/nginx.conf.template), so that a session's websocket, uploads and media reach the process that
holds the session. A replica is only put behind nginx once /_stcore/health answers; nginx takes a replica
that stops answering out of rotation (max_fails) and serve.py restarts it. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).resolve().parent / "nginx.conf.template"
HEALTH = "/_stcore/health"
# The environment every app process is started with (make run, make serve, the Dockerfile, Kubernetes; tests
# check they agree). Streamlit runs each session's script in a thread, and glibc gives threads their own malloc
# arenas (up to 8 per core), each keeping what it freed: after three rooms of 60 participants in a row one
# process held 701 MB, 622 MB with two arenas (p95 of the rooms 0.36, 0.25, 0.26 s against 0.60, 0.27, 0.36 s),
# at the same server CPU (rooms of 30, in turn: 25.2 and 19.8 s against 24.8 and 20.6 s).
SERVER_ENV = {"MALLOC_ARENA_MAX": "2"}


def replica_cmd(port: int) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
        "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
    ]  # fmt: skip


def healthy(port: int) -> bool:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}{HEALTH}", timeout=2).status == 200
    except OSError:
        return False


def wait_healthy(port: int, seconds: float = 120) -> None:
    end = time.time() + seconds
    while time.time() < end:
        if healthy(port):
            return
        time.sleep(0.3)
    raise RuntimeError(f"replica on port {port} did not answer {HEALTH} within {seconds:.0f} s")


def nginx_conf(directory: Path, host: str, port: int, replica_ports: list[int]) -> str:
    upstreams = "\n".join(f"        server 127.0.0.1:{p} max_fails=2 fail_timeout=5s;" for p in replica_ports)
    return (
        TEMPLATE.read_text()
        .replace("@DIR@", str(directory))
        .replace("@HOST@", host)
        .replace("@PORT@", str(port))
        .replace("@UPSTREAMS@", upstreams)
    )


class Cluster:
    """The replicas and nginx, started and stopped together (a context manager)."""

    def __init__(self, replicas: int = 2, port: int = 8500, host: str = "127.0.0.1"):
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(nginx).exists():
            raise RuntimeError("nginx is not installed (Debian: apt-get install nginx-light).")
        self.nginx, self.port, self.host = nginx, port, host
        self.ports = [port + 1 + i for i in range(replicas)]
        self.dir = Path(tempfile.mkdtemp(prefix="kvlab-nginx-"))
        self.procs: dict[int, subprocess.Popen] = {}
        self.nginx_proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start_replica(self, port: int) -> None:
        self.procs[port] = subprocess.Popen(
            replica_cmd(port), cwd=ROOT, env=os.environ | SERVER_ENV, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def __enter__(self) -> Cluster:
        for p in self.ports:
            self.start_replica(p)
        for p in self.ports:
            wait_healthy(p)
        conf = self.dir / "nginx.conf"
        conf.write_text(nginx_conf(self.dir, self.host, self.port, self.ports))
        self.nginx_proc = subprocess.Popen(
            [self.nginx, "-p", str(self.dir), "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        end = time.time() + 30
        while time.time() < end:
            try:
                urllib.request.urlopen(self.url + HEALTH, timeout=2)
                return self
            except OSError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"nginx did not answer on {self.url} (see {self.dir / 'error.log'})")

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs.values()]

    def keep_alive(self) -> None:
        """Restart a replica whose process died (nginx routes around it meanwhile)."""
        for port, proc in list(self.procs.items()):
            if proc.poll() is not None:
                print(f"replica on port {port} exited ({proc.returncode}); restarting", flush=True)
                self.start_replica(port)

    def __exit__(self, *exc) -> None:
        for p in [self.nginx_proc, *self.procs.values()]:
            if p and p.poll() is None:
                p.terminate()
        for p in [self.nginx_proc, *self.procs.values()]:
            if p:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m deploy.serve", description=__doc__.split("\n")[0])
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--port", type=int, default=8500)
    ap.add_argument("--host", default="127.0.0.1", help="where nginx listens (0.0.0.0: the whole network)")
    a = ap.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    with Cluster(a.replicas, a.port, a.host) as c:
        print(f"KV Cache Lab on {c.url}: {a.replicas} replicas on ports {c.ports} behind nginx", flush=True)
        try:
            while not stop:
                time.sleep(2)
                c.keep_alive()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
