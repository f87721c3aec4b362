"""Helpers the security tests share."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.auth.conftest import AuthApp


class HashSpy:
    """Counts argon2-cffi's expensive calls on the running app; changes nothing else."""

    def __init__(self, auth: AuthApp) -> None:
        self.hasher = auth.ctx.accounts.hasher
        self.inner = self.hasher._argon2
        self.calls: Counter[str] = Counter()
        spy = self

        class Wrapped:
            def __getattr__(self, name: str) -> Any:
                attribute = getattr(spy.inner, name)
                if name not in ("hash", "verify"):
                    return attribute

                def counted(*args: Any, **kwargs: Any) -> Any:
                    spy.calls[name] += 1
                    return attribute(*args, **kwargs)

                return counted

        self.hasher._argon2 = Wrapped()  # type: ignore[assignment]
