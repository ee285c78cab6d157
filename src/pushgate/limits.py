"""The limits of what pushgate accepts, and the checks that apply them.

Every string and number that can reach the store has a limit here (or beside the field that
owns it, named in docs/security.md), checked in the domain before anything is written. The
checks are pushgate's own, so SQLite and PostgreSQL give the same answer: left to themselves,
SQLite keeps a 1 MB value in a `VARCHAR(64)` that PostgreSQL refuses, and neither stores U+0000
in text or an unpaired surrogate (which is not UTF-8) anywhere. A refusal is an
`InvalidRequest` that names the field. Everything here is pure.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, NoReturn

from pushgate.errors import InvalidRequest

# A batch of 1,000 rich audit entries fits comfortably; 8 such bodies in flight stay under 100 MiB.
DEFAULT_REQUEST_SIZE_LIMIT = 10 * 1024 * 1024
# A LaunchDarkly entry with a large flag's before-and-after versions is a few tens of KiB.
DEFAULT_EVENT_SIZE_LIMIT = 256 * 1024
# Deeper JSON than this is refused. LaunchDarkly audit entries nest about 8 levels (a flag's
# `currentVersion.environments.<env>.rules[].clauses[].values[]`); Python's own parser gives
# up near 1,000, and every later recursive walk (encoding, templates) would too.
MAX_JSON_DEPTH = 64
# Names of configurations and tokens: the width of their database columns.
NAME_LIMIT = 256
# Each string of a configuration's `config`: room for the longest URL browsers and servers
# commonly accept (2,048 characters); API keys and tokens are far shorter.
CONFIG_TEXT_LIMIT = 2048
# Configuration tags: how many, and how long each (LaunchDarkly's own tag limit is 64).
MAX_TAGS = 64
TAG_LIMIT = 64
# The largest row id SQLite and PostgreSQL can store (BIGINT); a larger `before` finds nothing.
MAX_ROW_ID = 2**63 - 1
# Configuration and token ids are 24 lower-case hex digits (12 random bytes), LaunchDarkly's shape.
STORED_ID = re.compile(r"[0-9a-f]{24}")

# Control characters (C0, DEL, C1) and surrogates: never part of a name, a tag or a config value.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# A plain object key can be shown as `.key` in a path; any other is shown JSON-quoted.
_PLAIN_KEY = re.compile(r"[A-Za-z_$@][\w$@-]{0,63}")


def refuse(where: str, problem: str) -> NoReturn:
    """Raise the `InvalidRequest` that names `where`."""
    raise InvalidRequest(f"{where}: {problem}")


def check_text(
    value: object, where: str, *, limit: int, empty: bool = False, forbid: str = ""
) -> str:
    """`value` when it is a string of at most `limit` characters with no control character
    or surrogate (and none of `forbid`); non-empty unless `empty`."""
    if not isinstance(value, str):
        refuse(where, "must be a string")
    if not value and not empty:
        refuse(where, "must not be empty")
    if len(value) > limit:
        refuse(where, f"must be at most {limit} characters, not {len(value)}")
    if _CONTROL.search(value):
        refuse(where, "must not contain control characters")
    for char in forbid:
        if char in value:
            refuse(where, f"must not contain {char!r}")
    return value


def key_path(where: str, key: str) -> str:
    """`where.key`, or `where["odd key"]` (ASCII-escaped) when the key is not a plain name."""
    if _PLAIN_KEY.fullmatch(key):
        return f"{where}.{key}"
    return f"{where}[{json.dumps(key)}]"


def parse_json(body: bytes, where: str = "body") -> Any:
    """Parse a JSON document and check it with `check_json`; `InvalidRequest` when it fails.

    `NaN`, `Infinity` and numbers too large for a float (`1e400`) are refused: they are not
    JSON, and PostgreSQL refuses to store them.
    """
    try:
        value = json.loads(body, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        refuse(where, f"nested deeper than {MAX_JSON_DEPTH} levels")
    except ValueError as error:
        refuse(where, f"not valid JSON ({_ascii(str(error))})")
    # Escapes are the only way a JSON text spells U+0000 or a lone surrogate.
    check_json(value, where, strings=b"\\u" in body)
    return value


def check_json(value: Any, where: str, *, strings: bool = True) -> None:
    """Refuse JSON nested deeper than `MAX_JSON_DEPTH`, and (when `strings`) any string or key
    holding U+0000 or an unpaired surrogate. Iterative: depth costs no Python stack.

    A first walk only looks; the path that names the problem is built by a second walk, run
    only when the first found one (every event goes through the first).
    """
    if not _has_problem(value, strings=strings):
        return
    pending: list[tuple[Any, str, int]] = [(value, where, 0)]
    while pending:
        item, path, depth = pending.pop()
        if isinstance(item, dict | list) and depth >= MAX_JSON_DEPTH:
            refuse(path, f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            for key, child in item.items():
                if strings:
                    _check_storable(key, f"{path} (a key)")
                pending.append((child, key_path(path, key), depth + 1))
        elif isinstance(item, list):
            pending.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
        elif strings and isinstance(item, str):
            _check_storable(item, path)


def _has_problem(value: Any, *, strings: bool) -> bool:
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            if depth >= MAX_JSON_DEPTH:
                return True
            if strings and not all(_storable(key) for key in item):
                return True
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            if depth >= MAX_JSON_DEPTH:
                return True
            pending.extend((child, depth + 1) for child in item)
        elif strings and isinstance(item, str) and not _storable(item):
            return True
    return False


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _check_storable(text: str, where: str) -> None:
    if "\x00" in text:
        refuse(where, "must not contain U+0000")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            refuse(where, "must not contain an unpaired surrogate (it is not UTF-8)")


def _ascii(text: str) -> str:
    """`text` safe to echo in an error message: surrogates and controls escaped."""
    return text if text.isprintable() and text.isascii() else json.dumps(text)[1:-1]


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"the number {text[:40]} is too large")
    return number
