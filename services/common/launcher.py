"""Starts DBMigrate services as child processes and waits until their health check says SERVING."""
from __future__ import annotations

import os
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


@dataclass
class ServiceProcess:
    """One service as a child process: start, wait until healthy, terminate or kill -9."""

    service: str
    address: str
    env: dict[str, str] = field(default_factory=dict)
    log_path: str | None = None
    proc: subprocess.Popen | None = None
    module: str | None = None  # run this module instead of the service's own (tests use stand-ins)

    def start(self, wait: bool = True, timeout: float = 30.0) -> "ServiceProcess":
        env = {**os.environ, **self.env}
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen([sys.executable, "-m", self.module or MODULES[self.service]], env=env,
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
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
            os.kill(self.proc.pid, signal.SIGKILL)
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
