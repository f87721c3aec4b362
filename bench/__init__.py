"""`make bench`: throughput and latency beside baselines measured in the same run, loopback only.

Each bench module exposes `run(config: BenchConfig) -> list[Table]` (a coroutine
function or a plain one; a `Table`, a list of them or markdown text are all
accepted) and cleans up every process it starts. `python -m bench` runs them in
turn and writes the combined report and its charts to `docs/bench/` (`--quick`: `bench/results/`).
"""
