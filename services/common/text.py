"""Small formatting helpers for what people read: reports, summaries, the CLI."""
from __future__ import annotations


def human_bytes(n: float) -> str:
    """1536 -> '1.5 kB' (powers of 1024, as PostgreSQL's pg_size_pretty)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
