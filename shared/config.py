"""Environment parsing shared by both services.

LibreChat silently falls back to a default when a value does not parse; authgate
stops at startup with one line naming the variable instead, because a limit or a
lifetime that is quietly different from what the operator wrote is a security bug.
"""

from __future__ import annotations

import ast
import ipaddress
import operator
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEVELOPMENT = "development"
PRODUCTION = "production"
ENVIRONMENTS = (DEVELOPMENT, PRODUCTION, "test")
# Modes where the security floors (network breadth, argon2, password length) do not apply.
RELAXED_ENVIRONMENTS = frozenset({DEVELOPMENT, "test"})

# Trusting or exempting a public prefix this wide (or wider) hands the whole Internet, or a large part
# of it, the power to name its own client address or to escape limits. A CDN's published /12 is fine.
WIDEST_PUBLIC_PREFIX = {4: 8, 6: 16}
_NON_PUBLIC = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)

# Published in the seed configuration: anyone can sign tokens with them.
PUBLISHED_EXAMPLE_SECRETS = frozenset(
    {
        "16f8c0ef4a5d391b26034086c628469d3f9f497f08163ab9b40137092f2909ef",
        "eaa5191f2914e30b9387fd84e254e4ba6fc51b4654968a9b0803b456a54b8418",
    }
)

GENERATED_SECRETS_FILE = "data/secrets.env"
# A random hex secret of 32+ bytes uses all 16 hex digits; fewer than this is a placeholder.
MIN_DISTINCT_CHARACTERS = 8


