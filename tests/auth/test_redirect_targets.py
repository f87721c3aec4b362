"""`rd` after sign-in: only https URLs on AUTH_REDIRECT_DOMAINS hosts, and none of the classic
open-redirect bypasses (scheme-relative, backslashes, userinfo, encoded separators, look-alikes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.auth.redirects import RedirectPolicy
from services.auth.settings import load_settings
from shared.config import ConfigError, Env

POLICY = RedirectPolicy.parse(["app.example.test", ".example.com"])

BYPASSES = [
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https:evil.example",
    "https:/evil.example",
    "https://app.example.test@evil.example",
    "https://app.example.test:443@evil.example",
    "https://evil.example\\.app.example.test",
    "https://evil.example%2F.app.example.test",
    "https://evil.example%2Eapp.example.test",
    "https://app.example.test%2F@evil.example",
    "https://evil.example/https://app.example.test",
    "https://app.example.test.evil.example",
    "https://evilexample.com",
    "https://xn--pp-8kc.example.test",  # a look-alike of `app` in punycode
    "https://\u0430pp.example.test",  # the same with a Cyrillic letter
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "http://app.example.test/",  # plain http outside development
    "https://app.example.test\t/",
    "https://app.example.test\n.evil.example",
    "https://app.example.test\x00.evil.example",
    "ftp://app.example.test/",
    "/relative/path",
    "",
    "https://" + "a" * 3000 + ".example.com/",
    "https://[::1]/",
    "https://app.example.test:99999/",
]


@pytest.mark.parametrize("target", BYPASSES)
def test_classic_bypasses_are_refused(target: str) -> None:
    assert POLICY.checked(target) is None


@pytest.mark.parametrize(
    ("target", "normalized"),
    [
        ("https://app.example.test/a?b=1#c", "https://app.example.test/a?b=1#c"),
        ("HTTPS://APP.Example.TEST", "https://app.example.test/"),
        ("https://app.example.test:8443/x", "https://app.example.test:8443/x"),
        ("https://example.com/", "https://example.com/"),
        ("https://deep.sub.example.com/p%2Fq", "https://deep.sub.example.com/p%2Fq"),
        ("https://\uff45xample.com/", "https://example.com/"),  # fullwidth, mapped as browsers do
    ],
)
def test_listed_hosts_pass_normalized(target: str, normalized: str) -> None:
    assert POLICY.checked(target) == normalized


@given(st.text(max_size=80))
def test_whatever_passes_is_https_on_a_listed_host(suffix: str) -> None:
    for target in (f"https://app.example.test{suffix}", f"https://{suffix}.example.com/", suffix):
        checked = POLICY.checked(target)
        if checked is not None:
            host = checked.split("/")[2].split(":")[0]
            assert checked.startswith("https://") and POLICY.host_allowed(host)


def test_the_domains_default_to_the_client_and_server_hosts(tmp_path: Path) -> None:
    env = {
        "AUTHGATE_ENV": "development",
        "DOMAIN_CLIENT": "https://chat.example.com",
        "DOMAIN_SERVER": "https://auth.example.com:8443",
    }
    policy = load_settings(Env([env]), root=tmp_path).redirects
    assert policy.exact == {"chat.example.com", "auth.example.com"}
    assert policy.allow_http  # development only
    listed = load_settings(
        Env([{**env, "AUTH_REDIRECT_DOMAINS": ".example.org, app.example.net"}]), root=tmp_path
    )
    assert listed.redirects.suffixes == {"example.org"} and listed.redirects.exact == {"app.example.net"}


@pytest.mark.parametrize("bad", ["https://app.example.com", "*.example.com", "exa mple.com", "..example.com"])
def test_a_bad_entry_is_a_startup_error(tmp_path: Path, bad: str) -> None:
    env = {"AUTHGATE_ENV": "development", "AUTH_REDIRECT_DOMAINS": bad}
    with pytest.raises(ConfigError) as error:
        load_settings(Env([env]), root=tmp_path)
    assert error.value.name == "AUTH_REDIRECT_DOMAINS"
