"""The one subject grammar used by the API, the store, the audit trail and the CLI.

`user:<id>`, `ip:<address>`, `net:<ipv6 /64>` and `account:<hex hmac-sha256>`; internally also
`net:<ipv6 /48>` (logins of a /48 together) and `ip:unknown` (clients a trusted proxy did not
name), which are limited but never banned.
IPv6 clients are counted and banned per /64 (one host owns a whole /64), while a
manual ban may still target one exact address with `ip:`.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from shared.config import IPNetwork

USER_ID_PATTERN = r"^[A-Za-z0-9_.@-]{1,128}$"
ACCOUNT_PATTERN = r"^account:[0-9a-f]{64}$"
# Exact address grammars, so the OpenAPI patterns accept precisely what the service accepts.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H = r"[0-9A-Fa-f]{1,4}"
IPV6 = (
    rf"(?:(?:{_H}:){{7}}{_H}|(?:{_H}:){{1,7}}:|(?:{_H}:){{1,6}}:{_H}|(?:{_H}:){{1,5}}(?::{_H}){{1,2}}"
    rf"|(?:{_H}:){{1,4}}(?::{_H}){{1,3}}|(?:{_H}:){{1,3}}(?::{_H}){{1,4}}|(?:{_H}:){{1,2}}(?::{_H}){{1,5}}"
    rf"|{_H}:(?::{_H}){{1,6}}|:(?:(?::{_H}){{1,7}}|:)|(?:{_H}:){{6}}{IPV4}|::(?:{_H}:){{0,5}}{IPV4}"
    + "".join(rf"|(?:{_H}:){{{n}}}:(?:{_H}:){{0,{5 - n}}}{IPV4}" for n in range(1, 6))
    + ")"
)
_BANNABLE = rf"user:[A-Za-z0-9_.@-]{{1,128}}|ip:(?:{IPV4}|{IPV6})|net:{IPV6}/64"
SUBJECT_PATTERN = rf"^(?:{_BANNABLE}|account:[0-9a-f]{{64}})$"
BAN_SUBJECT_PATTERN = rf"^(?:{_BANNABLE})$"
_USER_ID = re.compile(USER_ID_PATTERN)
_ACCOUNT = re.compile(ACCOUNT_PATTERN)
IPV6_PREFIX = 64
NET48_PREFIX = 48
# What auth sends when a trusted proxy named no client (shared.http.UNKNOWN_CLIENT): one shared
# client, counted under this subject, never scored, never banned (the grammar refuses to ban it).
UNKNOWN_CLIENT = "unknown"
UNKNOWN_SUBJECT = "ip:unknown"


class InvalidSubject(ValueError):
    """Text that is not a subject in the grammar; the message says why."""


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A bare address (no port, no brackets); IPv4-mapped IPv6 becomes IPv4, a zone is dropped."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidSubject(f"not an IP address: {text[:64]!r}") from None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:  # `fe80::1%eth0`: the zone is the sender's interface
            address = ipaddress.IPv6Address(text.partition("%")[0])
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address


def net_of(address: ipaddress.IPv6Address) -> str:
    network = ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False)
    return f"net:{network}"


@dataclass(frozen=True)
class ClientAddress:
    """The subjects one client address maps to."""

    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None  # None: the unknown client
    counted: str  # limits, scores and automatic bans
    ban_only: tuple[str, ...]  # also checked for (manual) bans
    exempt: bool  # a trusted proxy or BAN_EXEMPT_CIDRS: no limits, no scores, no bans
    bannable: bool = True  # False for the shared unknown client: limited, never scored or banned
    net48: str | None = None  # the IPv6 /48 whose logins are limited together, never banned

    @property
    def subjects(self) -> tuple[str, ...]:
        return (self.counted, *self.ban_only)


UNKNOWN_ADDRESS = ClientAddress(None, UNKNOWN_SUBJECT, (), exempt=False, bannable=False)


def net48_of(address: ipaddress.IPv6Address, exempt: tuple[IPNetwork, ...]) -> str | None:
    """`net:<prefix>/48`, or None when the /48 holds an exempt network (the operator knows it)."""
    subject = f"net:{ipaddress.IPv6Network((address, NET48_PREFIX), strict=False)}"
    return None if is_exempt(subject, exempt) else subject


@functools.lru_cache(maxsize=8192)
def client_address(text: str, exempt: tuple[IPNetwork, ...] = ()) -> ClientAddress:
    """Map an address to its subjects; a /64 that holds an exempt address is counted per address.

    Cached: parsing addresses and testing networks is most of the engine's own CPU time.
    """
    if text == UNKNOWN_CLIENT:
        return UNKNOWN_ADDRESS
    address = parse_ip(text)
    is_exempt_address = address_exempt(address, exempt)
    if isinstance(address, ipaddress.IPv4Address):
        return ClientAddress(address, f"ip:{address}", (), is_exempt_address)
    net48 = net48_of(address, exempt)
    net = net_of(address)
    if is_exempt(net, exempt):
        return ClientAddress(address, f"ip:{address}", (), is_exempt_address, net48=net48)
    return ClientAddress(address, net, (f"ip:{address}",), is_exempt_address, net48=net48)


def user_subject(user_id: str) -> str:
    if not _USER_ID.match(user_id):
        raise InvalidSubject("user ids are 1-128 characters of A-Z a-z 0-9 _ . @ -")
    return f"user:{user_id}"


def parse_subject(text: str) -> str:
    """Validate and canonicalise a subject (addresses in their compressed form)."""
    kind, sep, value = text.partition(":")
    if not sep or not value:
        raise InvalidSubject("a subject looks like user:<id>, ip:<address>, net:<ipv6>/64 or account:<hmac>")
    if kind == "user":
        return user_subject(value)
    if kind == "ip":
        address = parse_ip(value)
        return f"ip:{address}"
    if kind == "net":
        try:
            network = ipaddress.IPv6Network(value, strict=False)
        except ValueError:
            raise InvalidSubject(f"not an IPv6 network: {value[:64]!r}") from None
        if network.prefixlen != IPV6_PREFIX:
            raise InvalidSubject("net: subjects are IPv6 /64 prefixes")
        return f"net:{network}"
    if kind == "account":
        lowered = text.lower()
        if not _ACCOUNT.match(lowered):
            raise InvalidSubject("account subjects are account:<64 hex digits of HMAC-SHA256>")
        return lowered
    raise InvalidSubject(f"unknown subject kind {kind[:16]!r}")


def subject_networks(subject: str) -> IPNetwork | None:
    """The address range an ip:/net: subject covers, for the exemption check."""
    kind, _, value = subject.partition(":")
    if kind == "ip":
        return ipaddress.ip_network(value)
    if kind == "net":
        return ipaddress.IPv6Network(value)
    return None


def is_exempt(subject: str, exempt: Iterable[IPNetwork]) -> bool:
    """True when a ban on `subject` would touch an exempt address (a proxy, an ingress)."""
    network = subject_networks(subject)
    if network is None:
        return False
    return any(network.version == net.version and network.overlaps(net) for net in exempt)


def address_exempt(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, exempt: Iterable[IPNetwork]
) -> bool:
    return any(address in network for network in exempt)
