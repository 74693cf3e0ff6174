"""FlowForge benchmarks: ``make bench`` runs ``python benchmarks/run.py``.

Each workload is a function registered with :func:`benchmarks.harness.benchmark`
that returns table rows; every figure is printed beside a plain-Python
baseline measured in the same process.
"""
