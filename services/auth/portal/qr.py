"""The TOTP enrolment's QR code as inline SVG (segno): no script, no image request, no style.

The SVG uses presentation attributes only, so the pages' `Content-Security-Policy`
(`default-src 'none'; style-src 'self'`) lets it render.
"""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import segno
from markupsafe import Markup


def qr_svg(text: str, title: str) -> Markup:
    """`text` (an `otpauth://` URL) as an SVG element with an accessible title."""
    code = segno.make(text, error="m", micro=False)
    out = io.BytesIO()
    code.save(
        out,
        kind="svg",
        xmldecl=False,
        svgns=True,
        scale=5,
        border=4,
        title=title,
        svgclass="qr",
        lineclass=None,
    )
    svg = out.getvalue().decode("utf-8").replace("<svg ", '<svg role="img" ', 1)
    return Markup(svg)  # noqa: S704 - segno's own output (it escapes `title` itself)


def secret_of(otpauth_url: str) -> str:
    """The base32 secret of an `otpauth://` URL, in groups of four for typing it by hand."""
    secret = parse_qs(urlsplit(otpauth_url).query).get("secret", [""])[0]
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
