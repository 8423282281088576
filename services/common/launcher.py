"""Starts DBMigrate services as child processes and waits until their health check says SERVING.

Each service is forked from one fork server per launcher (multiprocessing's "forkserver", which
has imported services.common.preload: grpc, psycopg, protobuf and the generated code), then runs
its module as `python -m MODULE` would, in a session of its own, with its own environment and
output, and that command line as its process title (setproctitle: `ps`, `pgrep -f` and `pkill -f`
see `... -m services.validation` as before). The services share the preloaded modules' memory:
at rest 122 MB for all six (PSS, the fork server and multiprocessing's resource tracker included)
instead of 196 MB. Containers
(compose.yaml) start each service on its own, as `python -m MODULE`.
"""
from __future__ import annotations

import multiprocessing
import os
import runpy
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.channels import sync_channel

GRPC_SERVICES = ("discovery", "validation", "generation", "execution", "coordinator")
MODULES = {
    "coordinator": "coordinator",
    "discovery": "services.discovery",
    "validation": "services.validation",
    "generation": "services.generation",
    "execution": "services.execution",
    "web": "web",
}


def wait_grpc_serving(address: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"service at {address} exited with code {proc.returncode} before it was SERVING")
        try:
            with sync_channel(address) as ch:  # TLS when DBMIGRATE_TLS_CA is set
                r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = str(r.status)
        except grpc.RpcError as err:
            last = err.code().name
        time.sleep(0.1)
    raise TimeoutError(f"service at {address} not SERVING after {timeout:.0f}s (last: {last})")


def wait_http_ok(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    import urllib.request
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"web at {url} exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status < 500:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"web at {url} did not answer after {timeout:.0f}s")


PRELOAD = "services.common.preload"
INHERIT = "-"  # ServiceProcess.log_path: the service writes to the launcher's own stdout and stderr


def _fork_server() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([PRELOAD])
    return context


def _run_service(module: str, env: dict[str, str], log_path: str | None) -> None:
    """A forked service: its own session, environment, output and title, then its module as `python -m`."""
    import setproctitle  # before the environment changes: it finds the memory of argv by that of environ
    setproctitle.setproctitle(f"{sys.executable} -m {module}")
    os.setsid()
    os.environ.clear()
    os.environ.update(env)
    if log_path != INHERIT:
        out = os.open(log_path or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
    sys.argv = [module]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


class Forked:
    """A forked service, seen as subprocess.Popen shows a process (pid, poll, wait, returncode,
    send_signal, kill), so a launcher and its tests treat it as any child."""

    def __init__(self, process: multiprocessing.process.BaseProcess):
        self._process = process
        self.pid = process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode  # negative: the signal that ended it, as Popen says

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def start_service(module: str, env: dict[str, str], log_path: str | None = None) -> Forked:
    """Forks `module` (`python -m` style) with exactly `env` as its environment; output to `log_path`
    (appended), nowhere when None, or the launcher's own when INHERIT."""
    process = _fork_server().Process(target=_run_service, args=(module, env, log_path), daemon=True,
                                     name=f"dbmigrate-{module}")
    process.start()
    return Forked(process)


@dataclass
class ServiceProcess:
    """One service as a child process: start, wait until healthy, terminate or kill -9."""

    service: str
    address: str
    env: dict[str, str] = field(default_factory=dict)
    log_path: str | None = None
    proc: subprocess.Popen | Forked | None = None
    module: str | None = None  # run this module instead of the service's own (tests use stand-ins)

    def start(self, wait: bool = True, timeout: float = 30.0) -> "ServiceProcess":
        self.proc = start_service(self.module or MODULES[self.service], {**os.environ, **self.env}, self.log_path)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        if self.service == "web":
            wait_http_ok(f"http://{self.address}/api/health", timeout, self.proc)
        else:
            wait_grpc_serving(self.address, timeout, self.proc)

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        return self.proc.returncode

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
