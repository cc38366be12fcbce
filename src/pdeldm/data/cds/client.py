"""Talking to the CDS: submit and wait with the real ``cdsapi`` client, then download the result ourselves.

The client (0.7.7) picks its protocol by the key style (legacy ``UID:KEY`` -> ``cdsapi.api.Client``;
personal access token -> ``ecmwf.datastores.legacy_client.LegacyClient``), polls the job and
retries HTTP errors. Depending on the key style and the fault it raises ``Exception``,
``requests.HTTPError``, ``ChunkedEncodingError``, ``AssertionError`` or ``ConnectionError``, so
:func:`submit_and_wait` turns whatever it raises into a :class:`TransientCDSError` or
:class:`PermanentCDSError`, from the exception type and the status of the last HTTP answer.

The download of a finished job is ours (:func:`download_result`): the client's own downloads fail
the whole retrieval on a dropped or short transfer, after which the request would be queued again.
Ours resumes with HTTP ``Range`` where the server honours it, restarts where it does not, and gives
up after a bounded number of attempts with the job's location kept, so that a later run downloads
the finished result again instead of re-submitting.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pdeldm.data.cds.credentials import Credentials, rejected_key_hint
from pdeldm.data.cds.errors import CDSError, PermanentCDSError, TransientCDSError
from pdeldm.errors import InputError

#: Small enough that a broken transfer keeps most of what arrived (a chunk in flight is lost).
CHUNK_BYTES = 1 << 13


def _mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.2f} MB"


# --------------------------------------------------------------------------------------------
# client messages
# --------------------------------------------------------------------------------------------
class ClientLog:
    """Collects the client's messages: forwards them to our log and keeps the last few for errors."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.recent: deque[str] = deque(maxlen=6)

    def emit(self, level: int, msg: Any, *args: Any) -> None:
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = " ".join(str(a) for a in (msg, *args))
        text = text.strip()
        if not text:
            return
        if level >= logging.WARNING and not text.startswith(("Retrying", "Sleeping")):
            self.recent.append(" ".join(text.split()))
        self.log.log(level, "CDS: %s", text)

    def info(self, msg: Any, *args: Any, **_: Any) -> None:
        self.emit(logging.INFO, msg, *args)

    def warning(self, msg: Any, *args: Any, **_: Any) -> None:
        self.emit(logging.WARNING, msg, *args)

    def error(self, msg: Any, *args: Any, **_: Any) -> None:
        self.emit(logging.ERROR, msg, *args)


