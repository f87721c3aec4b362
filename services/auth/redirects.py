"""Where a sign-in may send the browser back to: the `rd` parameter, checked against an allow-list.

An open redirect on a login page turns the portal into a phishing relay, so `rd` is parsed once,
strictly, and compared by host after IDNA: it must be an absolute `https` URL (plain `http` only
in development) whose host is listed in `AUTH_REDIRECT_DOMAINS` (an exact host, or `.example.com`
for that domain and its subdomains). Backslashes, control characters, userinfo, percent signs in
the host, scheme-relative and scheme-only forms are refused outright rather than "cleaned", since
browsers and URL parsers disagree on them; anything refused sends the user to the portal's own page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import idna

MAX_TARGET_LENGTH = 2048
# After IDNA: letters, digits, hyphens and dots only; a percent-encoded or odd host never matches.
_HOST = re.compile(
    r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\]")


class InvalidRedirectDomain(ValueError):
    """An `AUTH_REDIRECT_DOMAINS` entry that is not a host name or a `.domain`."""


def canonical_host(host: str) -> str | None:
    """The lower-case IDNA form of `host` (UTS #46 mapping, as browsers apply it), or None.

    A look-alike (a Cyrillic letter for a Latin one) becomes another `xn--` name: never a match.
    """
    try:
        ascii_host = idna.encode(host.strip().rstrip("."), uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError):
        return None
    return ascii_host if _HOST.match(ascii_host) else None


@dataclass(frozen=True)
class RedirectPolicy:
    exact: frozenset[str]
    suffixes: frozenset[str]  # ".example.com": the domain and every subdomain
    allow_http: bool = False

    @classmethod
    def parse(cls, entries: list[str], *, allow_http: bool = False) -> RedirectPolicy:
        exact: set[str] = set()
        suffixes: set[str] = set()
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            wildcard = entry.startswith(".")
            host = canonical_host(entry[1:] if wildcard else entry)
            if host is None:
                raise InvalidRedirectDomain(f"{entry!r} is not a host name or a .domain")
            (suffixes if wildcard else exact).add(host)
        return cls(frozenset(exact), frozenset(suffixes), allow_http)

    def host_allowed(self, host: str) -> bool:
        if host in self.exact:
            return True
        return any(host == suffix or host.endswith("." + suffix) for suffix in self.suffixes)

    def checked(self, target: str | None) -> str | None:
        """`target` normalized when the browser may be sent there; None when it may not."""
        if not target or len(target) > MAX_TARGET_LENGTH or _FORBIDDEN.search(target):
            return None
        try:
            parts = urlsplit(target)
            port = parts.port
        except ValueError:
            return None
        scheme = parts.scheme.lower()
        if scheme != "https" and not (scheme == "http" and self.allow_http):
            return None
        netloc = parts.netloc
        if not netloc or "@" in netloc or "%" in netloc or parts.hostname is None:
            return None
        host = canonical_host(parts.hostname)
        if host is None or not self.host_allowed(host):
            return None
        authority = host if port is None else f"{host}:{port}"
        return urlunsplit((scheme, authority, parts.path or "/", parts.query, parts.fragment))
