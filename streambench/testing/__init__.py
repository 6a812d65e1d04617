"""Test and example support: synthetic runs with known injected problems.

Not used by a run; the tests, benchmarks and example notebooks build on it.
"""
