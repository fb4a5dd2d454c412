"""alice_trio benchmarks: ``python -m benchmarks [--quick] [--json PATH]`` (see README.md)."""
