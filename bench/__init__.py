"""Benchmarks for webhook-admin (not tests): `python -m bench.run [--quick]`."""
