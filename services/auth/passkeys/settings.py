"""`WEBAUTHN_RP_ID`, `WEBAUTHN_RP_NAME`, `WEBAUTHN_ORIGINS`, checked at start-up.

The relying party defaults to the host of `DOMAIN_SERVER` and the allowed origins to its
origin, because the portal that calls `navigator.credentials` lives there. With neither an RP
ID nor `DOMAIN_SERVER` there is no relying party: passkeys are off and their routes answer
404 `passkeys_disabled`. Every origin must be the RP ID or one of its subdomains (the browser
refuses any other pairing anyway; refusing it here turns a silent failure into a start-up error).
Origins are https, or http for `localhost` (a secure context to browsers) and in development.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from services.auth.redirects import canonical_host
from shared.config import ConfigError, Env


@dataclass(frozen=True)
class WebAuthnSettings:
    rp_id: str | None = None
    rp_name: str = "authgate"
    origins: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.rp_id and self.origins)


def _origin(value: str, development: bool) -> str:
    """`scheme://host[:port]` lower-cased, as a browser writes it in clientDataJSON."""
    parts = urlsplit(value.strip())
    local = (parts.hostname or "") == "localhost" or (parts.hostname or "").endswith(".localhost")
    secure = parts.scheme == "https" or (parts.scheme == "http" and (development or local))
    if not secure or not parts.hostname or parts.path not in ("", "/") or "@" in parts.netloc:
        raise ConfigError("WEBAUTHN_ORIGINS", f"{value!r} is not an https origin (scheme://host[:port])")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _within(host: str, rp_id: str) -> bool:
    return host == rp_id or host.endswith("." + rp_id)


def load_webauthn_settings(
    env: Env, app_title: str, domain_server: str | None, *, development: bool
) -> WebAuthnSettings:
    server_host = urlsplit(domain_server or "").hostname
    raw_rp = env.string("WEBAUTHN_RP_ID") or server_host
    rp_name = env.string("WEBAUTHN_RP_NAME") or app_title
    if not raw_rp:
        return WebAuthnSettings(rp_name=rp_name)
    rp_id = canonical_host(raw_rp)
    if rp_id is None:
        raise ConfigError("WEBAUTHN_RP_ID", "must be a host name such as example.com")
    listed = env.string("WEBAUTHN_ORIGINS")
    if listed:
        origins = tuple(_origin(o, development) for o in listed.split(",") if o.strip())
    elif domain_server:
        origins = (_origin(domain_server, development),)
    else:
        raise ConfigError("WEBAUTHN_ORIGINS", "is required when WEBAUTHN_RP_ID is set without DOMAIN_SERVER")
    for origin in origins:
        host = urlsplit(origin).hostname or ""
        if not _within(host, rp_id):
            raise ConfigError("WEBAUTHN_ORIGINS", f"{origin} is not {rp_id} or one of its subdomains")
    return WebAuthnSettings(rp_id=rp_id, rp_name=rp_name, origins=origins)
