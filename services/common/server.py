"""gRPC server bootstrap shared by every service: health, reflection, errors, token, graceful stop."""
from __future__ import annotations

import asyncio
import functools
import inspect
import ipaddress
import logging
import signal
import time
import uuid
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Iterable

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from services.common import memory, metrics
from services.common.channels import server_options
from services.common.config import ServerSettings, env_bool, env_str
from services.common.errors import ERROR_DOMAIN, ConfigError, DBMigrateError
from services.common.logs import redact, setup_logging, workflow_id_var

log = logging.getLogger(__name__)

_OPEN_METHODS = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def service_errors(base: type) -> Callable[[type], type]:
    """Class decorator: every RPC the servicer implements turns package errors into status codes.

    Domain errors keep their message (redacted); anything unexpected is logged with its
    traceback and the client gets INTERNAL with an error id, never a stack trace.
    """

    def decorate(cls: type) -> type:
        for name, _ in inspect.getmembers(base, inspect.isfunction):
            if name.startswith("_") or name not in cls.__dict__:
                continue
            setattr(cls, name, _wrap(cls.__dict__[name], f"{cls.__name__}.{name}"))
        return cls

    return decorate


# An error from the service's own logic (a database unreachable, a bad request), not from the
# transport (the service itself down or restarting), carries typed status details
# (google.rpc.Status through grpcio-status): an ErrorInfo with its kind, and a RetryInfo when
# trying again may succeed. services.common.errors.error_details reads them back.


async def _abort_for(context, err: BaseException, where: str):
    if isinstance(err, DBMigrateError):
        await context.abort_with_status(status_for(err.code, redact(err.message), type(err).__name__,
                                                   retry_after=1.0 if err.retryable else None))
    error_id = uuid.uuid4().hex[:12]
    log.error("unexpected error in %s (error id %s)", where, error_id, exc_info=err)
    await context.abort_with_status(status_for(
        grpc.StatusCode.INTERNAL, f"internal error in {where} (error id {error_id}); see the service log", "internal"))


def status_for(code: grpc.StatusCode, message: str, kind: str, retry_after: float | None = None) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=kind, domain=ERROR_DOMAIN)
    details = [info]
    if retry_after is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromMilliseconds(int(retry_after * 1000))
        details.append(retry)
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=packed))


def _workflow_of(request) -> str | None:
    """The migration a request is about, so that every log line of the call carries its id."""
    return getattr(request, "workflow_id", None) or getattr(request, "id", None) or None


def _wrap(fn, where: str):
    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def stream(self, request, context):
            workflow_id_var.set(_workflow_of(request))
            t0 = time.monotonic()
            try:
                async for item in fn(self, request, context):
                    yield item
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as err:  # noqa: BLE001 - the edge: translate everything
                await _abort_for(context, err, where)
            finally:
                memory.after_call(time.monotonic() - t0)
        return stream

    @functools.wraps(fn)
    async def unary(self, request, context):
        workflow_id_var.set(_workflow_of(request))
        t0 = time.monotonic()
        try:
            return await fn(self, request, context)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as err:  # noqa: BLE001 - the edge: translate everything
            await _abort_for(context, err, where)
        finally:
            memory.after_call(time.monotonic() - t0)
    return unary


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Requires `authorization: Bearer <token>` on every call but health and reflection."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}"

        async def deny(request, context):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                "missing or wrong token: send metadata 'authorization: Bearer <DBMIGRATE_GRPC_TOKEN>'")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    async def intercept_service(self, continuation, details):
        if details.method.startswith(_OPEN_METHODS):
            return await continuation(details)
        for key, value in details.invocation_metadata or ():
            if key == "authorization" and value == self._expected:
                return await continuation(details)
        return self._deny


@dataclass
class Service:
    """One servicer to mount: the generated add_*_to_server function, the instance, its full name."""

    add: Callable
    servicer: object
    name: str


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    names: list[str] = field(default_factory=list)

    async def stop(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def create_server(address: str, services: Iterable[Service], *, token: str | None = None) -> RunningServer:
    """Builds and starts a server on `address` (port 0 picks a free one) and returns it with its port."""
    interceptors = [TokenInterceptor(token)] if token else []
    server = grpc.aio.server(interceptors=interceptors, options=server_options())
    hs = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(hs, server)
    names = []
    for svc in services:
        svc.add(svc.servicer, server)
        names.append(svc.name)
    reflection.enable_server_reflection(
        (*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server)
    cert, key = env_str("DBMIGRATE_TLS_CERT"), env_str("DBMIGRATE_TLS_KEY")
    if cert and key:
        with open(cert, "rb") as c, open(key, "rb") as k:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        port = server.add_secure_port(address, creds)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise ConfigError(f"cannot listen on {address}: the address is in use or not available")
    await server.start()
    for name in names:
        await hs.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, port, hs, names)


async def serve(service: str, build: Callable[[], Awaitable[tuple[list[Service], Callable[[], Awaitable[None]] | None]]]) -> None:
    """Runs a service until SIGTERM/SIGINT: health goes NOT_SERVING, in-flight calls get a grace period.

    `build` returns the servicers to mount and an optional async cleanup run after the stop.
    """
    settings = ServerSettings.from_env(service)
    setup_logging(service, settings.log_level)
    host = settings.listen.rpartition(":")[0]
    if not settings.token and not _is_loopback(host) and not env_bool("DBMIGRATE_INSECURE_BIND", False):
        raise ConfigError(
            f"refusing to listen on {settings.listen} without DBMIGRATE_GRPC_TOKEN: set a token, "
            "bind to 127.0.0.1, or set DBMIGRATE_INSECURE_BIND=true on a private network")
    metrics.start_from_env(service)  # the Prometheus endpoint, when DBMIGRATE_METRICS_ADDR is set
    services, cleanup = await build()
    running = await create_server(settings.listen, services, token=settings.token)
    log.info("%s listening on %s (port %d)", service, settings.listen, running.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("%s stopping: health NOT_SERVING, %.0fs grace for calls in flight", service, settings.grace_seconds)
    await running.stop(settings.grace_seconds)
    if cleanup is not None:
        await cleanup()
    log.info("%s stopped", service)


def main(service: str, build) -> None:
    """Entry point for `python -m <service>`: a bad configuration exits 2 with one clear line."""
    import sys
    try:
        asyncio.run(serve(service, build))
    except ConfigError as err:
        print(f"{service}: configuration error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        pass
