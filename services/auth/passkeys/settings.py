"""`WEBAUTHN_RP_ID`, `WEBAUTHN_RP_NAME`, `WEBAUTHN_ORIGINS`, checked at start-up.

The relying party defaults to the host of `DOMAIN_SERVER` and the allowed origins to its
origin, because the portal that calls `navigator.credentials` lives there. Without WEBAUTHN_*
variables and without a `DOMAIN_SERVER` browsers accept for passkeys (https on a host name, or
http on localhost) there is no relying party: passkeys are off and their routes answer 404
`passkeys_disabled`. Explicit WEBAUTHN_* values that do not fit are start-up errors. Every
origin must be the RP ID or one of its subdomains (the browser refuses any other pairing anyway;
refusing it here turns a silent failure into a start-up error).
Origins are https, or http for `localhost` (a secure context to browsers) and in development.
"""

from __future__ import annotations

import ipaddress
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


def _derived(domain_server: str | None, rp_name: str, development: bool) -> WebAuthnSettings:
    """From DOMAIN_SERVER alone: on when it is a secure origin on a host name, quietly off otherwise
    (an http or IP-address DOMAIN_SERVER served before passkeys existed and must still start)."""
    parts = urlsplit(domain_server or "")
    rp_id = canonical_host(parts.hostname or "") if parts.hostname else None
    if rp_id is None or _is_ip(rp_id):
        return WebAuthnSettings(rp_name=rp_name)
    try:
        origin = _origin(domain_server or "", development)
    except ConfigError:
        return WebAuthnSettings(rp_name=rp_name)
    return WebAuthnSettings(rp_id=rp_id, rp_name=rp_name, origins=(origin,))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def load_webauthn_settings(
    env: Env, app_title: str, domain_server: str | None, *, development: bool
) -> WebAuthnSettings:
    rp_name = env.string("WEBAUTHN_RP_NAME") or app_title
    raw_rp = env.string("WEBAUTHN_RP_ID")
    listed = env.string("WEBAUTHN_ORIGINS")
    if not raw_rp and not listed:
        return _derived(domain_server, rp_name, development)
    raw_rp = raw_rp or urlsplit(domain_server or "").hostname
    rp_id = canonical_host(raw_rp) if raw_rp else None
    if rp_id is None or _is_ip(rp_id):
        raise ConfigError("WEBAUTHN_RP_ID", "must be a host name such as example.com (or set DOMAIN_SERVER)")
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
