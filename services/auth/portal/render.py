"""Server-rendered portal pages: Jinja2 with autoescaping and strict undefined values.

Plain HTML forms and one stylesheet, no script: the Content-Security-Policy the pages are
sent with forbids every script, so nothing here may rely on one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES = Path(__file__).with_name("templates")
STYLESHEET = Path(__file__).with_name("static") / "portal.css"


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

    def render(self, page: str, **values: Any) -> str:
        return self._env.get_template(f"{page}.html").render(app_title=self._title, **values)
