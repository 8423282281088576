"""The Starlette app: the original DBMigrate JSON API, server-sent events and the status page."""
from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dbmigrate.v1 import coordinator_pb2
from services.common.logs import redact
from web import convert
from web.configure import create_request
from web.coordinator import Coordinator
from web.errors import ApiError
from web.openapi import openapi_document

log = logging.getLogger("web")

STATIC = Path(__file__).parent / "static"
MAX_BODY_BYTES = 1024 * 1024
# Status snapshots on the event stream: at most this often per migration, so a burst of progress
# events costs one GetMigration, and the page still moves well within a second of the event.
STATUS_INTERVAL = 0.25
HEARTBEAT_SECONDS = 10.0
# Phases in which the page needs the reports to draw the steps or the approval panel.


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})


def error_response(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return _json({"error": message}, status, headers)


def api(handler: Callable[[Request], Awaitable[Response]]):
    """Every API handler answers JSON errors; a bug becomes a 500 with an error id, never a stack trace."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as err:
            return error_response(err.status, redact(err.message))
        except Exception:  # noqa: BLE001 - the edge: nothing unexpected reaches the client as a trace
            error_id = uuid.uuid4().hex[:12]
            log.exception("unexpected error in %s %s (error id %s)", request.method, request.url.path, error_id)
            return error_response(500, f"internal error in the web server (error id {error_id}); see its log")

    return wrapped


def _token_ok(request: Request, token: str) -> bool:
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


def changes(handler: Callable[[Request], Awaitable[Response]]):
    """For requests that change something: the token is required when DBMIGRATE_WEB_TOKEN is set."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        token = request.app.state.token
        if token and not _token_ok(request, token):
            missing = not request.headers.get("authorization")
            raise ApiError(401, "this action needs the web token. Send the header 'Authorization: Bearer "
                                "<DBMIGRATE_WEB_TOKEN>' (on the page: enter it in the token field at the top)" if missing else
                           "the token is wrong; use the value of DBMIGRATE_WEB_TOKEN the server was started with")
        return await handler(request)

    return wrapped


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES // 1024} kB")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    _check_text(body)
    return body


def _check_text(value: Any) -> None:
    """JSON may carry lone surrogates (\\ud800) that are no text at all; refuse them here, not in protobuf."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(400, "the body contains a string that is not valid Unicode text") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)


def _text(body: dict[str, Any], key: str, limit: int = 2000) -> str:
    value = body.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ApiError(400, f"{key} must be a string")
    if len(value) > limit:
        raise ApiError(400, f"{key} is longer than {limit} characters")
    return value.strip()


def _int_param(request: Request, key: str, default: int, minimum: int = 0, maximum: int = 2**62) -> int:
    raw = request.query_params.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"query parameter {key}={raw[:40]!r} is not a whole number") from None
    if not minimum <= value <= maximum:
        raise ApiError(400, f"query parameter {key}={value} is out of range ({minimum}..{maximum})")
    return value


# ?tables= of the status answers: which tables they list (the summary, `progress`, counts them all).
TABLE_VIEWS = {"all": coordinator_pb2.TABLES_ALL, "auto": coordinator_pb2.TABLES_AUTO,
               "none": coordinator_pb2.TABLES_NONE, "active": coordinator_pb2.TABLES_ACTIVE,
               "failed": coordinator_pb2.TABLES_FAILED, "pending": coordinator_pb2.TABLES_PENDING,
               "done": coordinator_pb2.TABLES_DONE}


def _table_view(request: Request) -> dict[str, Any]:
    """The tables a migration's answer lists: ?tables= (all by default; auto is what the page shows:
    every table of a small migration, of a large one the running and the failed ones), ?filter= (a
    part of the name, or a glob) and ?table_limit= (at most this many; 0: no limit)."""
    name = (request.query_params.get("tables") or "all").strip().lower()
    if name not in TABLE_VIEWS:
        raise ApiError(400, f"query parameter tables={name[:40]!r} is not one of {', '.join(TABLE_VIEWS)}")
    text = request.query_params.get("filter") or ""
    if len(text) > 1000:
        raise ApiError(400, "query parameter filter is longer than 1,000 characters")
    return {"tables": TABLE_VIEWS[name], "table_filter": text.strip(),
            "table_limit": _int_param(request, "table_limit", 0, 0, 1_000_000)}


async def _current_id(request: Request, body: dict[str, Any] | None = None) -> str:
    """The migration a request is about: ?id=, the body's id, else the most recent one."""
    wid = request.query_params.get("id") or ""
    if body and body.get("id") is not None:
        if not isinstance(body["id"], str):
            raise ApiError(400, "id must be a string")
        wid = body["id"]
    wid = wid.strip()
    if wid:
        return wid
    latest = await request.app.state.coordinator.list(limit=1)
    if not latest:
        raise ApiError(404, "there is no migration yet; create one with POST /api/configure")
    return latest[0].id