class ConfigError(Exception):
    """A configuration value that stops startup; the message names the variable."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


class Env:
    """Layered variables: process environment, then .env files, then generated secrets.

    An empty assignment (`X=`) counts as unset, so a blank line in a template
    never overrides a lower layer.
    """

    def __init__(self, layers: Iterable[Mapping[str, str | None]]) -> None:
        self._layers = [dict(layer) for layer in layers]

    def raw(self, name: str) -> str | None:
        for layer in self._layers:
            value = layer.get(name)
            if value is not None and value.strip() != "":
                return value.strip()
        return None

    @classmethod
    def load(cls, root: Path | None = None, environ: Mapping[str, str] | None = None) -> Env:
        """Read the layers in precedence order, highest first."""
        root = root if root is not None else Path.cwd()
        process = dict(os.environ if environ is None else environ)
        mode = (process.get("AUTHGATE_ENV") or "").strip().lower()
        layers: list[Mapping[str, str | None]] = [process]
        file_names = [".env"]
        if mode == DEVELOPMENT:
            file_names.insert(0, ".env.development")
        for file_name in [*file_names, GENERATED_SECRETS_FILE]:
            path = root / file_name
            if path.is_file():
                layers.append(dotenv_values(path))
        return cls(layers)

    # Typed getters -------------------------------------------------------------

    def string(self, name: str, default: str | None = None) -> str | None:
        value = self.raw(name)
        return default if value is None else value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        return default if value is None else parse_bool(name, value)

    def integer(self, name: str, default: int, minimum: int | None = None) -> int:
        value = self.raw(name)
        result = default if value is None else parse_int(name, value)
        if minimum is not None and result < minimum:
            raise ConfigError(name, f"must be >= {minimum}, got {result}")
        return result

    def number(self, name: str, default: float, minimum: float | None = None) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            result = float(value)
        except ValueError:
            raise ConfigError(name, f"expected a number, got {value!r}") from None
        if result != result or (minimum is not None and result < minimum):
            raise ConfigError(name, f"must be a number >= {minimum}, got {value!r}")
        return result

    def duration_ms(self, name: str, default: str, allow_non_positive: bool = False) -> int:
        value = self.raw(name)
        result = parse_duration_ms(name, default if value is None else value)
        if result <= 0 and not allow_non_positive:
            raise ConfigError(name, f"must be a positive duration in ms, got {result}")
        return result

    def networks(self, name: str) -> tuple[IPNetwork, ...]:
        """A list of networks; outside development and test, none may cover a wide public prefix."""
        value = self.raw(name)
        if value is None:
            return ()
        networks = parse_networks(name, value)
        if not self.relaxed:
            refuse_wide_public(name, networks)
        return networks

    @property
    def relaxed(self) -> bool:
        """Development and test may go below the production floors (the mode is checked elsewhere)."""
        return (self.raw("AUTHGATE_ENV") or PRODUCTION) in RELAXED_ENVIRONMENTS

    def choice(self, name: str, default: str, choices: Iterable[str]) -> str:
        value = self.raw(name)
        allowed = tuple(choices)
        result = default if value is None else value
        if result not in allowed:
            raise ConfigError(name, f"must be one of {', '.join(allowed)}, got {result!r}")
        return result

    def secret(self, name: str) -> str | None:
        """A secret from `NAME` or from the file named by `NAME_FILE` (Kubernetes)."""
        direct = self.raw(name)
        file_name = self.raw(f"{name}_FILE")
        if direct is not None and file_name is not None:
            raise ConfigError(name, f"set either {name} or {name}_FILE, not both")
        if file_name is None:
            return direct
        try:
            content = Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE", f"cannot read {file_name}: {exc.strerror}") from None
        return content or None


# Scalar parsers -------------------------------------------------------------------

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(name, f"expected true/false/1/0/yes/no, got {value!r}")


def parse_int(name: str, value: str) -> int:
    try:
        return int(value.strip(), 10)
    except ValueError:
        raise ConfigError(name, f"expected an integer, got {value!r}") from None


_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_MAX_EXPRESSION = 256
_MAX_MAGNITUDE = 10**15  # ~31,000 years in ms: anything bigger is a typo


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise ValueError("booleans are not durations")
        return node.value  # ints stay exact, as in Python: 10**17 + 1 - 10**17 is 1, not 0
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    raise ValueError("only numbers, + - * / and parentheses are allowed")


def parse_duration_ms(name: str, value: str) -> int:
    """Evaluate `1000 * 60 * 15`-style arithmetic without `eval`."""
    text = value.strip()
    if not text or len(text) > _MAX_EXPRESSION:
        raise ConfigError(name, f"expected a duration in ms, got {value!r}")
    if any(ch not in "0123456789.+-*/() \t" for ch in text):
        raise ConfigError(name, f"only numbers, + - * / and parentheses are allowed: {value!r}")
    try:
        result = _evaluate(ast.parse(text, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError, MemoryError):
        raise ConfigError(name, f"not a valid duration expression: {value!r}") from None
    if result != result or abs(result) > _MAX_MAGNITUDE:
        raise ConfigError(name, f"duration out of range: {value!r}")
    return round(result)


def parse_networks(name: str, value: str) -> tuple[IPNetwork, ...]:
    networks: list[IPNetwork] = []
    for item in value.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        if item in {"*", "0.0.0.0/0", "::/0"}:
            raise ConfigError(name, "trusting every address is refused; list the proxy networks")
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(name, f"not an IP address or CIDR: {item!r}") from None
        if network.prefixlen == 0:  # `0.0.0.0/0.0.0.0`, `0::/0`, ...: every spelling of "everyone"
            raise ConfigError(name, "trusting every address is refused; list the proxy networks")
        networks.append(network)
    return tuple(networks)


def covers_wide_public(network: IPNetwork) -> bool:
    """Whether the network is at least as wide as the floor and reaches outside private space."""
    if network.prefixlen > WIDEST_PUBLIC_PREFIX[network.version]:
        return False
    return not any(
        network.version == private.version and network.subnet_of(private)  # type: ignore[arg-type]
        for private in _NON_PUBLIC
    )


def refuse_wide_public(name: str, networks: Iterable[IPNetwork]) -> None:
    """Judge the union, not each entry: two halves of a public /8 trust exactly what the /8 would."""
    listed = list(networks)
    v4 = [n for n in listed if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in listed if isinstance(n, ipaddress.IPv6Network)]
    merged: list[IPNetwork] = [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]
    for network in merged:
        if covers_wide_public(network):
            widest = WIDEST_PUBLIC_PREFIX[network.version]
            shown = str(network) if network in listed else f"{network} (the union of the entries)"
            raise ConfigError(
                name,
                f"{shown} covers a public IPv{network.version} prefix of /{widest} or wider; "
                "list the proxy or exempt networks themselves",
            )


def exempt_networks(env: Env) -> tuple[IPNetwork, ...]:
    """Never limited nor banned: trusted proxies and BAN_EXEMPT_CIDRS, whose union obeys the floor too."""
    networks = env.networks("TRUSTED_PROXIES") + env.networks("BAN_EXEMPT_CIDRS")
    if not env.relaxed:
        refuse_wide_public("BAN_EXEMPT_CIDRS", networks)
    return networks


def check_secret(name: str, value: str | None, *, development: bool, min_bytes: int = 32) -> None:
    """Refuse missing, short or published secrets (published ones in every mode)."""
    if value is not None and value.strip().lower() in PUBLISHED_EXAMPLE_SECRETS:
        raise ConfigError(name, "equals an example value published in the documentation; generate a new one")
    if value is None:
        if not development:
            raise ConfigError(name, "is required (or set it through its _FILE variant)")
        return
    if len(value.encode()) < min_bytes and not development:
        raise ConfigError(name, f"must be at least {min_bytes} bytes")
    if len(set(value)) < MIN_DISTINCT_CHARACTERS and not development:
        # "ssss...", "aaaa..." pass a length check but are placeholders, not random keys (RFC 8725 §3.5).
        raise ConfigError(
            name, "looks like a placeholder, not a random secret; use `authgate generate-secrets`"
        )


@dataclass(frozen=True)
class HttpLimits:
    """What uvicorn can bound itself: idle keep-alive connections and concurrent work.

    uvicorn cannot time out a slow request read; the proxy in front does that
    (deploy/ ships client_header_timeout, readTimeout, request_headers_timeout).
    """

    keep_alive_timeout_s: int = 5
    limit_concurrency: int = 1000


def load_http_limits(env: Env) -> HttpLimits:
    return HttpLimits(
        keep_alive_timeout_s=env.integer("HTTP_KEEP_ALIVE_TIMEOUT", 5, minimum=1),
        limit_concurrency=env.integer("HTTP_LIMIT_CONCURRENCY", 1000, minimum=1),
    )


def environment(env: Env) -> str:
    return env.choice("AUTHGATE_ENV", PRODUCTION, ENVIRONMENTS)


def generate_dev_secret(root: Path, name: str, value_factory: Callable[[], str]) -> str:
    """Create a development-only secret and persist it in the git-ignored secrets file.

    Later starts (and the second service) read it back through `Env.load`.
    """
    path = root / GENERATED_SECRETS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = dotenv_values(path) if path.is_file() else {}
    current = existing.get(name)
    if current:
        return current
    value = value_factory()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(f"{name}={value}\n")
    return value
