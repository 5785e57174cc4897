"""Benchmarks: figures as rates and as ratios to the raw infrastructure measured in the same
run. Run with `make bench`; never timed in the tests."""
