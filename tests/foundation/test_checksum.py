"""The per-table checksum tells apart what a copy could get wrong, and ignores row order."""
from __future__ import annotations

from services.common.checksum import table_checksum


def checksum_of(db, rows: str):
    db.execute("DROP TABLE IF EXISTS t; CREATE TABLE t (a text, b text, n numeric)")
    if rows:
        db.execute(f"INSERT INTO t VALUES {rows}")
    with db.connect() as c:
        return table_checksum(c, "public", "t", ["a", "b", "n"])


def test_the_checksum_sees_every_kind_of_difference_and_not_row_order(new_database):
    db = new_database("ck")
    base = checksum_of(db, "('x', 'y', 1.0), ('p', NULL, 2)")
    assert checksum_of(db, "('p', NULL, 2), ('x', 'y', 1.0)") == base          # order does not matter
    different = {
        "values swapped between columns": "('y', 'x', 1.0), ('p', NULL, 2)",
        "NULL became empty text": "('x', 'y', 1.0), ('p', '', 2)",
        "NULL became the text NULL": "('x', 'y', 1.0), ('p', 'NULL', 2)",
        "numeric scale changed": "('x', 'y', 1.00), ('p', NULL, 2)",
        "a row duplicated": "('x', 'y', 1.0), ('p', NULL, 2), ('p', NULL, 2)",
        "a row missing": "('x', 'y', 1.0)",
        "whitespace": "('x ', 'y', 1.0), ('p', NULL, 2)",
        "text moved across the column boundary": "('xy', '', 1.0), ('p', NULL, 2)",
    }
    sums = {name: checksum_of(db, rows) for name, rows in different.items()}
    for name, value in sums.items():
        assert value != base, name
    assert len({(v.rows, v.sum) for v in sums.values()}) == len(sums)
