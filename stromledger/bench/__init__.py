"""Benchmarks (`stromledger bench`)."""
