"""The prediction log: every answered decision (and shadow score) on disk, written by serving
and batch scoring, read by monitoring and retention. It sits below both so neither imports the
other to reach it."""
