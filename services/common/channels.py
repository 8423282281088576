"""Client channels to DBMigrate services, with the token and TLS settings the servers expect."""
from __future__ import annotations

import grpc

from services.common.config import env_str, settings


class _TokenAuth(grpc.AuthMetadataPlugin):
    def __init__(self, token: str):
        self._token = token

    def __call__(self, context, callback):
        callback((("authorization", f"Bearer {self._token}"),), None)


def _metadata_interceptors(token: str | None):
    if not token:
        return []

    class Add(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
        async def _with_token(self, continuation, details, request):
            md = list(details.metadata or []) + [("authorization", f"Bearer {token}")]
            details = details._replace(metadata=md) if hasattr(details, "_replace") else grpc.aio.ClientCallDetails(
                details.method, details.timeout, md, details.credentials, details.wait_for_ready)
            return await continuation(details, request)

        async def intercept_unary_unary(self, continuation, details, request):
            return await self._with_token(continuation, details, request)

        async def intercept_unary_stream(self, continuation, details, request):
            return await self._with_token(continuation, details, request)

    return [Add()]


MAX_MESSAGE = 64 * 1024 * 1024


def keepalive_seconds() -> float:
    """How often a client pings a quiet connection (DBMIGRATE_GRPC_KEEPALIVE_SECONDS, default 20)."""
    return settings().keepalive_seconds


# Keepalive, one rule for both ends (it used to be set on the clients only): a client pings every
# keepalive_seconds() while a call is open, also when no data flows (a Validate of two minutes, a
# WatchEvents stream with nothing to say); the server accepts pings that often. gRPC servers by
# default accept a data-less ping only every 5 minutes and answer the third early one with
# GOAWAY "too_many_pings", which cut long calls and streams after about a minute.
def client_options() -> list[tuple[str, int]]:
    ms = int(keepalive_seconds() * 1000)
    return [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.keepalive_time_ms", ms), ("grpc.keepalive_timeout_ms", max(ms, 20000)),
            ("grpc.http2.max_pings_without_data", 0), ("grpc.keepalive_permit_without_calls", 0)]


def server_options() -> list[tuple[str, int]]:
    ms = int(keepalive_seconds() * 1000)
    return [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", max(1, ms // 2)),
            ("grpc.http2.min_ping_interval_without_data_ms", max(1, ms // 2)),
            ("grpc.http2.max_ping_strikes", 0), ("grpc.keepalive_permit_without_calls", 1)]


def aio_channel(address: str, token: str | None = None) -> grpc.aio.Channel:
    """An asyncio channel; uses TLS when DBMIGRATE_TLS_CA is set, the token from DBMIGRATE_GRPC_TOKEN."""
    token = token if token is not None else env_str("DBMIGRATE_GRPC_TOKEN")
    ca = env_str("DBMIGRATE_TLS_CA")
    interceptors = _metadata_interceptors(token)
    if ca:
        with open(ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(f.read())
        return grpc.aio.secure_channel(address, creds, options=client_options(), interceptors=interceptors)
    return grpc.aio.insecure_channel(address, options=client_options(), interceptors=interceptors)


def sync_channel(address: str, token: str | None = None) -> grpc.Channel:
    """A blocking channel for the CLI, with the same TLS and token rules."""
    token = token if token is not None else env_str("DBMIGRATE_GRPC_TOKEN")
    ca = env_str("DBMIGRATE_TLS_CA")
    if ca:
        with open(ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(f.read())
        if token:
            creds = grpc.composite_channel_credentials(creds, grpc.metadata_call_credentials(_TokenAuth(token)))
        return grpc.secure_channel(address, creds, options=client_options())
    channel = grpc.insecure_channel(address, options=client_options())
    if token:
        channel = grpc.intercept_channel(channel, _SyncToken(token))
    return channel


class _SyncToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, token: str):
        self._md = ("authorization", f"Bearer {token}")

    def _details(self, d):
        class D(grpc.ClientCallDetails):
            pass
        n = D()
        n.method, n.timeout, n.credentials = d.method, d.timeout, d.credentials
        n.metadata = list(d.metadata or []) + [self._md]
        n.wait_for_ready = getattr(d, "wait_for_ready", None)
        n.compression = getattr(d, "compression", None)
        return n

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)
