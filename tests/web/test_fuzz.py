"""Hostile and malformed input against the web JSON API (hypothesis): never a 5xx, never a stack
trace, always a JSON error that says what to fix."""
from __future__ import annotations

import json
import string

from hypothesis import HealthCheck, given, settings, strategies as st

INPUTS = {"count": 0}
POSTS = ["/api/configure", "/api/workflow/start", "/api/workflow/approve", "/api/workflow/deny",
         "/api/workflow/cancel", "/api/workflow/rollback", "/api/reset"]
GETS = ["/api/workflow/status", "/api/logs", "/api/reports", "/api/reports/{x}", "/api/migrations/{x}",
        "/api/migrations", "/api/health"]
KEYS = ["source", "target", "options", "advisor", "name", "start", "id", "comment", "reason", "host", "port",
        "dbname", "user", "password", "jobs", "include", "exclude", "kind", "api_key", "sslmode", "params"]
HOSTILE = ["'; DROP TABLE x; --", "\"", "\\", "\x00", "../../etc/passwd", "<script>alert(1)</script>", "%00",
           "postgresql://u:p@h:99999/db", "postgresql://", "9" * 40, "-1", "NaN", "\ud7ff", "ü" * 300]

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=60), st.sampled_from(HOSTILE))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=10), inner, max_size=5)),
    max_leaves=12)
bodies = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), values, max_size=6).map(lambda d: json.dumps(d).encode()),
    values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.sampled_from([b"", b"{", b"[]", b"null", b'{"source": NaN}', b"\xff\xfe", b'{"a": 1e999}']),
)
params = st.dictionaries(st.sampled_from(["id", "limit", "from_seq", "agent", "x"]),
                         st.text(alphabet=string.printable, max_size=30) | st.sampled_from(HOSTILE), max_size=3)


def assert_clean(r) -> None:
    INPUTS["count"] += 1
    assert r.status_code < 500, (r.status_code, r.text[:500])
    assert "Traceback" not in r.text and 'File "' not in r.text, r.text[:500]
    if r.status_code >= 400:
        body = r.json()
        assert isinstance(body.get("error"), str) and body["error"], body


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(POSTS), body=bodies,
       content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]))
def test_post_bodies_never_crash(client, path, body, content_type):
    headers = {"content-type": content_type} if content_type else {}
    assert_clean(client.post(path, content=body, headers=headers))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(GETS), query=params, segment=st.text(max_size=40) | st.sampled_from(HOSTILE))
def test_get_queries_never_crash(client, path, query, segment):
    from urllib.parse import quote
    assert_clean(client.get(path.replace("{x}", quote(segment, safe="")), params=query))


def test_report_the_inputs_tried():
    print(f"\ninputs tried against the web JSON API: {INPUTS['count']}")
    assert INPUTS["count"] >= 600
