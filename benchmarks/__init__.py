"""Benchmarks: tfstack-model-server beside Python serving peers and the in-process limit.

`make bench` runs `benchmarks/run.py`; `tfstack bench load` drives any running server.
Nothing heavy is imported here: the load generator's worker processes import this package.
"""
