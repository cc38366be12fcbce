"""CDS credentials: found in the client's own order, checked, and remembered with their source.

:func:`resolve_credentials` looks where ``cdsapi`` looks (arguments, ``CDSAPI_URL``/``CDSAPI_KEY``,
the file named by ``CDSAPI_RC`` or ``~/.cdsapirc``) but fails with a message that says what to set
instead of a traceback from inside the client, and records where the url and key came from, so
that a key the server rejects can be traced to the place to fix (:func:`rejected_key_hint`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pdeldm.errors import InputError

RC_HELP = (
    "set CDSAPI_URL=https://cds.climate.copernicus.eu/api and CDSAPI_KEY=<your personal access "
    "token> (see https://cds.climate.copernicus.eu/how-to-api), or write them as the lines "
    "'url: ...' and 'key: ...' to ~/.cdsapirc (or to the file named by CDSAPI_RC)"
)


@dataclass(frozen=True)
class Credentials:
    """A CDS url and key, and where each was found (``"the argument"``, ``"CDSAPI_KEY"``, a file path)."""

    url: str
    key: str
    url_source: str = "the argument"
    key_source: str = "the argument"

    @property
    def legacy(self) -> bool:
        """True for an old-style ``UID:KEY`` key (the legacy CDS API), False for a personal access token."""
        return ":" in self.key


def _read_rc(path: Path) -> dict[str, str]:
    """Parse a ``.cdsapirc`` the way the client does (``name: value`` lines)."""
    config: dict[str, str] = {}
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the CDS credentials file {path}: {exc}") from None
    for line in text.splitlines():
        if ":" in line:
            name, value = line.strip().split(":", 1)
            if name in ("url", "key", "verify"):
                config[name] = value.strip()
    return config


def check_key(key: str, source: str) -> str:
    """Return ``key`` if it has one of the two formats the CDS accepts, else raise InputError."""
    key = key.strip()
    if not key:
        raise InputError(f"the CDS key from {source} is empty; {RC_HELP}")
    if re.search(r"\s|[<>]", key):
        raise InputError(
            f"the CDS key from {source} is malformed (it contains spaces or '<>', a placeholder?); "
            "it must be the personal access token from your CDS profile page "
            "(e.g. 'key: 01234567-89ab-cdef-0123-456789abcdef')"
        )
    if ":" in key:
        # legacy 'UID:APIKEY'; the client splits it into exactly two parts for HTTP Basic auth
        parts = key.split(":")
        if len(parts) != 2 or not all(parts):
            raise InputError(
                f"the CDS key from {source} is malformed: a key with ':' must be 'UID:APIKEY' "
                "(legacy CDS); today's CDS uses a personal access token without ':'"
            )
    elif not re.fullmatch(r"[A-Za-z0-9._-]{8,}", key):
        raise InputError(
            f"the CDS key from {source} is malformed: expected a personal access token "
            "(letters, digits and '-', e.g. 01234567-89ab-cdef-0123-456789abcdef)"
        )
    return key


def _rc_path(env: Mapping[str, str]) -> Path:
    if env.get("CDSAPI_RC"):
        return Path(env["CDSAPI_RC"]).expanduser()
    home = env.get("HOME")
    return Path(home) / ".cdsapirc" if home else Path("~/.cdsapirc").expanduser()


def resolve_credentials(
    url: str | None = None,
    key: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Credentials:
    """Resolve the CDS url and key in the client's own order, with helpful errors and their sources.

    Order (as ``cdsapi.api.get_url_key_verify``): the arguments, the environment variables
    ``CDSAPI_URL``/``CDSAPI_KEY``, then the file named by ``CDSAPI_RC`` (default
    ``~/.cdsapirc``) with ``url:`` and ``key:`` lines.
    """
    env = os.environ if env is None else env
    url_source = key_source = "the argument"
    if url is None and env.get("CDSAPI_URL"):
        url, url_source = env["CDSAPI_URL"], "CDSAPI_URL"
    if key is None and env.get("CDSAPI_KEY"):
        key, key_source = env["CDSAPI_KEY"], "CDSAPI_KEY"
    if url is None or key is None:
        rc = _rc_path(env)
        if not rc.is_file():
            missing = " and ".join(n for n, v in (("url", url), ("key", key)) if v is None)
            where = f"CDSAPI_RC={env['CDSAPI_RC']} does not exist" if env.get("CDSAPI_RC") else f"{rc} does not exist"
            raise InputError(f"no CDS credentials: the {missing} is not set and {where}; {RC_HELP}")
        rc_config = _read_rc(rc)
        if url is None:
            if not rc_config.get("url"):
                raise InputError(
                    f"the CDS credentials file {rc} has no 'url:' line; add "
                    "'url: https://cds.climate.copernicus.eu/api' (or set CDSAPI_URL)"
                )
            url, url_source = rc_config["url"], str(rc)
        if key is None:
            if not rc_config.get("key"):
                raise InputError(
                    f"the CDS credentials file {rc} has no 'key:' line; add "
                    "'key: <your personal access token>' from your CDS profile page "
                    "(or set CDSAPI_KEY)"
                )
            key, key_source = rc_config["key"], str(rc)
    url = url.strip().rstrip("/")
    if not re.match(r"https?://[^\s/]+", url):
        raise InputError(
            f"the CDS url from {url_source} is malformed ({url!r}); "
            "expected e.g. https://cds.climate.copernicus.eu/api"
        )
    return Credentials(url, check_key(key, key_source), url_source, key_source)


def cds_credentials(
    url: str | None = None,
    key: str | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """``(url, key)`` of :func:`resolve_credentials` (the client's order, helpful errors)."""
    found = resolve_credentials(url, key, env)
    return found.url, found.key


def _where(source: str) -> str:
    if source in ("CDSAPI_KEY", "CDSAPI_URL"):
        return f"the environment variable {source}"
    if source == "the argument":
        return "the key given to the fetch"
    return f"the 'key:' line of {source}"


def rejected_key_hint(credentials: Credentials) -> str:
    """What to fix when the CDS rejects the key: where the key came from and what it must be."""
    where = _where(credentials.key_source)
    if credentials.legacy:
        what = ("it is an old-style 'UID:KEY' key, which today's CDS no longer accepts: replace it with "
                "the personal access token shown on your CDS profile page")
    else:
        what = ("it looks like a personal access token: compare it with the token on your CDS profile "
                "page (copied whole, not expired or revoked)")
    overridden = ""
    if credentials.key_source == "CDSAPI_KEY":
        overridden = "; CDSAPI_KEY takes precedence over ~/.cdsapirc, so unset it to use the file"
    return f"the key comes from {where} ({what}){overridden}; the url {credentials.url} comes from {_where_url(credentials.url_source)}"


def _where_url(source: str) -> str:
    if source == "CDSAPI_URL":
        return "the environment variable CDSAPI_URL"
    if source == "the argument":
        return "the fetch's argument"
    return f"the 'url:' line of {source}"
