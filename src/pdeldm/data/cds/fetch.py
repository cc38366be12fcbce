"""One month of one variable group from the CDS to a validated, normalised file: the plan and its steps.

:func:`retrieve_month` makes one attempt:

1. :func:`plan_fetch` -- what to ask, what must come back (variables, times, area, lattice) and
   how to name it in messages (dataset, group, month, target);
2. the scratch folder is locked and cleaned of what killed runs left (:mod:`.workdir`);
3. :func:`finished_job` -- the job an earlier run already got done for the same request, or a new
   submission that is waited for (:func:`pdeldm.data.cds.client.submit_and_wait`); its result's
   location is saved at once;
4. :func:`download` -- the result, resumed where the server allows; a saved result that is no
   longer served is submitted again;
5. :func:`pdeldm.data.cds.validation.validated_month` -- checks and normalisation;
6. :func:`write_month` -- atomically onto the target.

On any failure nothing is left at the target. :func:`fetch_month` repeats transient failures
(network, server errors, broken downloads) a bounded number of times; a finished job is then
downloaded again, not re-submitted. Permanent failures (rejected key, refused request, failed job,
wrong content) are raised at once.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from pdeldm.data.cds.client import ClientLog, FinishedJob, ResultGone, download_result, submit_and_wait
from pdeldm.data.cds.credentials import Credentials
from pdeldm.data.cds.errors import TransientCDSError
from pdeldm.data.cds.request import FetchTarget, grid_step, output_names, request_times
from pdeldm.data.cds.validation import validated_month
from pdeldm.data.cds.workdir import FetchWorkdir, fetch_workdir, request_fingerprint
from pdeldm.io import atomic_output
from pdeldm.logs import stage_logger


@dataclass(frozen=True)
class FetchPlan:
    """Everything one fetch needs to know, decided before anything is sent."""

    dataset: str
    request: dict[str, Any]
    target: Path
    what: FetchTarget
    expected: list[str]
    times: pd.DatetimeIndex
    step: tuple[float, float]
    credentials: Credentials
    retry_max: int
    sleep_max: float
    timeout: float

    @property
    def label(self) -> str:
        return str(self.what)


def plan_fetch(
    dataset: str,
    request: Mapping[str, Any],
    target: str | os.PathLike[str],
    credentials: Credentials,
    *,
    group: str | None = None,
    expected_variables: Sequence[str] | None = None,
    retry_max: int = 5,
    sleep_max: float = 60.0,
    timeout: float = 120.0,
) -> FetchPlan:
    """The plan of one fetch: ``expected_variables`` default to the request's (:func:`output_names`)."""
    request = dict(request)
    expected = list(expected_variables or output_names(request["variable"], request.get("pressure_level")))
    return FetchPlan(
        dataset=dataset, request=request, target=Path(target),
        what=FetchTarget.of(dataset, request, target, group), expected=expected,
        times=request_times(request), step=grid_step(dataset, request), credentials=credentials,
        retry_max=int(retry_max), sleep_max=float(sleep_max), timeout=float(timeout),
    )


def finished_job(plan: FetchPlan, work: FetchWorkdir, session: Any, log: logging.Logger) -> FinishedJob:
    """The finished job for this request: saved by an earlier run, or submitted now and waited for."""
    saved = work.saved_job()
    if saved is not None:
        log.info("%s: an earlier run left a finished CDS job for this request; downloading its result "
                 "(not submitting again)", plan.label)
        return saved
    log.info("%s: request sent to %s (%d variables, %d time steps, area %s)", plan.label, plan.credentials.url,
             len(plan.request["variable"]), len(plan.times), plan.request.get("area"))
    started = time.monotonic()
    job = submit_and_wait(plan.dataset, plan.request, plan.credentials, session, ClientLog(log),
                          retry_max=plan.retry_max, sleep_max=plan.sleep_max, timeout=plan.timeout,
                          label=plan.label)
    work.save_job(job)
    log.info("%s: job completed after %.1f s, downloading %.2f MB", plan.label, time.monotonic() - started,
             job.content_length / 2**20)
    return job


def download(plan: FetchPlan, job: FinishedJob, work: FetchWorkdir, session: Any, log: logging.Logger) -> Path:
    """Download ``job``'s result into the scratch folder; resubmit once if a saved result is gone."""
    options = {"attempts": plan.retry_max, "sleep_max": plan.sleep_max, "timeout": plan.timeout,
               "log": log, "label": plan.label}
    try:
        download_result(job, work.part, session, **options)
    except ResultGone as gone:
        work.forget_job()
        log.warning("%s; submitting the request again", gone)
        job = finished_job(plan, work, session, log)
        try:
            download_result(job, work.part, session, **options)
        except ResultGone as exc:
            raise TransientCDSError(str(exc)) from None
    return work.part