# ---- handlers ----

async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@api
async def health(request: Request) -> Response:
    coordinator: Coordinator = request.app.state.coordinator
    info = {"address": coordinator.address, "reachable": False, "status": "UNKNOWN"}
    body = {"web": "ok", "token_required": bool(request.app.state.token), "coordinator": info}
    try:
        info["status"] = await coordinator.health()
        info["reachable"] = True
    except ApiError as err:
        return _json({**body, "status": "unavailable", "error": err.message}, 503)
    if info["status"] != "SERVING":
        return _json({**body, "status": "unavailable",
                      "error": f"the coordinator at {coordinator.address} is {info['status']}"}, 503)
    return _json({**body, "status": "ok"})


@api
async def auth(request: Request) -> Response:
    token = request.app.state.token
    return _json({"token_required": bool(token), "authorized": not token or _token_ok(request, token)})


@api
async def openapi(request: Request) -> Response:
    return _json(openapi_document())


@api
@changes
async def configure(request: Request) -> Response:
    body = await _body(request)
    m = await request.app.state.coordinator.create(create_request(body))
    log.info("migration %s created through the web API", m.id)
    return _json(convert.migration_view(m), 201)


@api
async def list_migrations(request: Request) -> Response:
    limit = _int_param(request, "limit", 0, 0, 100000)
    migrations = await request.app.state.coordinator.list(limit=limit)
    return _json({"migrations": [convert.migration_summary(m) for m in migrations]})


@api
async def get_migration(request: Request) -> Response:
    coordinator = request.app.state.coordinator
    return _json(convert.migration_view(await coordinator.get(request.path_params["id"], **_table_view(request))))


@api
async def status(request: Request) -> Response:
    coordinator = request.app.state.coordinator
    view = _table_view(request)
    return _json(convert.migration_view(await coordinator.get(await _current_id(request), **view)))


def _command(action: str, field: str | None = None, required: bool = False):
    """POST /api/workflow/<action>: the current migration, optional text field, the new view."""

    @api
    @changes
    async def handler(request: Request) -> Response:
        body = await _body(request)
        wid = await _current_id(request, body)
        coordinator: Coordinator = request.app.state.coordinator
        args = []
        if field:
            unknown = sorted(set(body) - {"id", field})
            if unknown:
                raise ApiError(400, f"unknown field {unknown[0]!r}; send id and {field}")
            text = _text(body, field)
            if required and not text:
                raise ApiError(400, f"a {field} is required to {action} a migration")
            args.append(text)
        elif set(body) - {"id"}:
            raise ApiError(400, f"unknown field {sorted(set(body) - {'id'})[0]!r}; send only id")
        m = await getattr(coordinator, action)(wid, *args)
        log.info("%s migration %s through the web API", action, wid)
        return _json(convert.migration_view(m))

    handler.__name__ = action
    return handler


