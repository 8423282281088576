"""The body of POST /api/configure (URLs or fields, advisor, options) as a CreateMigrationRequest."""
from __future__ import annotations

from typing import Any

from dbmigrate.v1 import common_pb2, coordinator_pb2
from web.errors import ApiError

CONNECTION_FIELDS = {"host": str, "port": int, "dbname": str, "user": str, "password": str, "sslmode": str,
                     "params": dict}
ADVISOR_FIELDS = {"kind": str, "address": str, "model": str, "api_key": str, "timeout_seconds": int}
OPTION_FIELDS = {"jobs": int, "include": list, "exclude": list, "split_threshold_bytes": int,
                 "on_target_not_empty": str, "sample_rows": int, "keep_target_on_failure": bool,
                 "skip_final_verify": bool, "create_roles": bool, "no_owner": bool, "no_privileges": bool, "online": bool}
TOP_FIELDS = {"name", "source", "target", "source_url", "target_url", "advisor", "options", "start"}
ADVISOR_KINDS = {"rules": common_pb2.RULES, "h2ogpte": common_pb2.H2OGPTE}
ON_TARGET_NOT_EMPTY = {"refuse": common_pb2.REFUSE, "replace": common_pb2.REPLACE}
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def _typed(section: str, body: dict, fields: dict[str, type]) -> dict[str, Any]:
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise _bad(f"{section}: unknown field {unknown[0]!r}; known fields: {', '.join(sorted(fields))}")
    out = {}
    for key, value in body.items():
        want = fields[key]
        if value is None:
            continue
        # bool is an int in Python; a JSON true is not a port number.
        if want is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise _bad(f"{section}.{key} must be a whole number")
        if want is not int and not isinstance(value, want):
            kind = {str: "a string", bool: "true or false", list: "a list", dict: "an object"}[want]
            raise _bad(f"{section}.{key} must be {kind}")
        if want is int and not 0 <= value <= (INT32_MAX if key in ("port", "jobs", "timeout_seconds") else INT64_MAX):
            raise _bad(f"{section}.{key}={value} is out of range")
        if want is str and "\x00" in value:
            raise _bad(f"{section}.{key} contains a NUL character")
        out[key] = value
    return out


def _connection(role: str, value: Any, request: coordinator_pb2.CreateMigrationRequest) -> None:
    if isinstance(value, str):
        if not value.strip():
            raise _bad(f"{role} is empty; give postgresql://user:password@host:5432/dbname")
        setattr(request, f"{role}_url", value.strip())
        return
    if not isinstance(value, dict):
        raise _bad(f"{role} must be a postgresql:// URL or an object with host, port, dbname, user, password")
    fields = _typed(role, value, CONNECTION_FIELDS)
    params = fields.pop("params", {})
    for k, v in params.items():
        if not isinstance(v, str):
            raise _bad(f"{role}.params.{k} must be a string")
    conn = getattr(request, role)
    for key, v in fields.items():
        setattr(conn, key, v.strip() if isinstance(v, str) and key != "password" else v)
    conn.params.update(params)
    if not conn.ByteSize():
        raise _bad(f"{role} is empty; give at least host, dbname and user")


def create_request(body: Any) -> coordinator_pb2.CreateMigrationRequest:
    """Checks shapes and types (400 with what to fix); the coordinator checks the meaning."""
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object with source and target")
    unknown = sorted(set(body) - TOP_FIELDS)
    if unknown:
        raise _bad(f"unknown field {unknown[0]!r}; known fields: {', '.join(sorted(TOP_FIELDS))}")
    request = coordinator_pb2.CreateMigrationRequest()
    for role in ("source", "target"):
        given = [k for k in (role, f"{role}_url") if body.get(k) not in (None, "")]
        if not given:
            raise _bad(f"{role} is required: a postgresql://user:password@host:5432/dbname URL or an object "
                       "with host, port, dbname, user, password")
        if len(given) == 2:
            raise _bad(f"give either {role} or {role}_url, not both")
        value = body[given[0]]
        if given[0].endswith("_url") and not isinstance(value, str):
            raise _bad(f"{role}_url must be a string")
        _connection(role, value, request)
    name = body.get("name")
    if name is not None:
        if not isinstance(name, str) or "\x00" in name:
            raise _bad("name must be a string")
        request.name = name.strip()
    start = body.get("start", False)
    if not isinstance(start, bool):
        raise _bad("start must be true or false")
    request.start = start
    advisor = body.get("advisor")
    if advisor is not None:
        if isinstance(advisor, str):
            advisor = {"kind": advisor}
        if not isinstance(advisor, dict):
            raise _bad("advisor must be an object {kind: rules|h2ogpte, address, model, api_key, timeout_seconds}")
        fields = _typed("advisor", advisor, ADVISOR_FIELDS)
        kind = fields.pop("kind", "rules").strip().lower() or "rules"
        if kind not in ADVISOR_KINDS:
            raise _bad(f"advisor.kind {kind!r} is not one of rules, h2ogpte")
        request.advisor.kind = ADVISOR_KINDS[kind]
        for key, v in fields.items():
            setattr(request.advisor, key, v.strip() if isinstance(v, str) else v)
        if kind == "rules":
            request.advisor.api_key = ""  # a key for an advisor that will not be used is not kept anywhere
    options = body.get("options")
    if options is not None:
        if not isinstance(options, dict):
            raise _bad("options must be an object")
        fields = _typed("options", options, OPTION_FIELDS)
        for key in ("include", "exclude"):
            patterns = fields.pop(key, [])
            if not all(isinstance(p, str) for p in patterns):
                raise _bad(f"options.{key} must be a list of strings like \"public.*\"")
            getattr(request.options, key).extend(p.strip() for p in patterns if p.strip())
        policy = fields.pop("on_target_not_empty", None)
        if policy is not None:
            if policy.strip().lower() not in ON_TARGET_NOT_EMPTY:
                raise _bad(f"options.on_target_not_empty {policy!r} is not one of refuse, replace")
            request.options.on_target_not_empty = ON_TARGET_NOT_EMPTY[policy.strip().lower()]
        for key, v in fields.items():
            setattr(request.options, key, v)
    return request
