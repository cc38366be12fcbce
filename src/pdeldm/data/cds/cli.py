"""Command line of the ERA5 fetch (used by ``workflow/rules/fetch.smk``).

``python -m pdeldm.data.cds --config CFG --group G --year Y --month M --out FILE [--log LOG]``
fetches one month of one variable group (or give ``--dataset``, ``--variables``, ``--area``
instead of the config); ``python -m pdeldm.data.cds merge --out FILE FILES...`` merges the group
files of a month. Errors are one readable line; the exit status says what kind of failure it was:
0 success, 2 permanent (bad input, rejected key, refused request, failed job, wrong content:
do not retry), 75 transient (network, server errors, broken downloads: the fetch has already
tried ``--retries`` more times; running it again later may succeed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pdeldm.data.cds.credentials import resolve_credentials
from pdeldm.data.cds.errors import EXIT_OK, EXIT_PERMANENT, CDSError
from pdeldm.data.cds.fetch import fetch_month
from pdeldm.data.cds.merge import merge_groups
from pdeldm.data.cds.request import FetchTarget, build_request, group_spec, output_names
from pdeldm.errors import InputError
from pdeldm.logs import stage_logger

#: Client settings when neither the command line nor the config gives them (schema defaults).
CLIENT_DEFAULTS: dict[str, Any] = {"retries": 2, "retry_max": 5, "sleep_max": 60.0, "timeout": 120.0}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pdeldm.data.cds",
        description="Fetch one month of ERA5 from the CDS into a normalised netCDF file. Exit status: "
                    "0 done, 2 permanent failure (do not retry), 75 transient failure (retry later).",
    )
    p.add_argument("--config", type=Path, help="JSON or YAML file holding the 'era5' block (or a whole config)")
    p.add_argument("--group", help="variable group of the 'era5' block (with --config), also used in messages")
    p.add_argument("--dataset", help="CDS dataset, e.g. reanalysis-era5-single-levels")
    p.add_argument("--product-type", default=None)
    p.add_argument("--variables", nargs="+", help="CDS variable names")
    p.add_argument("--pressure-level", nargs="+", default=None, help="hPa, pressure-level datasets only")
    p.add_argument("--area", nargs=4, type=float, metavar=("N", "W", "S", "E"))
    p.add_argument("--times", nargs="+", default=None, help="HH:00 (default: all 24 hours)")
    p.add_argument("--year", type=int, required=True)
    p.add_argument("--month", type=int, required=True)
    p.add_argument("--retries", type=int, default=None,
                   help="further attempts after a transient failure (default 2); permanent ones are not retried")
    p.add_argument("--retry-max", type=int, default=None, help="client attempts per HTTP call and download")
    p.add_argument("--sleep-max", type=float, default=None, help="longest wait (s) between polls and retries")
    p.add_argument("--timeout", type=float, default=None, help="seconds per HTTP call")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--log", type=Path, default=None)
    return p


def _load_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
        if path.suffix == ".json":
            cfg = json.loads(text)
        else:
            import yaml

            cfg = yaml.safe_load(text)
    except Exception as exc:
        raise InputError(f"cannot read the config file {path}: {exc}") from None
    if not isinstance(cfg, dict):
        raise InputError(f"{path}: expected a mapping")
    return cfg.get("era5", cfg)


def _merge_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m pdeldm.data.cds merge",
                                description="Merge the ERA5 group files of one month.")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--log", type=Path, default=None)
    args = p.parse_args(argv)
    log = stage_logger("merge_era5", args.log)
    try:
        merge_groups(args.files, args.out, log)
    except InputError as exc:
        log.error("%s", exc)
        return EXIT_PERMANENT
    return EXIT_OK


def _fetch_arguments(args: argparse.Namespace) -> tuple[str, dict[str, Any], dict[str, Any], list[str]]:
    """``(dataset, request, client settings, expected variables)`` from the command line and config."""
    era5_cfg: Mapping[str, Any] = _load_config_file(args.config) if args.config else {}
    spec: dict[str, Any] = {"dataset": None, "variables": None, "pressure_level": None}
    if args.config and args.group:
        spec = group_spec(era5_cfg, args.group)
    dataset = args.dataset or spec["dataset"]
    variables = args.variables or spec["variables"]
    levels = args.pressure_level or spec["pressure_level"]
    area = args.area or era5_cfg.get("area")
    if not dataset or not variables or not area:
        raise InputError("need --dataset, --variables and --area (or --config with --group)")

    def setting(value: Any, name: str, default: Any) -> Any:
        return value if value is not None else era5_cfg.get(name, default)

    request = build_request(
        variables, args.year, args.month, area,
        product_type=setting(args.product_type, "product_type", "reanalysis"),
        times=setting(args.times, "times", None),
        pressure_levels=levels,
    )
    client = {name: setting(getattr(args, name), name, default) for name, default in CLIENT_DEFAULTS.items()}
    return dataset, request, client, output_names(variables, levels)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (errors are one readable line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["merge"]:
        return _merge_main(argv[1:])
    args = _parser().parse_args(argv)
    log = stage_logger(f"fetch_era5.{args.group or 'era5'}", args.log)
    try:
        dataset, request, client, expected = _fetch_arguments(args)
        try:
            credentials = resolve_credentials()
        except InputError as exc:
            raise InputError(f"{FetchTarget.of(dataset, request, args.out, args.group)}: {exc}") from None
        fetch_month(dataset, request, args.out, credentials=credentials, group=args.group,
                    retries=int(client["retries"]), retry_max=int(client["retry_max"]),
                    sleep_max=float(client["sleep_max"]), timeout=float(client["timeout"]),
                    expected_variables=expected, log=log)
    except InputError as exc:
        log.error("%s", exc)
        return EXIT_PERMANENT
    except CDSError as exc:
        log.error("%s", exc)
        return exc.exit_status
    return EXIT_OK
