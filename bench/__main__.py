"""Runs every benchmark module (bench/bench_*.py) in name order, or those named on the command line."""
from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import bench


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    failed = []
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        t0 = time.monotonic()
        try:
            importlib.import_module(f"bench.{name}").main()
        except Exception as err:  # a failed benchmark is reported, the others still run
            print(f"{name} FAILED: {err!r}", flush=True)
            failed.append(name)
        print(f"=== {name}: {time.monotonic() - t0:.1f}s ===", flush=True)
    if failed:
        print(f"failed benchmarks: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
