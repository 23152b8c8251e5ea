"""``mltrace profile build``: a drift reference profile from training data (CSV or Parquet)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from ..drift import ReferenceProfile
from ..drift._features import CategoricalFeature
from ._common import CommandError, emit
from ._render_drift import render_profile

#: what reading and profiling a file can raise for bad input (pandas' parser errors are ValueErrors)
_BAD_INPUT = (OSError, ValueError, ImportError, UnicodeError)


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "profile",
        help="build a drift reference profile from training data",
        description="Reference profiles say what a model's training data looked like, feature by feature; "
        "DriftMonitor and `mltrace drift --profile` compare live or recent data with them.",
    )
    actions = p.add_subparsers(dest="profile_command", metavar="ACTION")
    b = actions.add_parser(
        "build",
        help="profile a CSV or Parquet file and save the profile as JSON",
        description="Profile every column of a CSV (.csv, .csv.gz, .tsv) or Parquet file: quantile bins, moments "
        "and ranges for numbers, category counts for text. --target names the label column, profiled as the "
        "output distribution instead of as a feature. The profile id is a hash of its content.",
    )
    b.add_argument("data", metavar="DATA", help="training data: .csv, .csv.gz, .tsv or .parquet")
    b.add_argument("-o", "--output", default="reference.json",
                   help="where to save the profile (default reference.json)")
    b.add_argument("--target", metavar="COLUMN", help="the label column (profiled as the output distribution)")
    b.add_argument("--categorical", metavar="A,B", default="",
                   help="columns to treat as categorical although numeric (e.g. integer codes)")
    b.add_argument("--bins", type=int, default=10, help="reference-quantile bins for PSI and JS (default 10)")
    b.add_argument("--json", action="store_true", help="print one JSON document instead of the summary")
    b.set_defaults(run=run_build)
    p.set_defaults(run=lambda args, out, err: _usage(p, err))


def _usage(parser: argparse.ArgumentParser, err: Console) -> int:
    parser.print_help()
    return 2


def profile_summary(profile: ReferenceProfile, path: Path | None = None, data: str | None = None) -> dict[str, Any]:
    """What ``mltrace profile build --json`` prints: the id, sizes and a line per feature."""
    features = []
    for f in profile.features:
        entry: dict[str, Any] = {"name": f.name, "kind": f.kind, "count": f.count, "missing": f.missing}
        if isinstance(f, CategoricalFeature):
            entry.update(cardinality=f.cardinality, top=[[k, n] for k, n in f.categories[:3]])
        else:
            entry.update(mean=f.mean, std=f.std, min=f.min, max=f.max)
        features.append(entry)
    return {
        "id": profile.id,
        "path": str(path) if path is not None else None,
        "bytes": path.stat().st_size if path is not None and path.exists() else None,
        "data": data,
        "rows": profile.rows,
        "bins": profile.bins,
        "features": features,
        "numerical": sum(1 for f in features if f["kind"] == "numerical"),
        "categorical": sum(1 for f in features if f["kind"] == "categorical"),
        "outputs": list(profile.output_names),
    }


def run_build(args: argparse.Namespace, out: Console, err: Console) -> int:
    data = Path(args.data)
    if not data.is_file():
        raise CommandError(f"no such file: {data}")
    categorical = [c.strip() for c in args.categorical.split(",") if c.strip()]
    t0 = time.perf_counter()
    try:
        profile = ReferenceProfile.from_file(data, target=args.target, categorical=categorical, bins=args.bins)
    except _BAD_INPUT as exc:
        raise CommandError.of(exc, f"cannot profile {data.name}: ") from None
    try:
        saved = profile.save(args.output)
    except OSError as exc:
        raise CommandError(f"cannot save the profile to {args.output}: {exc.strerror or exc}") from None
    summary = {**profile_summary(profile, saved, str(data)), "seconds": round(time.perf_counter() - t0, 3)}
    return emit(args, out, summary, render_profile)
