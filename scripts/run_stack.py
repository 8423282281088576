"""`make run`: starts NATS if none answers, then every DBMigrate service, and restarts one that dies
(with backoff, as compose's restart policy does) while the others keep running; Ctrl-C or SIGTERM
stops them all."""
from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from services.common.config import DEFAULT_ADDRESSES, env_str
from services.common.launcher import INHERIT, MODULES, ServiceProcess, start_service

ROOT = Path(__file__).resolve().parent.parent


def _answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), 0.5).close()
        return True
    except OSError:
        return False


def ensure_nats(data: Path) -> subprocess.Popen | None:
    url = env_str("DBMIGRATE_NATS_URL", "nats://127.0.0.1:4222")
    u = urlparse(url)
    host, port = u.hostname or "127.0.0.1", u.port or 4222
    if _answers(host, port):
        print(f"NATS: using {url}")
        return None
    binary = Path(sys.executable).parent / "nats-server"
    store = data / "nats"
    store.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([str(binary), "-js", "-a", host, "-p", str(port), "-sd", str(store)],
                            stdout=open(data / "nats.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    for _ in range(50):
        if _answers(host, port):
            print(f"NATS: started nats-server with JetStream on {host}:{port} (store {store})")
            return proc
        time.sleep(0.1)
    raise SystemExit(f"NATS did not start on {host}:{port}; see {data / 'nats.log'}")


# Like compose's restart policy: a service that dies is started again, after a delay that doubles
# with each quick death (1 s up to 30 s) and is forgotten once it has run for a minute.
BACKOFF_FIRST, BACKOFF_MAX, HEALTHY_AFTER = 1.0, 30.0, 60.0


class Supervised:
    """One service under supervision: its process, when it started, when it may start again."""

    def __init__(self, name: str):
        self.name = name
        self.address = env_str(f"DBMIGRATE_{name.upper()}_ADDR", DEFAULT_ADDRESSES[name])
        self.process = ServiceProcess(name, self.address, log_path=None)
        self.started = 0.0
        self.delay = BACKOFF_FIRST
        self.restart_at: float | None = None
        self.restarts = 0

    def start(self) -> None:
        self.process.proc = start_service(MODULES[self.name], dict(os.environ), INHERIT)
        self.started = time.monotonic()
        self.restart_at = None

    def check(self, now: float) -> None:
        """Notices a death and schedules the restart; restarts when its time has come."""
        if self.restart_at is None and not self.process.alive:
            code = self.process.proc.returncode
            if now - self.started >= HEALTHY_AFTER:
                self.delay = BACKOFF_FIRST
            self.restart_at = now + self.delay
            print(f"{self.name} exited with code {code} after {now - self.started:.0f}s; restarting it in "
                  f"{self.delay:.0f}s (the other services keep running)", file=sys.stderr, flush=True)
            self.delay = min(self.delay * 2, BACKOFF_MAX)
        elif self.restart_at is not None and now >= self.restart_at:
            self.restarts += 1
            self.start()
            print(f"{self.name} restarted (restart {self.restarts}), pid {self.process.proc.pid}",
                  file=sys.stderr, flush=True)


def main() -> None:
    data = Path(env_str("DBMIGRATE_DATA_DIR", str(ROOT / "var")))
    data.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DBMIGRATE_DATA_DIR", str(data))
    nats = ensure_nats(data)
    order = ["discovery", "validation", "generation", "execution", "coordinator", "web"]
    services: list[Supervised] = []
    stopping = False

    def stop_all(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    try:
        for name in order:
            if importlib.util.find_spec(f"{MODULES[name]}.__main__") is None:
                print(f"{name}: not built yet, skipped")
                continue
            services.append(Supervised(name))
            services[-1].start()
        for s in services:
            s.process.wait_ready(60)
            print(f"{s.name:12s} ready on {s.address}")
        web = env_str("DBMIGRATE_WEB_ADDR", DEFAULT_ADDRESSES["web"])
        print(f"\nDBMigrate is running. Web page: http://{web}/  gRPC: grpcurl -plaintext "
              f"{env_str('DBMIGRATE_COORDINATOR_ADDR', DEFAULT_ADDRESSES['coordinator'])} list\n"
              "CLI: .venv/bin/dbmigrate --help   Logs: this terminal. A service that dies is restarted; "
              "Ctrl-C stops everything.", flush=True)
        while not stopping:
            now = time.monotonic()
            for s in services:
                s.check(now)
            time.sleep(0.25)
    finally:
        for s in reversed(services):
            s.process.stop()
        if nats is not None:
            nats.terminate()
        print("stopped")


if __name__ == "__main__":
    main()
