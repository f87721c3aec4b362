"""MONGO_URI checked at start-up: one line naming the variable, the password never shown."""

from __future__ import annotations

from urllib.parse import urlsplit

from pymongo.errors import InvalidURI
from pymongo.uri_parser import parse_uri

from shared.config import ConfigError


def checked_mongo_uri(uri: str) -> str:
    """A malformed MONGO_URI is one startup line naming the variable, never a traceback.

    `mongodb+srv://` URIs are only checked for shape here: resolving them needs DNS.
    """
    if not uri.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigError("MONGO_URI", "must begin with mongodb:// or mongodb+srv://")
    if uri.startswith("mongodb://"):
        try:
            parse_uri(uri)
        except (InvalidURI, ValueError) as exc:
            password = urlsplit(uri).password if "@" in uri else None
            detail = str(exc).replace(password, "***") if password else str(exc)
            raise ConfigError("MONGO_URI", f"is not a valid MongoDB URI: {detail}") from None
    return uri
