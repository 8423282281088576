"""compose.yaml and the Dockerfile, checked without a Docker engine: the compose parser, and each
service started here exactly as compose configures it, judged by its own health check."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.fixtures.nats import free_port

ROOT = Path(__file__).resolve().parents[2]
DBMIGRATE_SERVICES = ("coordinator", "discovery", "validation", "generation", "execution", "web")
ALL_SERVICES = (*DBMIGRATE_SERVICES, "nats", "source-db", "target-db")


def _docker_compose() -> str:
    found = shutil.which("docker-compose")
    assert found, "docker-compose is missing: `bash scripts/install-tools.sh` installs it (apt docker-compose)"
    return found


@pytest.fixture(scope="module")
def config() -> dict:
    """compose.yaml as docker-compose itself resolves it (anchors merged, defaults filled in)."""
    p = subprocess.run([_docker_compose(), "-f", str(ROOT / "compose.yaml"), "config"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if not k.startswith("DBMIGRATE_")})
    assert p.returncode == 0, f"docker-compose config rejected compose.yaml:\n{p.stderr}"
    return yaml.safe_load(p.stdout)


def _mounts(svc: dict) -> list[tuple[str, str]]:
    """(source, target) of each volume, in the short "src:dst[:mode]" or the long form."""
    out = []
    for v in svc.get("volumes", []):
        if isinstance(v, dict):
            out.append((str(v.get("source", "")), v["target"]))
        else:
            parts = v.split(":")
            out.append((parts[0], parts[1]))
    return out


def test_compose_has_every_service_with_health_checks_and_restart_policies(config):
    services = config["services"]
    assert set(services) == set(ALL_SERVICES)
    for name, svc in services.items():
        assert svc.get("restart") in ("unless-stopped", "always", "on-failure"), name
        test = svc["healthcheck"]["test"]
        assert test[0] == "CMD", name
    for name in DBMIGRATE_SERVICES:
        svc = services[name]
        assert svc["image"] == "dbmigrate:latest" and "build" in svc, name
        assert "env_file" not in svc, f"{name}: configuration comes through environment variables only"
        port = svc["environment"]["DBMIGRATE_LISTEN_ADDR"].rpartition(":")[2]
        check = svc["healthcheck"]["test"]
        assert check[1:4] == ["python", "-m", "services.common.healthcheck"], name
        assert port in check[-1], f"{name}: the health check must probe the port the service listens on"
    assert "-js" in services["nats"]["command"] and ("nats-data", "/data") in _mounts(services["nats"])
    coordinator = services["coordinator"]
    log_dir = str(Path(coordinator["environment"]["DBMIGRATE_EVENT_LOG"]).parent)
    assert ("coordinator-data", log_dir) in _mounts(coordinator), "the event log must live on a volume"
    assert {"nats", "discovery", "validation", "generation", "execution"} <= set(coordinator["depends_on"])
    seed = [src for src, dst in _mounts(services["source-db"]) if dst.startswith("/docker-entrypoint-initdb.d/")]
    assert seed and Path(seed[0]).exists(), "the source database is seeded by an init script"
    assert not any("initdb" in dst for _, dst in _mounts(services["target-db"])), "the target starts empty"
    assert set(config["volumes"]) >= {"nats-data", "coordinator-data"}


def test_every_variable_compose_sets_is_one_dbmigrate_reads(config):
    code = "\n".join(p.read_text() for d in ("services", "coordinator", "web", "cli")
                     for p in (ROOT / d).rglob("*.py"))
    for name in DBMIGRATE_SERVICES:
        for var in config["services"][name]["environment"]:
            if var.startswith("DBMIGRATE_"):
                assert var in code or re.sub(r"_[A-Z]+_ADDR$", "", var) != var, f"{name}: {var} is read by nothing"


def test_the_sample_seed_script_loads_into_postgresql(config, new_database):
    source = Path(next(src for src, dst in _mounts(config["services"]["source-db"]) if "initdb" in dst))
    db = new_database("seed")
    p = subprocess.run(["psql", db.url, "-v", "ON_ERROR_STOP=1", "-q", "-c", "SET dbmigrate.sample_scale = '0.01'",
                        "-f", str(source)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert db.scalar("SELECT count(*) FROM sales.order_items") == 2000
    assert db.scalar("SELECT count(*) FROM pg_constraint WHERE contype = 'f'") >= 6
    assert db.scalar("SELECT count(DISTINCT table_schema) FROM information_schema.tables "
                     "WHERE table_schema IN ('sales', 'catalog', 'audit')") == 3


def _remap(value: str, ports: dict[str, tuple[str, int]], nats_url: str, data_dir: Path) -> str:
    """A compose value as it must read on this one host: service names and fixed ports to free ports."""
    value = value.replace("nats://nats:4222", nats_url)
    if value.startswith("/data"):
        value = str(data_dir) + value[len("/data"):]
    for service, (port, free) in ports.items():
        value = value.replace(f"{service}:{port}", f"127.0.0.1:{free}")
        for host in ("0.0.0.0", "127.0.0.1"):
            value = value.replace(f"{host}:{port}", f"{host}:{free}")
    return value


def test_each_service_starts_as_compose_configures_it_and_passes_its_health_check(config, nats_url, tmp_path):
    services = config["services"]
    listen = {name: services[name]["environment"]["DBMIGRATE_LISTEN_ADDR"].rpartition(":")[2]
              for name in DBMIGRATE_SERVICES}
    ports = {name: (port, free_port()) for name, port in listen.items()}
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name in ("discovery", "validation", "generation", "execution", "coordinator", "web"):
            svc = services[name]
            env = {k: v for k, v in os.environ.items() if not k.startswith("DBMIGRATE_")}
            data = tmp_path / name
            data.mkdir()
            for key, value in svc["environment"].items():
                env[key] = _remap(str(value), ports, nats_url, data)
            # Every service would bind the same metrics port, as in its own container; here they share a host.
            metrics_port = free_port()
            env["DBMIGRATE_METRICS_ADDR"] = f"127.0.0.1:{metrics_port}"
            command = svc["command"]
            assert command[:2] == ["python", "-m"] and importlib.util.find_spec(command[2]) is not None
            procs[name] = subprocess.Popen([sys.executable, *command[1:]], cwd=ROOT, env=env,
                                           stdout=open(data / "log", "wb"), stderr=subprocess.STDOUT,
                                           start_new_session=True)
            procs[name].metrics_port = metrics_port
        for name, proc in procs.items():
            check = [_remap(part, ports, nats_url, tmp_path) for part in services[name]["healthcheck"]["test"][1:]]
            assert check[0] == "python"
            deadline = time.monotonic() + 60
            while True:
                p = subprocess.run([sys.executable, *check[1:]], cwd=ROOT, capture_output=True, text=True, timeout=30)
                if p.returncode == 0:
                    break
                assert proc.poll() is None, f"{name} exited: {(tmp_path / name / 'log').read_text()[-2000:]}"
                assert time.monotonic() < deadline, f"{name} never healthy: {p.stdout} {p.stderr}"
                time.sleep(0.5)
            assert p.stdout.strip() == "SERVING"
        # Logs: one JSON object per line, naming the service.
        for name in DBMIGRATE_SERVICES:
            lines = [line for line in (tmp_path / name / "log").read_text().splitlines() if line.strip()]
            assert lines, name
            for line in lines:
                if line.startswith("{"):
                    assert json.loads(line)["service"] == name
        with urllib.request.urlopen(f"http://127.0.0.1:{procs['coordinator'].metrics_port}/metrics", timeout=5) as r:
            assert b"dbmigrate_migrations" in r.read()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _dockerfile() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_recipe_runs_here(tmp_path):
    steps = _dockerfile()
    assert steps[0] == ("FROM", "python:3.11-slim")
    runs = [rest for word, rest in steps if word == "RUN"]
    env = " ".join(rest for word, rest in steps if word == "ENV")
    assert "PYTHONPATH=/app:/app/gen" in env
    # The system package gives pg_dump and psql.
    assert any("postgresql-client" in r for r in runs)
    for tool in ("pg_dump", "psql"):
        assert subprocess.run([tool, "--version"], capture_output=True).returncode == 0
    build = next(r for r in runs if "pip install ." in r)
    parts = [c.strip() for c in build.split("&&")]
    # Each Python step of the build, run here in a scratch copy of the layout.
    work = tmp_path / "app"
    work.mkdir()
    (work / "protos").symlink_to(ROOT / "protos")
    for part in parts:
        if part.startswith("mkdir -p gen"):
            (work / "gen").mkdir()
        elif part.startswith("python -m grpc_tools.protoc"):
            args = shlex.split(part)
            protos = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "protos/dbmigrate/v1").glob("*.proto"))]
            args = [a for a in args if "*" not in a] + protos
            p = subprocess.run([sys.executable, *args[1:]], cwd=work, capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, p.stderr
        elif part.startswith("python -c"):
            p = subprocess.run([sys.executable, *shlex.split(part)[1:]], cwd=tmp_path, capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(work / "gen")}, timeout=60)
            assert p.returncode == 0, p.stderr
    assert (work / "gen/dbmigrate/v1/coordinator_pb2_grpc.py").exists()
    # `pip install .`: the project builds into a wheel that carries its SQL files and every package.
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path / "wheel"), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    names = zipfile.ZipFile(next((tmp_path / "wheel").glob("dbmigrate-*.whl"))).namelist()
    for needed in ("coordinator/__main__.py", "cli/main.py", "services/common/healthcheck.py", "web/__main__.py"):
        assert needed in names
    assert any(n.startswith("services/common/sql/") and n.endswith(".sql") for n in names)
    cmd = json.loads(next(rest for word, rest in steps if word == "CMD"))
    assert cmd[:2] == ["python", "-m"] and importlib.util.find_spec(cmd[2]) is not None
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "gen" in ignored
