"""`make run` (python -m scripts.run_stack) supervises: a service that dies is restarted, the others keep running."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

from services.common.launcher import wait_grpc_serving
from tests.fixtures.nats import free_port

SERVICES = ("coordinator", "discovery", "validation", "generation", "execution", "web")


def _child(parent: psutil.Process, module: str) -> psutil.Process | None:
    """The service running `module` under the stack (forked by its fork server: a grandchild)."""
    for c in parent.children(recursive=True):
        try:
            if module in " ".join(c.cmdline()):
                return c
        except psutil.NoSuchProcess:
            continue
    return None


def test_a_killed_service_is_restarted_while_the_others_keep_running(nats_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBMIGRATE_")}
    env.update({"DBMIGRATE_DATA_DIR": str(tmp_path), "DBMIGRATE_NATS_URL": nats_url})
    for name in SERVICES:
        env[f"DBMIGRATE_{name.upper()}_ADDR"] = f"127.0.0.1:{free_port()}"
    log = open(tmp_path / "stack.log", "w+")
    stack = subprocess.Popen([sys.executable, "-m", "scripts.run_stack"], env=env, stdout=log,
                             stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while "DBMigrate is running" not in (tmp_path / "stack.log").read_text():
            assert stack.poll() is None and time.monotonic() < deadline, (tmp_path / "stack.log").read_text()
            time.sleep(0.2)
        parent = psutil.Process(stack.pid)
        coordinator = _child(parent, "-m coordinator")
        validation = _child(parent, "-m services.validation")
        validation.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            again = _child(parent, "-m services.validation")
            if again is not None and again.pid != validation.pid:
                break
            assert time.monotonic() < deadline, (tmp_path / "stack.log").read_text()
            time.sleep(0.2)
        wait_grpc_serving(env["DBMIGRATE_VALIDATION_ADDR"], 30)
        assert stack.poll() is None and coordinator.is_running()
        assert _child(parent, "-m coordinator").pid == coordinator.pid  # never stopped
        text = (tmp_path / "stack.log").read_text()
        assert "validation exited with code -9" in text and "validation restarted (restart 1)" in text
    finally:
        stack.send_signal(signal.SIGTERM)
        stack.wait(60)
        log.close()
    assert "stopped" in (tmp_path / "stack.log").read_text()
