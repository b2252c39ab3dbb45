"""Create, rotate, revoke and list the decision API's keys (stored as hashes in api_keys_file).

Running replicas re-read the file within a second: no restart. A new key's token is printed
once (or written to --token-file, owner-only) and never stored.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from app.config import load_settings
from app.errors import ConfigError
from app.runtime import run_job
from app.serving.keys import SCOPES, KeyFile, check_scopes, write_token


def rate_per_second(text: str) -> float:
    """--rate: a finite number >= 0 (NaN or infinity would disable or break the limit)."""
    try:
        rate = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(rate) or rate < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text!r}")
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.api_keys", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="add a key, or replace (rotate) one by id")
    create.add_argument("--id", required=True, help="key id: logged with every decision")
    create.add_argument(
        "--scopes",
        default=",".join(SCOPES),
        help=f"comma-separated, of {', '.join(SCOPES)} (default: all)",
    )
    create.add_argument(
        "--rate", type=rate_per_second, default=None, help="requests/s per replica (0: no limit)"
    )
    create.add_argument("--token-file", type=Path, help="write the token here instead of stdout")
    revoke = commands.add_parser("revoke", help="remove a key by id")
    revoke.add_argument("--id", required=True)
    commands.add_parser("list", help="key ids, scopes and creation times (never the tokens)")
    args = parser.parse_args()

    settings = load_settings()
    if args.command == "list":
        keys = KeyFile.read(settings.api_keys_file)
        for key in keys.keys:
            rate = key.get("rate_per_second")
            print(
                f"{key['id']:<24} {','.join(key['scopes']):<40} {key.get('created', '-')}"
                + (f"  rate {rate:g}/s" if rate is not None else "")
            )
        if not keys.keys:
            print(f"no keys in {settings.api_keys_file}")
        return 0
    if args.command == "revoke":
        # Read, change and write under the file's lock: a concurrent create is never lost.
        with KeyFile.locked(settings.api_keys_file) as keys:
            if not keys.remove(args.id):
                raise ConfigError(f"no key with id {args.id!r} in {settings.api_keys_file}")
            keys.write()
        print(f"revoked {args.id!r} in {settings.api_keys_file} (the id is never used again)")
        return 0
    if not args.id or len(args.id) > 64 or not args.id.replace("-", "").replace("_", "").isalnum():
        raise ConfigError("a key id is 1-64 characters of letters, digits, - and _")
    scopes = check_scopes([s.strip() for s in args.scopes.split(",") if s.strip()])
    with KeyFile.locked(settings.api_keys_file) as keys:
        token = keys.add(args.id, scopes, args.rate)
        if args.token_file:  # before the key exists: a failed write leaves no key nobody holds
            write_token(args.token_file, token)
        keys.write()
    if args.token_file:
        print(f"key {args.id!r} ({', '.join(scopes)}): token written to {args.token_file}")
    else:
        print(token)
    return 0


if __name__ == "__main__":
    run_job(main)