class _ForwardHandler(logging.Handler):
    """Sends records of the client's libraries (multiurl retries) to a :class:`ClientLog`."""

    def __init__(self, sink: ClientLog) -> None:
        super().__init__(level=logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.emit(record.levelno, record.getMessage())


@contextlib.contextmanager
def capture_client_output(sink: ClientLog) -> Iterator[None]:
    """Route warnings and library log records raised while the client runs into our log."""
    handler = _ForwardHandler(sink)
    loggers = [logging.getLogger(name) for name in ("multiurl", "ecmwf.datastores")]
    for logger in loggers:
        logger.addHandler(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for logger in loggers:
                logger.removeHandler(handler)
            for warning in caught:
                sink.warning(str(warning.message))


class StatusRecorder:
    """A ``requests`` response hook that remembers the status of the last HTTP answer.

    The legacy client turns every refused submission into a bare ``Exception(message)``; the
    status of the answer it came from tells a refused request (4xx) from an overloaded server.
    """

    def __init__(self) -> None:
        self.last: int | None = None

    def __call__(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        self.last = int(getattr(response, "status_code", 0) or 0) or self.last
        return response


def server_message(exc: BaseException) -> str:
    """The most useful text of a client exception (HTTP status and the server's reply), one line."""
    text = str(exc).strip() or type(exc).__name__
    response = getattr(exc, "response", None)
    # for 4xx the client already put the server's JSON details into the text; for 5xx it did not
    if response is not None and getattr(response, "status_code", 0) >= 500 and (response.text or "").strip():
        text = f"{text} (server said: {response.text.strip()[:500]})"
    return f"{type(exc).__name__}: " + " / ".join(line.strip() for line in text.splitlines() if line.strip())


def _is_auth_failure(message: str, status: int | None) -> bool:
    return status == 401 or bool(re.search(r"\b401\b|authentication failed|unauthori[sz]ed", message, re.I))


def _is_licence_failure(message: str, status: int | None) -> bool:
    return status == 403 or bool(re.search(r"licen[cs]e|terms of use|required_terms|accept the terms", message, re.I))


def classify(exc: BaseException, status: int | None) -> str:
    """``"auth"``, ``"licence"``, ``"refused"`` (permanent) or ``"transient"`` for a client exception.

    ``status`` is that of the last HTTP answer the client received.
    """
    import requests

    message = str(exc)
    if _is_auth_failure(message, status):
        return "auth"
    if _is_licence_failure(message, status):
        return "licence"
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return "transient"
    if type(exc).__name__ == "ProcessingFailedError":  # token protocol: the job failed or was rejected
        return "refused"
    if status is not None and 400 <= status < 500 and status not in (408, 429):
        return "refused"  # invalid request, unknown dataset, a failed job's results
    if status is not None and (status >= 500 or status in (408, 429)):
        return "transient"
    if type(exc) is Exception and status is not None and status < 400:
        return "refused"  # legacy protocol: the job reached state 'failed' after successful polls
    return "transient"


# --------------------------------------------------------------------------------------------
# submit and wait
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FinishedJob:
    """Where the result of a completed CDS job can be downloaded (no credentials needed)."""

    location: str
    content_length: int
    content_type: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FinishedJob:
        return cls(str(d["location"]), int(d["content_length"]), str(d.get("content_type", "")),
                   tuple(tuple(h) for h in d.get("headers", ())))


def submit_and_wait(
    dataset: str,
    request: Mapping[str, Any],
    credentials: Credentials,
    session: Any,
    sink: ClientLog,
    *,
    retry_max: int,
    sleep_max: float,
    timeout: float,
    label: str,
) -> FinishedJob:
    """Submit ``request`` with the real client and wait until the job completes.

    Raises:
        InputError: the CDS rejected the key (the hint names where the key came from).
        PermanentCDSError: the CDS refused the request (licence, invalid request) or the job failed.
        TransientCDSError: server errors or network trouble beyond the client's own retries.
    """
    import cdsapi  # imported here: the rest of the package must not need it

    recorder = StatusRecorder()
    session.hooks.setdefault("response", []).append(recorder)
    try:
        with capture_client_output(sink):
            client = cdsapi.Client(
                url=credentials.url,
                key=credentials.key,
                quiet=True,
                progress=False,
                delete=False,  # legacy mode would otherwise DELETE the task from __del__
                retry_max=int(retry_max),
                sleep_max=float(sleep_max),
                timeout=float(timeout),
                info_callback=sink.info,
                warning_callback=sink.warning,
                error_callback=sink.error,
                session=session,
            )
            result = client.retrieve(dataset, dict(request))  # waits while queued/running
            headers = tuple((str(k), str(v)) for k, v in (getattr(result, "headers", None) or {}).items())
            return FinishedJob(str(result.location), int(result.content_length),
                               str(getattr(result, "content_type", "") or ""), headers)
    except Exception as exc:  # Exception, HTTPError, ChunkedEncodingError, AssertionError, ...
        message = server_message(exc)
        recent = [m for m in sink.recent if m not in message]
        if recent:
            message += " | last client messages: " + " / ".join(recent)
        kind = classify(exc, recorder.last)
        if kind == "auth":
            raise InputError(f"{label}: the CDS at {credentials.url} rejected the key ({message}); "
                             f"{rejected_key_hint(credentials)}") from None
        if kind == "licence":
            raise PermanentCDSError(
                f"{label}: the CDS refused access ({message}); accept the licence of {dataset} on its CDS "
                "page (the 'Download' tab, 'Terms of use') while logged in with this key, then run again"
            ) from None
        if kind == "refused":
            raise PermanentCDSError(
                f"{label}: the CDS refused the request or its job failed ({message}); this is permanent and "
                "not retried: check the variable group's dataset, variables, area and times in the 'era5' "
                "config block against the dataset's CDS page"
            ) from None
        raise TransientCDSError(f"{label}: CDS retrieval failed ({message})") from None
    finally:
        session.hooks["response"].remove(recorder)


# --------------------------------------------------------------------------------------------
# download with resume
# --------------------------------------------------------------------------------------------
class ResultGone(CDSError):
    """The finished job's result is no longer served (404/410): the request must be submitted again."""

    transient = True


def download_result(
    job: FinishedJob,
    dest: Path,
    session: Any,
    *,
    attempts: int,
    sleep_max: float,
    timeout: float,
    log: logging.Logger,
    label: str,
    sleep: Callable[[float], None] | None = None,
) -> None:
    """Download ``job``'s result into ``dest``, resuming a partial ``dest`` where the server allows.

    Bytes already in ``dest`` (from an earlier attempt or run) are kept and the rest is asked for
    with ``Range``; a server that answers 200 instead of 206 sends the whole file again. Gives up
    after ``attempts`` transfers that did not complete.

    Raises:
        ResultGone: the result is no longer there (404/410).
        TransientCDSError: still incomplete after ``attempts`` transfers.
    """
    import requests

    sleep = sleep or time.sleep
    size = job.content_length
    wait = 1.0
    attempts = max(1, int(attempts))
    problem = ""
    for attempt in range(1, attempts + 1):
        have = dest.stat().st_size if dest.exists() else 0
        if have > size:  # not a prefix of this result: start again
            dest.unlink()
            have = 0
        if have == size:
            return
        headers = dict(job.headers)
        if have:
            headers["Range"] = f"bytes={have}-"
            log.info("%s: resuming the download at byte %d of %d", label, have, size)
        t0 = time.monotonic()
        problem = ""
        try:
            with session.get(job.location, stream=True, headers=headers, timeout=timeout) as reply:
                if reply.status_code in (404, 410):
                    raise ResultGone(f"{label}: the finished job's result at {job.location} is gone "
                                     f"(HTTP {reply.status_code})")
                reply.raise_for_status()
                mode = "ab" if have and reply.status_code == 206 else "wb"
                if have and mode == "wb":
                    log.info("%s: the server ignored the range request; downloading the whole file again", label)
                with open(dest, mode) as fh:
                    for chunk in reply.iter_content(chunk_size=CHUNK_BYTES):
                        if chunk:
                            fh.write(chunk)
        except ResultGone:
            raise
        except (requests.RequestException, OSError) as exc:
            problem = server_message(exc)
        got = dest.stat().st_size if dest.exists() else 0
        if got == size:
            elapsed = max(time.monotonic() - t0, 1e-6)
            log.info("%s: downloaded %s in %.1f s (%s/s)", label, _mib(size), elapsed,
                     _mib(max(got - have, 0) / elapsed))
            return
        if got > size:
            problem = f"received {got} bytes but the CDS announced {size}"
            dest.unlink()
        problem = problem or f"the transfer stopped at {got} of {size} bytes"
        log.warning("%s: download attempt %d of %d incomplete (%s)", label, attempt, attempts, problem)
        if attempt < attempts:
            sleep(min(wait, sleep_max))
            wait *= 2
    got = dest.stat().st_size if dest.exists() else 0
    raise TransientCDSError(
        f"{label}: the download of the finished job stopped at {got} of {size} bytes after {attempts} "
        f"attempts ({problem})"
    )
