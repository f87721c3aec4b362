"""Server-rendered portal pages: Jinja2 with autoescaping and strict undefined values.

Plain HTML forms and one stylesheet. The only script is the static passkeys.js, loaded by the
pages that offer passkeys (their CSP allows `script-src 'self'`, never an inline script); every
other page forbids scripts altogether, and nothing but passkeys relies on one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES = Path(__file__).with_name("templates")
STYLESHEET = Path(__file__).with_name("static") / "portal.css"
PASSKEYS_SCRIPT = Path(__file__).with_name("static") / "passkeys.js"


class PortalPages:
    def __init__(self, app_title: str, *, registration: bool = False, password_reset: bool = False) -> None:
        self._env = Environment(
            loader=FileSystemLoader(str(TEMPLATES)),
            autoescape=True,  # every value is text, never markup
            undefined=StrictUndefined,
        )
        self._title = app_title
        # What the login page links to: shown only when the flows are on.
        self._env.globals.update(registration_open=registration, password_reset_open=password_reset)
        self.stylesheet = STYLESHEET.read_bytes()
        self.passkeys_script = PASSKEYS_SCRIPT.read_bytes()

    def render(self, page: str, **values: Any) -> str:
        values.setdefault("scripted", False)  # base.html loads passkeys.js only when asked
        return self._env.get_template(f"{page}.html").render(app_title=self._title, **values)
