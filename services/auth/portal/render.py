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
    def __init__(self, app_title: str, social_buttons: list[dict[str, str]] | None = None) -> None:
        self._env = Environment(
            loader=FileSystemLoader(str(TEMPLATES)),
            autoescape=True,  # every value is text, never markup
            undefined=StrictUndefined,
        )
        self._title = app_title
        # Sign-in providers shown under the login form: [{"provider": "openid", "label": ...}].
        self._env.globals["social_buttons"] = list(social_buttons or [])
        self.stylesheet = STYLESHEET.read_bytes()

    def render(self, page: str, **values: Any) -> str:
        return self._env.get_template(f"{page}.html").render(app_title=self._title, **values)
