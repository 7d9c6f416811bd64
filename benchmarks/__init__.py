"""Throughput benchmarks of bnk (not run by the test suite): `python -m benchmarks.run`."""
