"""Client channels to DBMigrate services, with the token and TLS settings the servers expect."""
from __future__ import annotations

import grpc

from services.common.config import env_str


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


CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 20000),
]


def aio_channel(address: str, token: str | None = None) -> grpc.aio.Channel:
    """An asyncio channel; uses TLS when DBMIGRATE_TLS_CA is set, the token from DBMIGRATE_GRPC_TOKEN."""
    token = token if token is not None else env_str("DBMIGRATE_GRPC_TOKEN")
    ca = env_str("DBMIGRATE_TLS_CA")
    interceptors = _metadata_interceptors(token)
    if ca:
        with open(ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(f.read())
        return grpc.aio.secure_channel(address, creds, options=CHANNEL_OPTIONS, interceptors=interceptors)
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS, interceptors=interceptors)


def sync_channel(address: str, token: str | None = None) -> grpc.Channel:
    """A blocking channel for the CLI, with the same TLS and token rules."""
    token = token if token is not None else env_str("DBMIGRATE_GRPC_TOKEN")
    ca = env_str("DBMIGRATE_TLS_CA")
    if ca:
        with open(ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(f.read())
        if token:
            creds = grpc.composite_channel_credentials(creds, grpc.metadata_call_credentials(_TokenAuth(token)))
        return grpc.secure_channel(address, creds, options=CHANNEL_OPTIONS)
    channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
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