def write_month(ds: xr.Dataset, target: Path) -> None:
    """Write the normalised month atomically (netCDF4, zlib level 1 for float variables)."""
    encoding = {name: {"zlib": True, "complevel": 1} for name, var in ds.data_vars.items() if var.dtype.kind == "f"}
    with atomic_output(target) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)


def retrieve_month(
    dataset: str,
    request: Mapping[str, Any],
    target: str | os.PathLike[str],
    *,
    url: str | None = None,
    key: str | None = None,
    credentials: Credentials | None = None,
    group: str | None = None,
    retry_max: int = 5,
    sleep_max: float = 60.0,
    timeout: float = 120.0,
    expected_variables: Sequence[str] | None = None,
    log: logging.Logger | None = None,
) -> Path:
    """Download one month from the CDS, validate and normalise it, and write it to ``target`` (one attempt).

    Credentials come as ``credentials`` (with their sources, for the hint on a rejected key) or as
    ``url`` and ``key``. On any failure nothing is left at ``target``.

    Raises:
        InputError: the CDS rejected the key, or another fetch of ``target`` is running.
        PermanentCDSError: refused request, failed job, or a file that does not match the request.
        TransientCDSError: network or server trouble, or a download that stayed incomplete; the
            finished job (if any) is kept for the next attempt.
    """
    import requests

    if credentials is None:
        if url is None or key is None:
            raise TypeError("retrieve_month needs credentials, or url and key")
        credentials = Credentials(url.rstrip("/"), key)
    log = log or stage_logger("cds")
    plan = plan_fetch(dataset, request, target, credentials, group=group, expected_variables=expected_variables,
                      retry_max=retry_max, sleep_max=sleep_max, timeout=timeout)
    plan.target.parent.mkdir(parents=True, exist_ok=True)
    if plan.target.exists():
        # a failed re-fetch must not leave the old month behind looking current (as Snakemake does)
        log.info("%s: removing the existing file before fetching", plan.label)
        plan.target.unlink()
    with fetch_workdir(plan.target, request_fingerprint(dataset, plan.request), log) as work:
        session = requests.Session()  # own session: legacy clients otherwise share one (and its key)
        try:
            job = finished_job(plan, work, session, log)
            raw = download(plan, job, work, session, log)
        finally:
            session.close()
        ds = validated_month(
            raw, work.path, expected=plan.expected, times=plan.times, area=plan.request.get("area"),
            step=plan.step, label=plan.label,
            source={"source": f"Copernicus Climate Data Store, {dataset}",
                    "cds_request": json.dumps(plan.request, sort_keys=True)},
        )
        log.info("%s: validated %s (%d time steps, %d x %d grid)", plan.label, ", ".join(plan.expected),
                 ds.sizes.get("time", 0), ds.sizes.get("latitude", 0), ds.sizes.get("longitude", 0))
        write_month(ds, plan.target)
    log.info("%s: wrote %s", plan.label, plan.target)
    return plan.target


def fetch_month(
    dataset: str,
    request: Mapping[str, Any],
    target: str | os.PathLike[str],
    *,
    retries: int = 2,
    log: logging.Logger | None = None,
    **options: Any,
) -> Path:
    """:func:`retrieve_month`, tried again up to ``retries`` times after a transient failure.

    ``options`` go to :func:`retrieve_month`. The wait between attempts doubles from 10 s, capped
    at ``sleep_max``. A job that finished before the failure is downloaded again, not re-submitted.
    """
    log = log or stage_logger("cds")
    wait = 10.0
    attempts = int(retries) + 1
    for attempt in range(1, attempts + 1):
        try:
            return retrieve_month(dataset, request, target, log=log, **options)
        except TransientCDSError as exc:
            if attempt == attempts:
                raise TransientCDSError(
                    f"{exc}; gave up after {attempts} attempt(s). This looks transient (network or server): "
                    "run the fetch again later; a job that already finished is downloaded again, not re-submitted"
                ) from None
            pause = min(wait, float(options.get("sleep_max", 60.0)))
            log.warning("%s; attempt %d of %d failed, trying again in %.0f s", exc, attempt, attempts, pause)
            time.sleep(pause)
            wait *= 2
    raise AssertionError("unreachable")  # pragma: no cover
