"""Shared pieces of the scheduler-event decoders: the error record and small
pure helpers (integer, boolean and RFC 3339 parsing).

Every public decoder in :mod:`scheduler_events.decoders` returns a result
object with an ``errors`` tuple of :class:`DecodeError` instead of raising.
``DecodeError.code`` is one of :data:`ERROR_CODES` (a bounded set, safe as a
metric label); ``DecodeError.fragment`` is the offending raw text, cut to
:data:`MAX_FRAGMENT` characters, so a caller can count the skip by kind and
log what was skipped.

Public API::

    DecodeError(code, fragment)            # frozen dataclass
    ERROR_CODES                            # frozenset of the codes
    error(code, fragment) -> DecodeError   # clamps code and fragment
    parse_go_int(text, bits=64) -> int | None
    parse_go_bool(text) -> bool | None
    parse_rfc3339(text) -> datetime | None # aware datetime (UTC offset kept)
    never_raises(fallback)                 # decorator: an escaped exception -> ``internal`` error
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, TypeVar

#: Bounded ``DecodeError.code`` values.
#:
#: ``bad_type``      the input is not the expected Python type (not a str / dict)
#: ``empty``         an empty value where content is required
#: ``bad_json``      JSON that does not parse
#: ``bad_shape``     JSON or dict with the wrong structure / a required field missing
#: ``field_count``   a delimited record with the wrong number of fields
#: ``bad_int``       a field that should be an integer is not (or is out of range)
#: ``bad_float``     a field that should be a number is not
#: ``bad_bool``      a field that should be a Go boolean is not
#: ``bad_time``      a timestamp in no documented form
#: ``no_terminator`` a colon-form node register value without any ``:``
#: ``no_match``      text that matches none of the documented grammars
#: ``unknown_value`` a value outside a documented enumeration (e.g. bind phase)
#: ``truncated``     text that was cut (event note limit) and parsed partially
#: ``too_deep``      recursion limit reached (nested ``preemption:`` parts)
#: ``internal``      a decoder bug caught by the never-raise guard
ERROR_CODES = frozenset(
    {
        "bad_type",
        "empty",
        "bad_json",
        "bad_shape",
        "field_count",
        "bad_int",
        "bad_float",
        "bad_bool",
        "bad_time",
        "no_terminator",
        "no_match",
        "unknown_value",
        "truncated",
        "too_deep",
        "internal",
    }
)

#: Longest raw fragment kept in a :class:`DecodeError`.
MAX_FRAGMENT = 200


@dataclass(frozen=True, slots=True)
class DecodeError:
    """One skipped or partially decoded piece of input.

    ``code``: one of :data:`ERROR_CODES`.
    ``fragment``: the raw text that was skipped, at most :data:`MAX_FRAGMENT`
    characters (longer text is cut and ends with ``…``).
    """

    code: str
    fragment: str


def error(code: str, fragment: Any) -> DecodeError:
    """Build a :class:`DecodeError`; an unknown ``code`` becomes ``internal``
    and a non-string fragment is rendered with ``repr``."""
    if code not in ERROR_CODES:
        code = "internal"
    text = fragment if isinstance(fragment, str) else repr(fragment)
    if len(text) > MAX_FRAGMENT:
        text = text[: MAX_FRAGMENT - 1] + "…"
    return DecodeError(code, text)


_INT_RE = re.compile(r"[+-]?[0-9]+")


def parse_go_int(text: Any, bits: int = 64) -> int | None:
    """Parse a base-10 integer the way Go's ``strconv.ParseInt(s, 10, bits)``
    does (optional sign, digits only, no spaces, no underscores); ``None``
    when it does not parse or is out of the signed ``bits`` range."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        value = text
    elif isinstance(text, str) and _INT_RE.fullmatch(text):
        value = int(text)
    else:
        return None
    limit = 1 << (bits - 1)
    if not -limit <= value < limit:
        return None
    return value


_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_go_bool(text: Any) -> bool | None:
    """Parse a boolean the way Go's ``strconv.ParseBool`` does
    (``1 t T TRUE true True`` / ``0 f F FALSE false False``); ``None`` otherwise."""
    if isinstance(text, bool):
        return text
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    return None


_RFC3339_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def parse_rfc3339(text: Any) -> datetime | None:
    """Parse a Kubernetes ``Time``/``MicroTime`` (RFC 3339, e.g.
    ``2025-10-20T03:07:02Z`` or ``2025-10-20T03:07:02.123456Z``) into an aware
    :class:`datetime`; fractions beyond microseconds are cut.  ``None`` when
    the text is not RFC 3339 with a zone."""
    if not isinstance(text, str) or not _RFC3339_RE.fullmatch(text):
        return None
    head, frac, zone = text, "", ""
    if text[-1] in "Zz":
        head, zone = text[:-1], "+00:00"
    else:
        head, zone = text[:-6], text[-6:]
    if "." in head:
        head, frac = head.split(".", 1)
        frac = "." + frac[:6].ljust(6, "0")
    try:
        return datetime.fromisoformat(head.replace("t", "T").replace(" ", "T") + frac + zone)
    except ValueError:
        return None


R = TypeVar("R")


def never_raises(fallback: Callable[[Any, DecodeError], R]) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Decorator for public decoders: an unexpected exception becomes
    ``fallback(first_argument, error("internal", ...))`` instead of escaping."""

    def wrap(func: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> R:
            try:
                return func(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the contract is "never raise"
                raw = args[0] if args else None
                return fallback(raw, error("internal", f"{type(exc).__name__}: {exc}"))

        return guarded

    return wrap
