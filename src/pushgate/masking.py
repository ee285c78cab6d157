"""Masking secrets in text that leaves pushgate: answers, the error log, log lines. Pure.

A receiver may echo a secret in any form it met it in, so a `Redactor` replaces every
encoding of every secret it was given with `SECRET_MASK`: the literal value, JSON-escaped
(ASCII and UTF-8, with or without `\\/`), URL-encoded (path, component and form encoding, upper-
or lower-case hex) and HTML-escaped. Text cut short (a response body read up to the size limit)
may end in the first characters of a secret: `mask(text, cut=True)` masks that tail too.

A secret shorter than `SECRET_MIN_LENGTH` is never masked: masking the secret `e` would mask
every `e` and so give the secret away. Configurations refuse such secrets when they are saved.
"""

from __future__ import annotations

import functools
import html
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

# What a masked secret looks like; sent back unchanged it means "keep the stored one".
SECRET_MASK = "********"
# Shorter secrets cannot be told apart from ordinary text. Vendor keys are 20 to 60 characters.
SECRET_MIN_LENGTH = 8
_PERCENT = re.compile(r"%[0-9A-F]{2}")


def encodings(secret: str) -> set[str]:
    """Every form in which `secret` may come back: literal, JSON, URL and HTML encodings."""
    as_json = {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    as_json |= {form.replace("/", "\\/") for form in as_json}
    as_url = {quote(secret), quote(secret, safe=""), quote_plus(secret), quote_plus(secret, "/")}
    as_url |= {_PERCENT.sub(lambda m: m[0].lower(), form) for form in as_url}
    as_html = {html.escape(secret), html.escape(secret, quote=False)}
    return {secret} | as_json | as_url | as_html


class Redactor:
    """Replaces every encoding of the given secrets (those long enough to recognise)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = {form for s in secrets if len(s) >= SECRET_MIN_LENGTH for form in encodings(s)}
        # Longest first, so a form that contains another is replaced whole.
        self._forms = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, self._forms))) if forms else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def mask(self, text: str, *, cut: bool = False) -> str:
        """`text` with every secret masked; with `cut`, also a secret's beginning at its end."""
        if self._pattern is None:
            return text
        text = self._pattern.sub(SECRET_MASK, text)
        return self._mask_tail(text) if cut else text

    def _mask_tail(self, text: str) -> str:
        """Mask the longest end of `text` that is how one of the secrets begins."""
        longest = 0
        for form in self._forms:
            start = max(len(text) - len(form) + 1, 0)
            while (found := text.find(form[0], start)) != -1:
                if form.startswith(text[found:]):
                    longest = max(longest, len(text) - found)
                    break
                start = found + 1
        return text[: len(text) - longest] + SECRET_MASK if longest else text


@functools.lru_cache(maxsize=1024)
def redactor(secrets: tuple[str, ...]) -> Redactor:
    """The redactor of these secrets, built once (deliveries repeat the same few configs)."""
    return Redactor(secrets)
