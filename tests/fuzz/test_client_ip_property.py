"""Property tests for `shared.http.ClientIPResolver.resolve`: whom rate limits and bans are keyed on.

An untrusted peer is the client whatever X-Forwarded-For says; the answer is
always one valid address; behind trusted proxies it is the entry the first proxy
appended, never something to its left, so rotating spoofed left entries never
changes it.
"""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from shared.http import UNKNOWN_CLIENT, ClientIPResolver, normalize_ip

TRUSTED = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "fd00::/8"))
SETTINGS = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

trusted_addresses = st.one_of(
    st.ip_addresses(network="10.0.0.0/8"),
    st.ip_addresses(network="172.16.0.0/12"),
    st.ip_addresses(network="fd00::/8"),
)


def _untrusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    normalized = normalize_ip(str(address))
    return normalized is not None and not ClientIPResolver(TRUSTED, 1).is_trusted(normalized)


untrusted_addresses = st.ip_addresses().filter(_untrusted)


@st.composite
def spelled(
    draw: st.DrawFn, addresses: st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address]
) -> str:
    """An address as proxies write it: bare, with a port, bracketed, padded."""
    address = draw(addresses)
    text = str(address)
    if address.version == 4:
        text = draw(st.sampled_from([text, f"{text}:{draw(st.integers(1, 65535))}"]))
    else:
        text = draw(st.sampled_from([text, f"[{text}]", f"[{text}]:{draw(st.integers(1, 65535))}"]))
    pad = draw(st.sampled_from(["", " ", "  "]))
    return f"{pad}{text}{pad}"


# Whatever a client may put in the header itself: junk, addresses, trusted-looking addresses.
junk = st.text(max_size=40).filter(lambda t: "," not in t)
spoofed_entries = st.lists(
    st.one_of(junk, spelled(st.ip_addresses()), spelled(trusted_addresses)), max_size=6
)


@st.composite
def header_lines(draw: st.DrawFn, entries: list[str]) -> list[str]:
    """The same entries as one header or split over several (proxies may append a second one)."""
    if not entries:
        return draw(st.sampled_from([[], [""]]))
    cuts = sorted(draw(st.sets(st.integers(1, len(entries) - 1), max_size=3))) if len(entries) > 1 else []
    lines, start = [], 0
    for cut in [*cuts, len(entries)]:
        lines.append(",".join(entries[start:cut]))
        start = cut
    return lines


@SETTINGS
@given(st.integers(0, 5), spelled(untrusted_addresses), st.lists(st.text(max_size=60), max_size=4))
@example(3, "203.0.113.7", ["10.0.0.1, 10.0.0.2"])
def test_an_untrusted_peer_is_the_client_whatever_the_header(hops: int, peer: str, xff: list[str]) -> None:
    resolver = ClientIPResolver(TRUSTED, hops)
    assert resolver.resolve(peer, xff) == normalize_ip(peer)


@SETTINGS
@given(
    st.integers(0, 5),
    st.one_of(st.none(), st.text(max_size=60), spelled(st.ip_addresses()), spelled(trusted_addresses)),
    st.lists(
        st.one_of(st.text(max_size=80), st.lists(spelled(st.ip_addresses())).map(", ".join)), max_size=4
    ),
)
@example(2, "10.1.2.3", ["not-an-ip, 10.0.0.9"])
@example(1, None, [])
@example(3, "::ffff:10.0.0.1", ["::ffff:203.0.113.9"])
@example(3, "10.0.0.1", ["fe80::1%eth0"])
def test_the_result_is_always_one_valid_address(hops: int, peer: str | None, xff: list[str]) -> None:
    resolver = ClientIPResolver(TRUSTED, hops)
    result = resolver.resolve(peer, xff)
    if result == UNKNOWN_CLIENT:  # a trusted proxy named no usable client: never the proxy itself
        assert hops > 0 and resolver.is_trusted(normalize_ip(peer or "") or "0.0.0.0")
        return
    assert str(ipaddress.ip_address(result)) == result  # valid and canonical
    assert "%" not in result  # an IPv6 zone is dropped
    candidates = {normalize_ip(peer or "") or "0.0.0.0"}
    candidates |= {found for line in xff for e in line.split(",") if (found := normalize_ip(e)) is not None}
    assert result in candidates


@SETTINGS
@given(
    st.integers(1, 5).flatmap(
        lambda hops: st.tuples(st.just(hops), st.lists(trusted_addresses, max_size=hops - 1))
    ),
    spelled(trusted_addresses),
    spelled(untrusted_addresses),
    spoofed_entries,
    spoofed_entries,
    st.data(),
)
def test_behind_trusted_proxies_the_appended_client_wins_over_spoofed_entries(
    hops_and_proxies: tuple[int, list[ipaddress.IPv4Address | ipaddress.IPv6Address]],
    peer: str,
    client: str,
    spoofed: list[str],
    rotated: list[str],
    data: st.DataObject,
) -> None:
    hops, proxies = hops_and_proxies
    assume(spoofed != rotated)
    resolver = ClientIPResolver(TRUSTED, hops)
    results = set()
    for left in (spoofed, rotated, []):
        entries = [*left, client, *(str(p) for p in proxies)]
        results.add(resolver.resolve(peer, data.draw(header_lines(entries))))
    assert results == {normalize_ip(client)}
