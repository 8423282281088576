"""Per-table verification from the copy stream: equal data proves equal, any change falls back."""
from __future__ import annotations


from services.common.catalog import list_tables
from services.common.copy import copy_in_sql, copy_out_sql
from services.execution.data import copy_direct
from services.execution.units import Unit
from services.execution.verify import verify_by_stream, verify_table_on

DDL = "CREATE TABLE public.t (id int PRIMARY KEY, v text, at timestamptz, n numeric)"


def test_the_stream_proves_an_exact_copy_and_a_changed_row_is_not_assumed_away(new_database):
    src, dst = new_database("ssrc"), new_database("sdst")
    src.execute(DDL)
    src.execute("INSERT INTO public.t SELECT g, 'v' || g, '2024-01-01'::timestamptz + g * interval '1 h', g / 3.0 "
                "FROM generate_series(1, 5000) g")
    dst.execute(DDL)
    with src.connect() as s, dst.connect() as d:
        (table,) = list_tables(s)
        unit = Unit(table.qualified, table)
        for binary in (True, False):
            with d.transaction():
                d.execute("TRUNCATE public.t")
                stats = copy_direct(s, d, copy_out_sql(table, binary=binary),
                                    copy_in_sql("public", "t", table.copy_columns, binary=binary))
            assert stats.rows == 5000 and len(stats.digest) == 32  # XXH3-128
        # verify_by_stream reads the target in the table's own format: copy once more that way
        with d.transaction():
            d.execute("TRUNCATE public.t")
            stats = copy_direct(s, d, copy_out_sql(table, binary=table.binary_ok),
                                copy_in_sql("public", "t", table.copy_columns, binary=table.binary_ok))
        copied = {unit.id: (stats.rows, stats.digest, table.binary_ok)}
        d.commit()
        result = verify_by_stream(table, [unit], copied, d)
        assert result is not None and result.verified and result.source_rows == result.target_rows == 5000
        d.execute("UPDATE public.t SET v = 'changed' WHERE id = 77")
        d.commit()
        assert verify_by_stream(table, [unit], copied, d) is None  # falls back ...
        s.rollback()
        fallback = verify_table_on(table, s, d)
        assert not fallback.verified and "checksums differ" in fallback.error  # ... and the checksums catch it
