"""Connection errors say what failed and what to fix, never the password; sslmode is honoured."""
from __future__ import annotations

import pytest

from services.common.errors import InvalidInput, Unavailable
from services.common.pg import connect, display_url, parse_url
from tests.fixtures.nats import free_port


def test_sslmode_is_honoured(pg_admin_url):
    conn = parse_url(pg_admin_url.replace("postgresql://postgres@", "postgresql://postgres:pw-XYZ-123@") + "?sslmode=require")
    assert conn.sslmode == "require"
    try:
        c = connect(conn, "source")
    except InvalidInput as err:  # this test server has no SSL: requiring it must fail, clearly
        assert "SSL" in str(err) and "sslmode" in str(err) and "pw-XYZ-123" not in str(err)
    else:
        with c:
            assert c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0]


def test_unreachable_host_and_missing_database_are_clear(pg_admin_url):
    port = free_port()
    with pytest.raises(Unavailable, match=f"127.0.0.1:{port}.*cannot reach the server"):
        connect(parse_url(f"postgresql://postgres:pw-XYZ-123@127.0.0.1:{port}/db?connect_timeout=2"), "target")
    with pytest.raises(InvalidInput, match="database 'no_such_db_here' does not exist"):
        connect(parse_url(pg_admin_url.rsplit("/", 1)[0] + "/no_such_db_here"), "source")


def test_urls_keep_params_and_display_without_password():
    conn = parse_url("postgresql://app:s3cr%40t@db.example:6543/sales?sslmode=verify-full&connect_timeout=5")
    assert (conn.user, conn.password, conn.host, conn.port, conn.dbname) == ("app", "s3cr@t", "db.example", 6543, "sales")
    assert display_url(conn) == "postgresql://app@db.example:6543/sales?sslmode=verify-full&connect_timeout=5"
    with pytest.raises(InvalidInput, match="sslmode"):
        parse_url("postgresql://a@b/c?sslmode=bogus")


@pytest.mark.parametrize("url", ["postgresql://?pw-Secret-9", "postgresql://app@db/sales?pw-Secret-9",
                                 "postgresql://app:pw-Secret-9@[::1/sales", "postgresql://app@db/sales?pw Secret-9"])
def test_a_malformed_url_names_the_problem_without_repeating_what_may_be_a_password(url):
    with pytest.raises(InvalidInput) as err:
        parse_url(url)
    message = str(err.value)
    assert "Secret-9" not in message and "malformed" in message
    assert "query parameter" in message or "IPv6" in message  # what to fix is still said


def test_a_password_without_its_host_is_not_echoed_as_the_port():
    with pytest.raises(InvalidInput) as err:
        parse_url("postgresql://app:pw-Secret-9")  # libpq reads host "app", port "pw-Secret-9"
    message = str(err.value)
    assert "Secret-9" not in message and "port is not a number" in message and "@host" in message