@api
@changes
async def reset(request: Request) -> Response:
    """Starts a fresh configuration: cancels the current migration if it has not ended, else changes nothing."""
    body = await _body(request)
    if set(body) - {"id", "reason"}:
        raise ApiError(400, f"unknown field {sorted(set(body) - {'id', 'reason'})[0]!r}; send id and reason")
    coordinator: Coordinator = request.app.state.coordinator
    try:
        wid = await _current_id(request, body)
    except ApiError as err:
        if err.status == 404 and not body.get("id") and not request.query_params.get("id"):
            return _json({"reset": True, "cancelled": None, "migration": None})
        raise
    m = await coordinator.state(wid)
    cancelled = None
    if m.actions.cancel:
        m = await coordinator.cancel(wid, _text(body, "reason") or "reset from the web page")
        cancelled = wid
        log.info("migration %s cancelled by a reset", wid)
    return _json({"reset": True, "cancelled": cancelled, "migration": convert.migration_view(m)})


@api
async def logs(request: Request) -> Response:
    coordinator: Coordinator = request.app.state.coordinator
    wid = await _current_id(request)
    after = _int_param(request, "after", 0)
    limit = _int_param(request, "limit", 1000, 1, 100000)
    await coordinator.state(wid)  # 404 for an unknown id before reading anything
    lines: list[dict[str, Any]] = []
    last_seq = after
    async for ev in coordinator.events(wid, after, follow=False):
        last_seq = max(last_seq, ev.seq)
        line = convert.log_line(ev)
        if line is not None:
            lines.append(line)
    return _json({"id": wid, "lines": lines[-limit:], "last_seq": last_seq, "truncated": len(lines) > limit})


@api
async def reports(request: Request) -> Response:
    wid = await _current_id(request)
    report = await request.app.state.coordinator.report(wid)
    out: dict[str, Any] = {"id": wid}
    for name in convert.AGENT_REPORTS:
        out[name] = convert.to_json(getattr(report, name)) if report.HasField(name) else None
    return _json(out)


@api
async def agent_report(request: Request) -> Response:
    agent = request.path_params["agent"].lower()
    if agent not in convert.AGENT_REPORTS:
        raise ApiError(404, f"there is no {agent[:40]!r} report; use one of {', '.join(convert.AGENT_REPORTS)}")
    wid = await _current_id(request)
    coordinator: Coordinator = request.app.state.coordinator
    report = await coordinator.report(wid, agent)
    if not report.HasField(agent):
        m = await coordinator.state(wid)
        raise ApiError(404, f"the {agent} report of migration {wid} is not there yet (the migration is "
                            f"{convert.phase_name(m.phase)})")
    return _json({"id": wid, "agent": agent, "report": convert.to_json(getattr(report, agent))})


