"""Print the RAY_SERVE_* exports of the configured ingress, for the shell that runs `ray start`.

    eval "$(python -m jobs.serve_env)" && ray start --head --port 6380 ...

Serve's controller reads its ingress settings from the environment of `ray start`; the jobs
that start a local Ray set the same variables themselves (`app.runtime.serve_environment`).
"""

from __future__ import annotations

import argparse
import shlex

from app.config import load_settings
from app.runtime import run_job, serve_environment


def main() -> int:
    argparse.ArgumentParser(prog="python -m jobs.serve_env", description=__doc__).parse_args()
    settings = load_settings()
    environment = serve_environment(settings)
    if settings.serve_ingress != "haproxy":
        print(f"# serve_ingress={settings.serve_ingress}: Serve's own proxy")
    for name, value in environment.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    run_job(main)
