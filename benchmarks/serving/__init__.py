"""The serving benchmark: wrk against (a) ours on Ray Serve under chosen levers, (b) MLServer
scoring the same booster, (c) the seed stack (MLServer + Feast), (d) the floor (uvicorn around
the same service, no Ray) and `feast serve`, plus the pure decision path in process. Method,
levers and figures: docs/benchmarks.md, section 4."""
