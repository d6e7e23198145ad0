"""Benchmarks of ecdflow; results under bench/results/."""
