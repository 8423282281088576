"""`make bench`: each bench/bench_*.py module's main() runs in turn and prints its figures."""
