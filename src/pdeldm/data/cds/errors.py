"""Failure kinds of a CDS fetch and the exit statuses the command line gives them.

A fetch fails either *transiently* (network drops, server errors, broken downloads: the same
command may succeed later, and the fetch job tries again by itself) or *permanently* (a rejected
key, a request the CDS refuses or whose job fails, a file that does not match the request: trying
again would only queue the same request again). The exit status tells the two apart, so that
whatever runs the fetch (Snakemake, a shell loop, a scheduler) retries only the transient ones.
"""

from __future__ import annotations

#: Exit status of a fetch that worked.
EXIT_OK = 0
#: Permanent failure (bad input, rejected key, refused request, failed job, wrong content): do not retry.
EXIT_PERMANENT = 2
#: Transient failure (network, server errors, broken download): retrying later may succeed
#: (EX_TEMPFAIL of sysexits.h).
EXIT_TRANSIENT = 75


class CDSError(RuntimeError):
    """A CDS retrieval failed (server error, failed job, broken or wrong download).

    ``transient`` says whether trying again later may succeed.
    """

    transient: bool = True

    @property
    def exit_status(self) -> int:
        return EXIT_TRANSIENT if self.transient else EXIT_PERMANENT


class TransientCDSError(CDSError):
    """Network or server trouble, or a download that broke off: worth another attempt."""

    transient = True


class PermanentCDSError(CDSError):
    """The CDS refused the request, its job failed, or it sent the wrong content: not worth retrying."""

    transient = False
