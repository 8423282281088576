"""The OpenAPI 3.0 description of the JSON API, served at /api/openapi.json."""
from __future__ import annotations

from typing import Any

from services.common.config import MAX_JOBS

ERROR = {"$ref": "#/components/schemas/Error"}
MIGRATION = {"$ref": "#/components/schemas/Migration"}
ID_QUERY = {"name": "id", "in": "query", "required": False, "schema": {"type": "string", "maxLength": 64},
            "description": "migration id; without it, the most recent migration"}


# Which tables a migration's answer lists (the summary, `progress`, counts them all; `tables_matched`
# says how many the view and the filter chose).
TABLE_VIEW_QUERY = [
    {"name": "tables", "in": "query", "required": False,
     "schema": {"type": "string", "enum": ["all", "auto", "none", "active", "failed", "pending", "done"]},
     "description": "which tables to list (default all); auto: every table of a migration of up to 50, "
                    "of a larger one the running and the failed ones"},
    {"name": "filter", "in": "query", "required": False, "schema": {"type": "string", "maxLength": 1000},
     "description": "only tables whose schema.table contains this (any case), or matches it as a glob (*, ?, [...])"},
    {"name": "table_limit", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 0, "maximum": 1000000},
     "description": "list at most this many tables (0: no limit)"},
]


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "bad input", 401: "missing or wrong token", 404: "unknown migration or nothing there yet",
            409: "not allowed in the migration's current phase", 413: "body too large",
            503: "coordinator unavailable", 502: "coordinator refused or failed", 500: "web server error"}
    return {str(c): {"description": text[c], "content": {"application/json": {"schema": ERROR}}}
            for c in (*codes, 500, 502, 503)}


def _ok(schema: dict[str, Any], status: int = 200, description: str = "OK") -> dict[str, Any]:
    return {str(status): {"description": description, "content": {"application/json": {"schema": schema}}}}


