"""The loop at a lender's scale (`python -m benchmarks.scale`): every stage timed at several
sizes, beside what a user would otherwise run. Method and figures: docs/benchmarks.md,
section 8."""
