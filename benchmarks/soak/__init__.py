"""The soak: ours on Ray Serve as deployed (autoscaling, drift monitor on) under a steady
open-loop request rate, its memory sampled throughout: does it hold the rate with no errors
and no RSS growth? Method and figures: docs/benchmarks.md, section 6."""
