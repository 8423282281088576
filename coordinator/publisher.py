"""Publishes committed events to NATS JetStream in log order, catching up after NATS was away."""
from __future__ import annotations

import asyncio
import logging
import os
import time

from services.common.memory import import_without

# nats-py's websocket transport needs aiohttp; a nats:// or tls:// server does not.
_WEBSOCKET = any(u.strip().lower().startswith(("ws://", "wss://"))
                 for u in os.environ.get("DBMIGRATE_NATS_URL", "").split(","))
nats = import_without("nats", () if _WEBSOCKET else ("aiohttp",))
from nats.errors import Error as NatsError
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from coordinator.eventlog import EventLog, Stored
from services.common import metrics

log = logging.getLogger(__name__)

CURSOR = "nats"
DUPLICATE_WINDOW = 2 * 3600.0  # seconds: republishing after an outage this long is still de-duplicated


def subject(event: Stored) -> str:
    return f"dbmigrate.events.{event.workflow_id}.{event.type}"


def fitted(stored: Stored, max_payload: int) -> tuple[bytes, dict[str, str]]:
    """The event as published: whole, or, when it is larger than the server takes (a report of 20,000
    tables), its envelope and the report's summary, with a header that says where the whole one is.
    Publishing it whole would fail for ever and hold back every later event. Only such an event is parsed."""
    data = stored.data
    if not max_payload or len(data) + 1024 <= max_payload:
        return data, {}
    ev = stored.parsed()
    kind = ev.WhichOneof("payload")
    slim = type(ev)(workflow_id=ev.workflow_id, version=ev.version, seq=ev.seq, time=ev.time)
    payload = getattr(slim, kind)
    payload.SetInParent()
    original = getattr(ev, kind)
    for field in original.DESCRIPTOR.fields:  # the small fields stay; the large messages go
        value = getattr(original, field.name)
        if field.type != field.TYPE_MESSAGE and not field.is_repeated:
            setattr(payload, field.name, value)
        elif field.name == "report" and hasattr(value, "summary"):
            getattr(payload, field.name).summary = value.summary
    log.warning("event %s:%s (%s) is %d bytes, over NATS's max_payload of %d: published without its report",
                ev.workflow_id, ev.version, kind, len(data), max_payload)
    return slim.SerializeToString(), {
        "Dbmigrate-Truncated": f"{len(data)} bytes, over max_payload {max_payload}; the whole event is in the "
                               "coordinator's log (WatchEvents) and its report in GetReport"}


class Publisher:
    """Runs in the background: reads events after its cursor, publishes each with Nats-Msg-Id, advances.

    The cursor lives in the event log's database, so a restart resumes where publishing stopped; a
    message published but not yet recorded is sent again with the same id and JetStream drops it.
    """

    def __init__(self, eventlog: EventLog, url: str, stream: str):
        self.eventlog = eventlog
        self.url = url
        self.stream = stream
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._nc = None
        self.published = 0
        self.connected = False

    def notify(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="nats-publisher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._nc is not None:
            try:
                await asyncio.wait_for(self._nc.close(), 3)
            except Exception:  # closing a connection to a server that is gone
                pass

    def lag(self) -> int:
        return self.eventlog.last_seq() - self.eventlog.cursor(CURSOR)

    async def _connect(self):
        async def on_error(err):
            log.warning("NATS: %s", err)

        async def on_disconnect():
            self.connected = False
            log.warning("NATS: disconnected from %s; events keep being appended and will be published later", self.url)

        async def on_reconnect():
            self.connected = True
            log.info("NATS: reconnected; publishing what was missed")
            self._wake.set()

        nc = await nats.connect(self.url, name="dbmigrate-coordinator", connect_timeout=2,
                                max_reconnect_attempts=-1, reconnect_time_wait=0.5, allow_reconnect=True,
                                error_cb=on_error, disconnected_cb=on_disconnect, reconnected_cb=on_reconnect)
        js = nc.jetstream(timeout=5)
        config = StreamConfig(name=self.stream, subjects=["dbmigrate.events.>"], duplicate_window=DUPLICATE_WINDOW)
        try:
            await js.stream_info(self.stream)
            await js.update_stream(config)
        except NotFoundError:
            await js.add_stream(config)
        return nc, js

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                if self._nc is None or self._nc.is_closed:
                    self._nc, self._js = await self._connect()
                    self.connected = True
                    log.info("NATS: publishing to stream %s at %s", self.stream, self.url)
                await self._drain()
                backoff = 0.5
                self._wake.clear()
                if self.lag() == 0:
                    try:
                        await asyncio.wait_for(self._wake.wait(), 1.0)
                    except asyncio.TimeoutError:
                        pass
            except asyncio.CancelledError:
                raise
            except (NatsError, OSError, asyncio.TimeoutError) as err:
                log.warning("NATS: publish paused (%s); retrying in %.1fs", type(err).__name__, backoff)
                self._record_lag()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                log.exception("NATS publisher error; retrying")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _drain(self) -> None:
        cursor = self.eventlog.cursor(CURSOR)
        while True:
            batch = self.eventlog.read_stored(from_seq=cursor, limit=500)
            if not batch:
                return
            for ev in batch:
                if not self._nc.is_connected:
                    raise asyncio.TimeoutError("not connected")
                data, headers = fitted(ev, self._nc.max_payload)
                await self._js.publish(subject(ev), data, timeout=5, headers={
                    "Nats-Msg-Id": f"{ev.workflow_id}:{ev.version}",
                    "Dbmigrate-Seq": str(ev.seq),
                    "Dbmigrate-Type": ev.type,
                    **headers,
                })
                cursor = ev.seq
                self.published += 1
                metrics.event_published(ev.type)
            self.eventlog.set_cursor(CURSOR, cursor)
            self._record_lag()

    def _record_lag(self) -> None:
        """Sets the NATS lag metrics: events committed but not published, age of the oldest one."""
        waiting = self.eventlog.read(from_seq=self.eventlog.cursor(CURSOR), limit=1)
        age = time.time() - waiting[0].time.ToMicroseconds() / 1e6 if waiting else 0.0
        metrics.publish_lag(self.lag(), age)
