"""`make run`: starts NATS if none answers, then every DBMigrate service; Ctrl-C or SIGTERM stops them all."""
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
from services.common.launcher import MODULES, ServiceProcess

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


def main() -> None:
    data = Path(env_str("DBMIGRATE_DATA_DIR", str(ROOT / "var")))
    data.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DBMIGRATE_DATA_DIR", str(data))
    nats = ensure_nats(data)
    order = ["discovery", "validation", "generation", "execution", "coordinator", "web"]
    procs: list[ServiceProcess] = []
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
            addr = env_str(f"DBMIGRATE_{name.upper()}_ADDR", DEFAULT_ADDRESSES[name])
            p = ServiceProcess(name, addr, log_path=None)
            p.proc = subprocess.Popen([sys.executable, "-m", MODULES[name]], start_new_session=True)
            procs.append(p)
        for p in procs:
            p.wait_ready(60)
            print(f"{p.service:12s} ready on {p.address}")
        web = env_str("DBMIGRATE_WEB_ADDR", DEFAULT_ADDRESSES["web"])
        print(f"\nDBMigrate is running. Web page: http://{web}/  gRPC: grpcurl -plaintext "
              f"{env_str('DBMIGRATE_COORDINATOR_ADDR', DEFAULT_ADDRESSES['coordinator'])} list\n"
              f"CLI: .venv/bin/dbmigrate --help   Logs: this terminal. Ctrl-C stops everything.")
        while not stopping:
            for p in procs:
                if not p.alive:
                    print(f"{p.service} exited with code {p.proc.returncode}; stopping the stack", file=sys.stderr)
                    stopping = True
            time.sleep(0.5)
    finally:
        for p in reversed(procs):
            p.stop()
        if nats is not None:
            nats.terminate()
        print("stopped")


if __name__ == "__main__":
    main()
