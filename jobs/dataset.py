"""Draft a dataset spec from data (`infer`) and check a spec and its data (`check`).

  python -m jobs.dataset infer DATA --label COL --entity COL [--timestamp COL]
                              [--request COL ...] --out DIR
  python -m jobs.dataset check [DIR] [--data DATA] [--max-rejected SHARE]

DATA is a CSV or Parquet file, or `snowflake:TABLE` (a table of the configured Snowflake
database and schema, read with the CREDIT_SNOWFLAKE_* settings).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from app.dataset import SPEC_FILE, Dataset, load_dataset, parse_dataset, spec_path
from app.dataset.infer import InferError, InferOptions, canonical_name, draft_spec, render
from app.errors import SourceError
from app.runtime import run_job

SNOWFLAKE = "snowflake:"
EXIT_REJECTS = 1
DEFAULT_MAX_REJECTED = 0.01

CHECK_HELP = f"""\
Validate the spec, then its data: the rows are split into the spec's tables as `jobs.seed`
splits them and each table is validated as ingest validates it.

exit status:
  0  the spec loads and no table rejects more than --max-rejected of its rows
  1  the spec loads but the data does not fit it: some table rejects more than
     --max-rejected of its rows, or all of them (default {DEFAULT_MAX_REJECTED:g}, i.e. 1%:
     ingest keeps going past a few bad rows and files them as rejects, so a few are no
     failure; pass 0 for a strict gate)
  2  the spec is invalid, or the data is missing, unreadable or lacks a column"""


def read_file(path: Path, limit: int | None = None) -> pd.DataFrame:
    """A flat file as the data layer reads one (app.data.warehouse.load_raw): CSV or Parquet."""
    if not path.is_file():
        raise SourceError(f"data file not found: {path}")
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            return frame.head(limit) if limit is not None else frame
        return pd.read_csv(path, nrows=limit)
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot read {path}: {exc}") from None


def read_snowflake(table: str, limit: int | None = None) -> pd.DataFrame:
    from app.config import load_settings
    from app.data.snowflake import read_frame

    return read_frame(load_settings(), table, limit)


# --- infer ----------------------------------------------------------------------------


def infer(args: argparse.Namespace) -> int:
    out: Path = args.out.expanduser().resolve()
    target = out / SPEC_FILE
    if target.exists() and not args.force:
        raise InferError(f"{target} exists: pass --force to replace it")
    if args.data.startswith(SNOWFLAKE):
        table = args.data[len(SNOWFLAKE) :]
        frame = read_snowflake(table, args.limit)
        origin = f"Snowflake table {table}"
        # The rows read become the spec's flat file, so `check` and `seed` work on exactly
        # what the draft was made from without going back to the warehouse.
        data_file = out / f"{canonical_name(table)}.parquet"
    else:
        data_file = Path(args.data).expanduser().resolve()
        frame = read_file(data_file, args.limit)
        origin = data_file.name
    options = InferOptions(
        label=args.label,
        entity=args.entity,
        timestamp=args.timestamp,
        request=tuple(args.request),
        name=args.name or canonical_name(out.name),
        currency=args.currency,
        flat_file=Path(os.path.relpath(data_file, out)).as_posix(),
        origin=origin,
    )
    draft = draft_spec(frame, options)
    text = render(draft)
    # Proved loadable before anything is written: a draft that does not load is a bug here.
    dataset = parse_dataset(text, str(target), out)
    out.mkdir(parents=True, exist_ok=True)
    if args.data.startswith(SNOWFLAKE):
        frame.to_parquet(data_file, index=False)
        print(f"saved the {len(frame):,} rows read as {data_file}")
    target.write_text(text, encoding="utf-8")
    columns = dataset.spec.columns
    kinds = pd.Series([c.type for c in columns.values()]).value_counts()
    shown = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
    print(f"drafted {target}: {len(columns)} columns ({shown}), {len(draft.notes)} to review")
    print(f"next: settle every `# review` comment, then: python -m jobs.dataset check {out}")
    return 0


# --- check ----------------------------------------------------------------------------


def _rows_to_check(data: str | None, dataset: Dataset) -> tuple[pd.DataFrame, str]:
    """The flat rows `--data` names (default: the spec's flat file), and where they are."""
    from app.data.check import conform_columns
    from app.data.warehouse import load_raw

    if data and data.startswith(SNOWFLAKE):
        table = data[len(SNOWFLAKE) :]
        where = f"Snowflake table {table}"
        return conform_columns(read_snowflake(table), dataset, where), where
    if data:
        path = Path(data).expanduser().resolve()
    elif dataset.spec.sources.flat_file is not None:
        path = (dataset.directory / dataset.spec.sources.flat_file.path).resolve()
    else:
        raise SourceError(
            f"{dataset.directory}: the spec has no `sources.flat_file`: name the data "
            "with --data FILE or --data snowflake:TABLE"
        )
    return load_raw(path, dataset), str(path)


def check(args: argparse.Namespace) -> int:
    from app.data.check import check_data
    from app.data.check_report import failures, report_lines

    if args.dir is None:
        from app.config import load_settings

        args.dir = load_settings().dataset
    dataset = load_dataset(args.dir)
    print(f"spec {spec_path(args.dir).resolve()}: {dataset.name} v{dataset.spec.version} is valid")
    raw, where = _rows_to_check(args.data, dataset)
    report = check_data(raw, dataset, seed=args.seed)
    for line in report_lines(report, dataset, where):
        print(line)
    failed = failures(report, args.max_rejected)
    if failed:
        print("check failed: " + "; ".join(failed), file=sys.stderr)
        return EXIT_REJECTS
    print("check passed")
    return 0


# --- command line ---------------------------------------------------------------------


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return value


def _add_infer(commands: argparse._SubParsersAction) -> None:
    drafting = commands.add_parser(
        "infer",
        help="draft DIR/dataset.yaml from data",
        description="Draft a dataset spec from data: names, types, nulls, unknown-value codes, "
        "ranges, the label's coding, a spine and a feature table, and reason wording. Every "
        "guess is marked with a `# review` comment; the draft loads and accepts the data it "
        "was made from.",
    )
    drafting.add_argument("data", help="CSV or Parquet file, or snowflake:TABLE")
    drafting.add_argument("--label", required=True, help="the outcome column (two values)")
    drafting.add_argument(
        "--entity",
        required=True,
        help="the entity key, e.g. borrower_id: ids from that column if the data has it, "
        "else assigned by row at ingest",
    )
    drafting.add_argument(
        "--timestamp", help="column holding the application time (default: stamped at ingest)"
    )
    drafting.add_argument(
        "--request",
        nargs="+",
        action="extend",
        default=[],
        metavar="COL",
        help="columns the caller sends with each decision (default: none, the body is the id)",
    )
    drafting.add_argument("--out", type=Path, required=True, help="directory of the draft")
    drafting.add_argument("--name", help="dataset name (default: from DIR)")
    drafting.add_argument(
        "--currency", default="", help="currency of money columns (e.g. USD); marks them money"
    )
    drafting.add_argument("--limit", type=int, help="read at most this many rows")
    drafting.add_argument("--force", action="store_true", help="replace DIR/dataset.yaml")
    drafting.set_defaults(run=infer)


def _add_check(commands: argparse._SubParsersAction) -> None:
    checking = commands.add_parser(
        "check",
        help="validate a spec and its data",
        description=CHECK_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    checking.add_argument(
        "dir",
        nargs="?",
        type=Path,
        help="dataset.yaml or its directory (default: CREDIT_DATASET, else the shipped one)",
    )
    checking.add_argument(
        "--data",
        help="CSV or Parquet file, or snowflake:TABLE, holding the flat rows "
        "(default: the spec's sources.flat_file)",
    )
    checking.add_argument(
        "--max-rejected",
        type=_share,
        default=DEFAULT_MAX_REJECTED,
        metavar="SHARE",
        help="largest share of a table's rows that may be rejected (default: %(default)g)",
    )
    checking.add_argument(
        "--seed", type=int, default=42, help="seed of assigned ids and times (default: 42)"
    )
    checking.set_defaults(run=check)


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(
        prog="python -m jobs.dataset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = main_parser.add_subparsers(dest="command", required=True)
    _add_infer(commands)
    _add_check(commands)
    return main_parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "limit", None) is not None and args.limit < 1:
        raise InferError("--limit must be at least 1")
    return args.run(args)


if __name__ == "__main__":
    run_job(main)
