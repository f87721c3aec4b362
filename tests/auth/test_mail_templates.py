"""Mail templates: LibreChat's link shapes, escaped HTML, and an operator's override directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2 import UndefinedError

from services.auth.mail.templates import KINDS, MailTemplates, reset_link, verification_link

VALUES = {
    "app_title": "Acme",
    "name": "Ann",
    "email": "ann@example.com",
    "link": "https://chat.example.com/verify?token=t&email=ann%40example.com",
    "valid_for": "24 hours",
    "by_operator": False,
}


def test_links_are_built_as_librechat_builds_them() -> None:
    assert (
        verification_link("https://chat.example.com/", "abc_-123", "ann+x@example.com")
        == "https://chat.example.com/verify?token=abc_-123&email=ann%2Bx%40example.com"
    )
    assert (
        reset_link("https://chat.example.com", "tok", "65f0c0ffee")
        == "https://chat.example.com/reset-password?token=tok&userId=65f0c0ffee"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders_a_subject_a_text_and_an_html_part(kind: str) -> None:
    mail = MailTemplates().render(kind, **VALUES)
    assert "Acme" in mail.subject and "\n" not in mail.subject
    assert "Ann" in mail.text and "<html>" in mail.html


def test_html_is_escaped_and_text_is_not() -> None:
    mail = MailTemplates().render("verify_email", **{**VALUES, "name": "<script>x</script>"})
    assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html
    assert "<script>x</script>" in mail.text  # a text part is not markup


def test_an_override_directory_wins_for_the_files_it_has(tmp_path: Path) -> None:
    (tmp_path / "verify_email.txt").write_text("Custom {{ link }}\n")
    mail = MailTemplates(str(tmp_path)).render("verify_email", **VALUES)
    assert mail.text == f"Custom {VALUES['link']}\n"
    assert "Verify my email" in mail.html  # not overridden: the shipped one


def test_a_template_naming_an_unknown_value_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "verify_email.txt").write_text("{{ nonsense }}")
    with pytest.raises(UndefinedError):
        MailTemplates(str(tmp_path)).render("verify_email", **VALUES)
    with pytest.raises(ValueError):
        MailTemplates().render("no_such_kind", **VALUES)
