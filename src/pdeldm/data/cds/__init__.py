"""Fetch ERA5 from the Copernicus Climate Data Store (CDS), one month per call, safely.

The real ``cdsapi`` client (0.7.7) does the protocol work; this package wraps it so that a
pipeline job either leaves a validated, normalised monthly file at its target or nothing, and says
what went wrong in terms of the dataset, variable group, month and target file. One job per module:

* :mod:`.request` -- the request in today's CDS style, the config's variable groups, the lattice;
* :mod:`.credentials` -- url and key in the client's order, with their sources and helpful errors;
* :mod:`.client` -- submit and wait with the real client, failures sorted into transient and
  permanent, and our own resumable download of the finished result;
* :mod:`.workdir` -- the locked scratch folder next to the target: stale leftovers removed, the
  finished job remembered so that a later run downloads instead of re-submitting;
* :mod:`.validation` -- variables, times, area, lattice and missing-value checks, normalisation;
* :mod:`.fetch` -- the plan of one fetch and its steps, and the bounded retry of transient failures;
* :mod:`.merge` -- the group files of a month into one file;
* :mod:`.cli` -- the command line (``python -m pdeldm.data.cds``), whose exit status separates
  permanent (2) from transient (75) failures.
"""

from __future__ import annotations

from pdeldm.data.cds.cli import main
from pdeldm.data.cds.client import FinishedJob
from pdeldm.data.cds.credentials import RC_HELP, Credentials, cds_credentials, check_key, resolve_credentials
from pdeldm.data.cds.errors import (
    EXIT_OK,
    EXIT_PERMANENT,
    EXIT_TRANSIENT,
    CDSError,
    PermanentCDSError,
    TransientCDSError,
)
from pdeldm.data.cds.fetch import fetch_month, plan_fetch, retrieve_month
from pdeldm.data.cds.merge import merge_groups
from pdeldm.data.cds.request import (
    ALL_HOURS,
    SHORT_NAMES,
    FetchTarget,
    build_request,
    grid_step,
    group_spec,
    output_names,
    request_times,
    short_name,
)
from pdeldm.data.cds.workdir import workdir_of
from pdeldm.logs import stage_logger

__all__ = [
    "ALL_HOURS", "EXIT_OK", "EXIT_PERMANENT", "EXIT_TRANSIENT", "RC_HELP", "SHORT_NAMES", "CDSError",
    "Credentials", "FetchTarget", "FinishedJob", "PermanentCDSError", "TransientCDSError", "build_request",
    "cds_credentials", "check_key", "fetch_month", "grid_step", "group_spec", "main", "merge_groups",
    "output_names", "plan_fetch", "request_times", "resolve_credentials", "retrieve_month", "short_name",
    "stage_logger", "workdir_of",
]