def _sse(event: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _stream_start(request: Request, coordinator: Coordinator, wid: str, view: dict[str, Any]):
    """Where the event stream begins (after the last event the browser saw, or now), and the
    migration's state; errors (unknown id, coordinator down) answer as JSON before the stream."""
    last_event_id = request.headers.get("last-event-id", "").strip()
    if last_event_id.isdigit() and len(last_event_id) < 19:
        from_seq = int(last_event_id)  # the browser reconnected: go on after the last event it saw
    elif "from_seq" in request.query_params:
        from_seq = _int_param(request, "from_seq", 0)
    else:
        from_seq = -1
    current = None
    if wid:
        current = await coordinator.get(wid, **view)
        if from_seq < 0:
            from_seq = current.last_seq
    elif from_seq < 0:
        from_seq = max((m.last_seq for m in await coordinator.list()), default=0)
    return from_seq, current


@api
async def events(request: Request) -> Response:
    """Server-sent events from WatchEvents: `workflow_event` per event, `status` snapshots (with the
    tables ?tables=, ?filter= and ?table_limit= choose, as /api/workflow/status), `error`."""
    coordinator: Coordinator = request.app.state.coordinator
    wid = (request.query_params.get("id") or "").strip()
    view = _table_view(request)
    from_seq, current = await _stream_start(request, coordinator, wid, view)

    async def stream():
        queue: asyncio.Queue = asyncio.Queue(maxsize=2000)
        end = object()

        async def pump():
            async def on_break(broken: bool):
                await queue.put(("reconnecting" if broken else "resumed", broken))
            try:
                async for ev in coordinator.events(wid, from_seq, follow=True, on_break=on_break):
                    await queue.put(ev)
                await queue.put(end)
            except ApiError as err:
                await queue.put(err)

        task = asyncio.create_task(pump())
        dirty: set[str] = set()
        last_status = 0.0
        last_sent = time.monotonic()
        try:
            yield "retry: 2000\n\n"
            if wid:
                yield _sse("status", convert.migration_view(current))
            while True:
                now = time.monotonic()
                if dirty:
                    timeout = max(0.0, STATUS_INTERVAL - (now - last_status))
                else:
                    timeout = max(0.0, HEARTBEAT_SECONDS - (now - last_sent))
                try:
                    item = await asyncio.wait_for(queue.get(), timeout)
                except asyncio.TimeoutError:
                    item = None
                if isinstance(item, ApiError):
                    yield _sse("error", {"error": item.message})
                    return
                if item is end:
                    yield _sse("end", {"reason": "the coordinator closed the event stream"})
                    return
                if isinstance(item, tuple):  # the stream to the coordinator broke, or is back
                    yield _sse(item[0], {"reason": "the event stream to the coordinator is being opened again"
                                          if item[1] else "the event stream to the coordinator is back"})
                    last_sent = time.monotonic()
                    continue
                if item is not None:
                    yield _sse("workflow_event", convert.event_json(item), item.seq)
                    last_sent = time.monotonic()
                    dirty.add(item.workflow_id)
                    # Take what is already queued before the snapshot, so a burst costs one GetMigration.
                    if not queue.empty() and time.monotonic() - last_status < STATUS_INTERVAL:
                        continue
                if dirty and time.monotonic() - last_status >= STATUS_INTERVAL:
                    for w in sorted(dirty):
                        try:
                            yield _sse("status", convert.migration_view(await coordinator.get(w, **view)))
                        except ApiError as err:
                            yield _sse("error", {"error": err.message})
                            return
                    dirty.clear()
                    last_status = last_sent = time.monotonic()
                elif item is None and not dirty:
                    yield ": keep-alive\n\n"
                    last_sent = time.monotonic()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 404:
        return error_response(404, f"there is no {request.url.path[:100]} here; see /api/openapi.json for the API")
    if exc.status_code == 405:
        return error_response(405, f"{request.method} is not allowed on {request.url.path[:100]}")
    return error_response(exc.status_code, str(exc.detail))


def create_app(coordinator_address: str, token: str | None) -> Starlette:
    coordinator = Coordinator(coordinator_address)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        coordinator.open()
        try:
            yield
        finally:
            await coordinator.close()

    routes = [
        Route("/", index),
        Route("/api/health", health),
        Route("/api/auth", auth),
        Route("/api/openapi.json", openapi),
        Route("/api/configure", configure, methods=["POST"]),
        Route("/api/migrations", list_migrations),
        Route("/api/migrations/{id}", get_migration),
        Route("/api/workflow/start", _command("start"), methods=["POST"]),
        Route("/api/workflow/status", status),
        Route("/api/workflow/approve", _command("approve", "comment"), methods=["POST"]),
        Route("/api/workflow/deny", _command("deny", "reason", required=True), methods=["POST"]),
        Route("/api/workflow/cancel", _command("cancel", "reason"), methods=["POST"]),
        Route("/api/workflow/rollback", _command("rollback", "reason"), methods=["POST"]),
        Route("/api/workflow/cutover", _command("cutover"), methods=["POST"]),
        Route("/api/reset", reset, methods=["POST"]),
        Route("/api/logs", logs),
        Route("/api/reports", reports),
        Route("/api/reports/{agent}", agent_report),
        Route("/api/events", events),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error})
    app.state.coordinator = coordinator
    app.state.token = token or None
    return app
