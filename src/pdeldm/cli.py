"""The ``pdeldm`` command: use a trained model outside the workflow.

``pdeldm downscale``  regrid new ERA5 files onto a checkpoint's grid and sample it into a CF netCDF file;
``pdeldm info``       describe a checkpoint: model, data spec, training config and metrics.

``pdeldm <command> --help`` explains the options. Errors in the inputs are one line on stderr
(exit status 2); the workflow itself runs with ``snakemake`` (see the README).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pdeldm.errors import InputError

EXIT_INPUT_ERROR = 2


def _downscale_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "downscale",
        help="downscale ERA5 files with a trained checkpoint",
        description="Regrid new ERA5 files onto the checkpoint's grid with the workflow's own code, sample the "
                    "model and write T_2M(realization, time, rlat, rlon) in K to a CF netCDF file with the grid "
                    "mapping. The noise of realization m at time t comes from (seed, m, index), index = time "
                    "steps from the time origin; the defaults (the workflow's sampling seed, the training store's first "
                    "time) reproduce the workflow's predictions for the same times and --members "
                    "(evaluation.members).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="final checkpoint, e.g. results/models/pde_ldm/model.ckpt")
    p.add_argument("--era5", type=Path, nargs="+", required=True, metavar="FILE",
                   help="ERA5 netCDF files (new-CDS or normalised layout) holding the checkpoint's predictors")
    p.add_argument("--static", type=Path, required=True,
                   help="static fields on the checkpoint's grid, e.g. resources/static/italy.nc")
    p.add_argument("--out", type=Path, required=True, help="netCDF file to write")
    p.add_argument("--members", type=int, default=None,
                   help="realizations of a stochastic model (the workflow uses evaluation.members; default: "
                        "pdeldm.downscale.DEFAULT_MEMBERS, 10)")
    p.add_argument("--steps", type=int, default=None,
                   help="DDIM sampler steps of a diffusion model (default: the checkpoint's)")
    p.add_argument("--seed", type=int, default=None, help="noise seed (default: the seed the workflow sampled this model with)")
    p.add_argument("--start", default=None, help="first time (ISO), default: the files' first")
    p.add_argument("--end", default=None, help="last time (ISO; a date includes the whole day), default: the files' last")
    p.add_argument("--stride", type=int, default=1, help="downscale every STRIDE-th time step")
    p.add_argument("--time-origin", default=None,
                   help="time of noise index 0 (default: the first time of the training store)")
    p.add_argument("--batch-size", type=int, default=8, help="times per batch")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--log", type=Path, default=None, help="also write the log lines to this file")


def _info_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="describe a checkpoint",
        description="Print a checkpoint's model, hyper-parameters, training result, data specification "
                    "(predictors, static fields, normalisation, grid, periods), training config and per-epoch "
                    "metrics.",
    )
    p.add_argument("checkpoint", type=Path, help="final checkpoint, e.g. results/models/pde_ldm/model.ckpt")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def parser() -> argparse.ArgumentParser:
    """The ``pdeldm`` argument parser (one sub-command per job)."""
    p = argparse.ArgumentParser(prog="pdeldm", description=__doc__.split("\n\n")[0],
                                epilog="Run 'pdeldm <command> --help' for a command's options.")
    sub = p.add_subparsers(dest="command", metavar="command", required=True)
    _downscale_parser(sub)
    _info_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pdeldm`` console script; returns the exit status."""
    args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        if args.command == "downscale":
            from pdeldm.downscale import downscale

            downscale(args.checkpoint, args.era5, args.static, args.out, members=args.members, steps=args.steps,
                      seed=args.seed, start=args.start, end=args.end, stride=args.stride,
                      time_origin=args.time_origin, batch_size=args.batch_size, device=args.device, log=args.log)
        elif args.command == "info":
            from pdeldm.model_card import describe, render

            card = describe(args.checkpoint)
            print(json.dumps(card, indent=2) if args.json else render(card))
    except InputError as exc:
        print(f"pdeldm {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
