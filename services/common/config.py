"""Configuration from DBMIGRATE_* environment variables, with errors that name the variable."""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass

from services.common.errors import ConfigError

# The most parallel jobs a migration may ask for (0 = the number of cores); the coordinator refuses
# more, and the CLI and the web API's schema say the same.
MAX_JOBS = 64

# Where each service listens and where the others reach it.
DEFAULT_ADDRESSES = {
    "coordinator": "127.0.0.1:50050",
    "discovery": "127.0.0.1:50051",
    "validation": "127.0.0.1:50052",
    "generation": "127.0.0.1:50053",
    "execution": "127.0.0.1:50054",
    "web": "127.0.0.1:8000",
}


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str | None:
    value = os.environ.get(name)
    if value is None or value == "":
        if required:
            raise ConfigError(f"{name} is not set; set it to a value (see README, Configuration)")
        return default
    return value


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} is below the minimum of {minimum}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} is below the minimum of {minimum}")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true or false)")


def check_address(name: str, value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not (0 <= int(port) <= 65535):
        raise ConfigError(f"{name}={value!r} is not HOST:PORT (for example 127.0.0.1:50051)")
    return value


def service_address(service: str) -> str:
    """The address other processes use to reach `service` (DBMIGRATE_<SERVICE>_ADDR)."""
    name = f"DBMIGRATE_{service.upper()}_ADDR"
    return check_address(name, env_str(name, DEFAULT_ADDRESSES[service]))


def listen_address(service: str) -> str:
    """Where `service` binds: DBMIGRATE_LISTEN_ADDR if set (containers), else its own address."""
    override = env_str("DBMIGRATE_LISTEN_ADDR")
    if override:
        return check_address("DBMIGRATE_LISTEN_ADDR", override)
    return service_address(service)


@dataclass(frozen=True)
class ServerSettings:
    """What every gRPC service reads at start."""

    service: str
    listen: str
    grace_seconds: float
    log_level: str
    token: str | None

    @classmethod
    def from_env(cls, service: str) -> "ServerSettings":
        settings()  # the process's tuning, checked now rather than in the middle of a migration
        level = (env_str("DBMIGRATE_LOG_LEVEL", "INFO") or "INFO").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"DBMIGRATE_LOG_LEVEL={level!r} is not one of DEBUG, INFO, WARNING, ERROR")
        return cls(
            service=service,
            listen=listen_address(service),
            grace_seconds=env_float("DBMIGRATE_GRACE_SECONDS", 10.0, minimum=0),
            log_level=level,
            token=env_str("DBMIGRATE_GRPC_TOKEN"),
        )


@dataclass(frozen=True)
class Settings:
    """The tuning every process reads once (settings()), each value checked, each error naming its
    variable. A service reads it at start (ServerSettings.from_env), so a bad value stops it there."""

    lock_timeout_seconds: float        # DBMIGRATE_LOCK_TIMEOUT_SECONDS: a lock held on the target fails a statement
    discovery_sample_seconds: float    # DBMIGRATE_DISCOVERY_SAMPLE_SECONDS: least window between traffic samples
    discovery_lock_timeout: str        # DBMIGRATE_DISCOVERY_LOCK_TIMEOUT: catalog reads wait at most this
    keepalive_seconds: float           # DBMIGRATE_GRPC_KEEPALIVE_SECONDS: one rule for clients and servers
    data_dir: str                      # DBMIGRATE_DATA_DIR: the coordinator's event log and secret store
    event_log: str                     # DBMIGRATE_EVENT_LOG (default DATA_DIR/events.db)
    agent_retry_seconds: float         # DBMIGRATE_AGENT_RETRY_SECONDS: an agent that does not answer
    database_retry_seconds: float      # DBMIGRATE_DATABASE_RETRY_SECONDS: a database that cannot be reached
    nats_url: str                      # DBMIGRATE_NATS_URL
    nats_stream: str                   # DBMIGRATE_NATS_STREAM
    cutover_wait_seconds: float        # DBMIGRATE_CUTOVER_WAIT_SECONDS: the target must catch up within this

    @classmethod
    def from_env(cls) -> "Settings":
        lock = env_str("DBMIGRATE_DISCOVERY_LOCK_TIMEOUT", "10s")
        if not re.fullmatch(r"\d+\s*(ms|s|min)?", lock.strip()):
            raise ConfigError(f"DBMIGRATE_DISCOVERY_LOCK_TIMEOUT={lock!r} is not a duration (for example 10s or 500ms)")
        return cls(lock_timeout_seconds=env_float("DBMIGRATE_LOCK_TIMEOUT_SECONDS", 30.0, minimum=0.1),
                   discovery_sample_seconds=env_float("DBMIGRATE_DISCOVERY_SAMPLE_SECONDS", 0.0, minimum=0),
                   discovery_lock_timeout=lock.strip(),
                   keepalive_seconds=env_float("DBMIGRATE_GRPC_KEEPALIVE_SECONDS", 20.0, minimum=0.1),
                   data_dir=env_str("DBMIGRATE_DATA_DIR", "var"),
                   event_log=env_str("DBMIGRATE_EVENT_LOG", os.path.join(env_str("DBMIGRATE_DATA_DIR", "var"),
                                                                          "events.db")),
                   agent_retry_seconds=env_float("DBMIGRATE_AGENT_RETRY_SECONDS", 180.0, minimum=0),
                   database_retry_seconds=env_float("DBMIGRATE_DATABASE_RETRY_SECONDS", 180.0, minimum=0),
                   nats_url=env_str("DBMIGRATE_NATS_URL", "nats://127.0.0.1:4222"),
                   nats_stream=env_str("DBMIGRATE_NATS_STREAM", "DBMIGRATE_EVENTS"),
                   cutover_wait_seconds=env_float("DBMIGRATE_CUTOVER_WAIT_SECONDS", 600.0, minimum=1))


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()