def _body(schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _command(summary: str, field: str | None, required: bool = False) -> dict[str, Any]:
    props: dict[str, Any] = {"id": {"type": "string", "maxLength": 64}}
    if field:
        props[field] = {"type": "string", "maxLength": 2000}
    schema = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = [field]
    return {"post": {"summary": summary, "parameters": [ID_QUERY], "requestBody": _body(schema, required),
                     "security": [{"bearer": []}, {}], "responses": {**_ok(MIGRATION), **_errors(400, 401, 404, 409)}}}


CONNECTION = {
    "oneOf": [
        {"type": "string", "description": "postgresql://user:password@host:5432/dbname?sslmode=..."},
        {"type": "object", "additionalProperties": False, "properties": {
            "host": {"type": "string"}, "port": {"type": "integer", "minimum": 0, "maximum": 65535},
            "dbname": {"type": "string"}, "user": {"type": "string"},
            "password": {"type": "string", "writeOnly": True}, "sslmode": {"type": "string"},
            "params": {"type": "object", "additionalProperties": {"type": "string"}}}},
    ]
}

CONFIGURE = {
    "type": "object", "additionalProperties": False,
    # A source and a target are required, each as a connection or as a URL.
    "allOf": [{"anyOf": [{"required": ["source"]}, {"required": ["source_url"]}]},
              {"anyOf": [{"required": ["target"]}, {"required": ["target_url"]}]}],
    "properties": {
        "name": {"type": "string", "maxLength": 200},
        "source": CONNECTION, "target": CONNECTION,
        "source_url": {"type": "string"}, "target_url": {"type": "string"},
        "start": {"type": "boolean", "description": "start right away"},
        "advisor": {"type": "object", "additionalProperties": False, "properties": {
            "kind": {"type": "string", "enum": ["rules", "h2ogpte"]}, "address": {"type": "string"},
            "model": {"type": "string"}, "api_key": {"type": "string", "writeOnly": True},
            "timeout_seconds": {"type": "integer", "minimum": 0, "maximum": 2147483647}}},
        "options": {"type": "object", "additionalProperties": False, "properties": {
            "jobs": {"type": "integer", "minimum": 0, "maximum": MAX_JOBS},
            "include": {"type": "array", "items": {"type": "string"}},
            "exclude": {"type": "array", "items": {"type": "string"}},
            "split_threshold_bytes": {"type": "integer", "minimum": 0},
            "on_target_not_empty": {"type": "string", "enum": ["refuse", "replace"]},
            "sample_rows": {"type": "integer", "minimum": 0},
            "keep_target_on_failure": {"type": "boolean"}, "skip_final_verify": {"type": "boolean"},
            "create_roles": {"type": "boolean"}, "no_owner": {"type": "boolean"}, "no_privileges": {"type": "boolean"}, "online": {"type": "boolean"}}},
    },
}


def openapi_document() -> dict[str, Any]:
    obj = {"type": "object"}
    return {
        "openapi": "3.0.3",
        "info": {"title": "DBMigrate web API", "version": "1",
                 "description": "The original DBMigrate JSON API on top of the coordinator's gRPC API. Requests "
                                "that change something need 'Authorization: Bearer <DBMIGRATE_WEB_TOKEN>' when "
                                "the server has a token. Errors are {\"error\": message}."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "Migration": {"type": "object", "required": ["id", "phase", "steps", "progress", "actions"],
                              "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                                             "phase": {"type": "string"}, "error": {"type": "string"},
                                             "source_url": {"type": "string"}, "target_url": {"type": "string"},
                                             "steps": {"type": "array", "items": obj}, "progress": obj,
                                             "tables": {"type": "array", "items": obj}, "actions": obj,
                                             "blockers": {"type": "array", "items": {"type": "string"}}}},
            },
        },
        "paths": {
            "/api/health": {"get": {"summary": "web server and coordinator health",
                                    "responses": {**_ok(obj), "503": {"description": "coordinator unavailable",
                                                                      "content": {"application/json": {"schema": obj}}}}}},
            "/api/auth": {"get": {"summary": "whether a token is required and whether the one sent is right",
                                  "responses": _ok(obj)}},
            "/api/configure": {"post": {"summary": "create a migration (CreateMigration); returns it with its id",
                                        "requestBody": _body(CONFIGURE, True), "security": [{"bearer": []}, {}],
                                        "responses": {**_ok(MIGRATION, 201, "created"), **_errors(400, 401, 413)}}},
            "/api/migrations": {"get": {"summary": "every migration, newest first",
                                        "parameters": [{"name": "limit", "in": "query", "required": False,
                                                        "schema": {"type": "integer", "minimum": 0, "maximum": 100000}}],
                                        "responses": {**_ok(obj), **_errors(400)}}},
            "/api/migrations/{id}": {"get": {"summary": "one migration by id",
                                             "parameters": [{"name": "id", "in": "path", "required": True,
                                                             "schema": {"type": "string", "maxLength": 64}},
                                                            *TABLE_VIEW_QUERY],
                                             "responses": {**_ok(MIGRATION), **_errors(400, 404)}}},
            "/api/workflow/start": _command("start the migration", None),
            "/api/workflow/status": {"get": {"summary": "the migration: phase, steps, tables, allowed actions",
                                             "parameters": [ID_QUERY, *TABLE_VIEW_QUERY],
                                             "responses": {**_ok(MIGRATION), **_errors(400, 404)}}},
            "/api/workflow/approve": _command("approve (only while AWAITING_APPROVAL)", "comment"),
            "/api/workflow/deny": _command("deny with a reason (only while AWAITING_APPROVAL)", "reason", True),
            "/api/workflow/cancel": _command("cancel a migration that has not ended", "reason"),
            "/api/workflow/rollback": _command("roll the target back (COMPLETED, FAILED, CANCELLED)", "reason"),
            "/api/workflow/cutover": _command("online: wait for the last change, set the sequences, verify, complete "
                                              "(SYNCING)", None),
            "/api/reset": {"post": {"summary": "start afresh: cancels the current migration if it has not ended",
                                    "parameters": [ID_QUERY], "security": [{"bearer": []}, {}],
                                    "requestBody": _body({"type": "object", "additionalProperties": False,
                                                          "properties": {"id": {"type": "string", "maxLength": 64},
                                                                         "reason": {"type": "string", "maxLength": 2000}}}),
                                    "responses": {**_ok(obj), **_errors(400, 401, 404, 409)}}},
            "/api/logs": {"get": {"summary": "log lines from the migration's events",
                                  "parameters": [ID_QUERY,
                                                 {"name": "after", "in": "query", "required": False,
                                                  "schema": {"type": "integer", "minimum": 0}},
                                                 {"name": "limit", "in": "query", "required": False,
                                                  "schema": {"type": "integer", "minimum": 1, "maximum": 100000}}],
                                  "responses": {**_ok(obj), **_errors(400, 404)}}},
            "/api/reports": {"get": {"summary": "all reports (null where not there yet)", "parameters": [ID_QUERY],
                                     "responses": {**_ok(obj), **_errors(400, 404)}}},
            "/api/reports/{agent}": {"get": {
                "summary": "one agent's report",
                "parameters": [{"name": "agent", "in": "path", "required": True,
                                "schema": {"type": "string", "enum": ["discovery", "validation", "generation",
                                                                      "execution", "verification"]}}, ID_QUERY],
                "responses": {**_ok(obj), **_errors(400, 404)}}},
            "/api/events": {"get": {
                "summary": "server-sent events: workflow_event (one per event), status (snapshots), error, end",
                "parameters": [ID_QUERY, {"name": "from_seq", "in": "query", "required": False,
                                          "schema": {"type": "integer", "minimum": 0},
                                          "description": "replay events after this global sequence; default: live only"},
                               *TABLE_VIEW_QUERY],
                "responses": {"200": {"description": "text/event-stream",
                                      "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                              **_errors(400, 404)}}},
        },
    }
