"""
Whether a text shows any piece of a secret: the check of the token-hygiene tests (issue 11 items 6 and 7).

:data:`SECRET` is made of mixed-case letters and digits, so that "no piece of four characters or more
appears" is a meaningful check: no English word or URL in a message shares one.
"""

from __future__ import annotations

SECRET = "Zq7Xv9Kw2Jm4Rt8Yp3Lb6Nd1Hc5Gf0Ws"


def pieces(text: str, secret: str, size: int = 4) -> list[str]:
    """Every substring of ``secret`` of ``size`` characters that appears in ``text``."""
    return sorted({secret[i : i + size] for i in range(len(secret) - size + 1) if secret[i : i + size] in text})


def exception_texts(error: BaseException) -> dict[str, str]:
    """Every text an exception carries into logs, task failure messages and trigger events."""
    texts = {"str": str(error), "repr": repr(error), "api_error": str(getattr(error, "api_error", "") or "")}
    for name in ("__cause__", "__context__"):
        linked = getattr(error, name)
        if linked is not None:
            texts[name] = f"{linked}\n{getattr(linked, 'api_error', '') or ''}"
    return texts


def assert_no_piece(error: BaseException, secret: str = SECRET) -> None:
    leaks = {where: pieces(text, secret) for where, text in exception_texts(error).items()}
    assert not any(leaks.values()), leaks
