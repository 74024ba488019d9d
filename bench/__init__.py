"""Benchmarks for the video factory: `python -m bench.topic_bench` (make bench)."""
