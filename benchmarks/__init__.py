"""Throughput benchmarks of bnk (not run by the test suite).

Run them with `python -m benchmarks.run`.
"""
