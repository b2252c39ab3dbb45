"""What the benchmarks share: machine meters, process control, statistics, tables, workloads."""
