"""Locations: which backend a location names, and what of it may be shown.

A *location* is what a caller passes to :func:`mcstore.open_store` or
:func:`mcstore.backends.open_reader`: a file path, or a ``postgresql://`` (``postgres://``) URL.

* :func:`classify_location` is the one place that decides which backend a location names, and
  refuses a location that is not durable storage (``''``, ``':memory:'``, a ``file:`` URI) with
  :class:`InvalidLocation`, a ``ValueError``, before anything is opened.
* :func:`redact_location` is the one place that turns a location into text that may be shown:
  every message, log line, ``repr`` and exception of mcstore and of its CLI that names a
  location goes through it. It removes the password of a URL (``user:password@``), whether or
  not the URL parses, and every ``password=`` / ``sslpassword=`` setting, of a URL's query or of
  a libpq ``key=value`` string. The rest is shown as written (a multi-host URL keeps its hosts
  and ports as given).
* :class:`LocationError` (a :class:`~mcstore.StoreError`) is a location a reader cannot use,
  :class:`InvalidLocation` one that mcstore refuses outright; both show it redacted.
* :func:`scrub_secrets` is the last line of defence for text that mcstore did not write, such as
  a driver's error message that may echo a connection string: it replaces every form of every
  password that mcstore has seen in a location (:func:`remember_secrets`) by ``***``, and
  redacts every URL in the text. A filter on the ``mcstore`` logger applies it to every record.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Final, Literal, TypeGuard
from urllib.parse import unquote

from ..errors import StoreError

__all__ = [
    "MASK",
    "POSTGRES_SCHEMES",
    "InvalidLocation",
    "LocationError",
    "LocationKind",
    "classify_location",
    "is_postgres_url",
    "password_forms",
    "redact_location",
    "remember_secrets",
    "scrub_secrets",
]

POSTGRES_SCHEMES: Final = ("postgresql://", "postgres://")
"""A location that starts with one of these (in any case) is a PostgreSQL connection URL."""

MASK: Final = "***"
"""What :func:`scrub_secrets` puts where a password was."""

LocationKind = Literal["postgres", "sqlite"]
"""What :func:`classify_location` returns: the backend a location is for."""

_SECRET_KEYS: Final = frozenset({"password", "sslpassword"})
"""libpq settings that hold a secret (the password, and the passphrase of the client key)."""

_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_URL_IN_TEXT: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"']+")
_CONNINFO_SECRET: Final = re.compile(r"(?:ssl)?password\s*=", re.IGNORECASE)
_BAD_PERCENT: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
_MIN_FRAGMENT: Final = 4
"""Shortest piece of a password that does not parse which :func:`password_forms` still lists:
shorter ones would mask common words."""


class LocationError(StoreError):
    """A database location that a read-only reader cannot use: missing, not a database, not
    mcstore's, of a newer schema version, or unreadable.

    Raised by :func:`mcstore.backends.open_reader`, which never creates or repairs anything.
    ``location`` is the file or server as :func:`~mcstore.backends.redact_location` shows it
    (never a password), ``problem`` what is wrong with it;
    the message is ``"<location>: <problem>"``.
    """

    def __init__(self, location: str, problem: str) -> None:
        # Whoever raises it passes the location as given; it is shown without its password.
        shown = redact_location(location)
        super().__init__(f"{shown}: {problem}")
        self.location = shown
        self.problem = problem


class InvalidLocation(ValueError):
    """A location that mcstore refuses: not durable storage, or a URL that cannot be read safely.

    The message names the location as :func:`redact_location` shows it, and says what to give
    instead. ``location`` is that shown form.
    """

    def __init__(self, location: object, problem: str) -> None:
        self.location = redact_location(location)
        self.problem = problem
        super().__init__(f"{self.location!r}: {problem}")


def is_postgres_url(location: object) -> TypeGuard[str]:
    """True if ``location`` is a ``postgresql://`` or ``postgres://`` URL (any case)."""
    return isinstance(location, str) and location.lower().startswith(POSTGRES_SCHEMES)


def classify_location(location: object) -> LocationKind:
    """The backend ``location`` is for: ``"postgres"`` for a PostgreSQL URL, else ``"sqlite"``.

    Refuses, with :class:`InvalidLocation` (a ``ValueError``) naming the location:

    * ``''``: SQLite's private temporary database, deleted when it closes;
    * ``':memory:'``: SQLite's private in-memory database;
    * any ``file:`` URI: SQLite reads it as a URI, which can name an in-memory or a temporary
      database (``file::memory:``, ``mode=memory``, ``file:``); give the file's path instead
      (``./file:x`` for a file whose name starts with ``file:``);
    * any other URL (``scheme://...``), such as a misspelt ``postgresql://``: it would
      otherwise be taken for a file path, and shown in messages;
    * a PostgreSQL URL whose user name or password holds an ``@``, ``/``, ``?`` or ``#`` that is
      not percent-encoded, or with a ``%`` that does not start a ``%XX`` escape: libpq would
      read another password and host than the ones meant, and echo parts of them in its errors.

    Raises ``TypeError`` for a value that is neither ``str`` nor ``os.PathLike[str]``. The
    passwords of every location it is given are remembered for :func:`scrub_secrets`.
    """
    if isinstance(location, os.PathLike):
        location = os.fspath(location)
    if not isinstance(location, str):
        raise TypeError(f"location must be a file path or a postgresql:// URL, got {_describe_other(location)}")
    remember_secrets(location)
    if is_postgres_url(location):
        _check_postgres_url(location)
        return "postgres"
    if location == "":
        raise InvalidLocation(location, "is SQLite's private temporary database, lost when it closes; "
                                        "give a file path or a postgresql:// URL")
    if location == ":memory:":
        raise InvalidLocation(location, "is SQLite's private in-memory database, lost when it closes; "
                                        "give a file path or a postgresql:// URL")
    if _SCHEME.match(location):
        raise InvalidLocation(location, "is a URL of a kind mcstore does not know; give a file path or a "
                                        "postgresql:// URL")
    if location[:5].lower() == "file:":
        raise InvalidLocation(location, "SQLite would read it as a URI, which can name an in-memory or "
                                        "temporary database; give the database file's path (./file:... for "
                                        "a file whose name starts with 'file:')")
    return "sqlite"


def _describe_other(value: object) -> str:
    """A value that is not a location, for an error message: numbers and None as they are,
    bytes redacted, anything else by its type (its repr might hold anything)."""
    if value is None or isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, bytes):
        return f"bytes {redact_location(value)!r}"
    return f"a {type(value).__name__}"


def _check_postgres_url(url: str) -> None:
    parts = _split_url(url)
    if parts.ambiguous:
        raise InvalidLocation(url, "an '@', '/', '?' or '#' in the user name or password, and an '@' "
                                   "after the host, must be percent-encoded (%40, %2F, %3F, %23)")
    if parts.userinfo is not None and parts.userinfo.count("@"):
        raise InvalidLocation(url, "an '@' in the user name or password must be percent-encoded as %40")
    if parts.userinfo is not None and _BAD_PERCENT.search(parts.userinfo):
        raise InvalidLocation(url, "the user name or password holds a '%' that does not start a %XX "
                                   "escape (write '%' as %25)")
    if _BAD_PERCENT.search(parts.rest):
        raise InvalidLocation(url, "a '%' that does not start a %XX escape (write '%' as %25)")


# -- the parts of a URL, whether or not it parses ---------------------------------------------


class _UrlParts:
    """A URL cut as RFC 3986 does, and as leniently as a password that does not parse needs.

    ``scheme`` ends with ``://``; ``userinfo`` is everything before the host's ``@`` (None
    without one); ``rest`` is the hosts, ports, path, query and fragment as written.
    ``ambiguous`` is set when an ``@`` comes after the host part (whether or not one comes
    before it): the user name or password may then hold an unencoded ``/``, ``?``, ``#`` or
    ``@``, and everything up to the last ``@`` is taken as the user info; such a URL is
    refused, and shown as its scheme and user name alone, so that no password (in the user
    info or in a query parameter) is ever shown. (Write an ``@`` in a path or query ``%40``.)
    """

    __slots__ = ("ambiguous", "rest", "scheme", "userinfo")

    def __init__(self, scheme: str, userinfo: str | None, rest: str, ambiguous: bool) -> None:
        self.scheme = scheme
        self.userinfo = userinfo
        self.rest = rest
        self.ambiguous = ambiguous

    @property
    def user(self) -> str | None:
        """The user name: the user info up to its first ':' (or, when ambiguous, '/', '?', '#')."""
        return None if self.userinfo is None else re.split(r"[:/?#]", self.userinfo, maxsplit=1)[0]

    @property
    def password(self) -> str | None:
        if self.userinfo is None or ":" not in self.userinfo:
            return None
        return self.userinfo.partition(":")[2]


def _split_url(text: str) -> _UrlParts:
    match = _SCHEME.match(text)
    assert match is not None
    scheme, after = text[: match.end()], text[match.end() :]
    end = min((i for i in (after.find(c) for c in "/?#") if i >= 0), default=len(after))
    authority = after[:end]
    at = authority.rfind("@")
    if "@" in after[end:]:
        # An '@' after the host part: the user info may hold an unencoded '/', '?' or '#' (and
        # its '@' be the password's own, as in 'u:@/pw@host'). Take everything up to the last
        # '@' as the user info, so that no piece of a password is ever shown as a host or path.
        last = after.rfind("@")
        return _UrlParts(scheme, after[:last], after[last + 1 :], True)
    if at < 0:
        return _UrlParts(scheme, None, after, False)
    # The last '@' of the host part, as browsers read it: an unencoded '@' in the password
    # stays out of the host (libpq splits at the first one; such URLs are refused anyway).
    return _UrlParts(scheme, authority[:at], after[at + 1 :], False)


def _query_params(rest: str) -> tuple[str, list[str], str]:
    """``rest`` cut into what comes before its query, the query's ``&``-separated items, and
    its fragment (with its ``#``)."""
    head, mark, query = rest.partition("?")
    if not mark:
        return rest, [], ""
    query, hash_mark, fragment = query.partition("#")
    return head, query.split("&"), hash_mark + fragment


_KEYWORD_ITEM: Final = re.compile(r"[a-z_]+=")
"""A query item that starts as a libpq parameter does (its keywords are lower case)."""


def _is_secret_param(item: str) -> bool:
    return unquote(item.partition("=")[0]).strip().lower() in _SECRET_KEYS


def _redact_url(text: str) -> str:
    parts = _split_url(text)
    if parts.ambiguous:
        # Where the user info ends cannot be told, so neither can where a password (in it or
        # in a query parameter) ends: show the scheme and the user name only.
        return f"{parts.scheme}{parts.user}@..."
    head, items, fragment = _query_params(parts.rest)
    kept: list[str] = []
    secret = False
    for item in items:
        if _is_secret_param(item):
            secret = True
        elif not secret or _KEYWORD_ITEM.match(item):
            # After a password, only what reads as a libpq parameter (a lower-case keyword and
            # '='): anything else may be the rest of a password with an unencoded '&'.
            kept.append(item)
    query = ("?" + "&".join(kept)) if kept else ""
    user = "" if parts.userinfo is None else f"{parts.user}@"
    # A fragment after a password may be the rest of it (an unencoded '#'): not shown.
    return f"{parts.scheme}{user}{head}{query}{'' if secret else fragment}"


# -- libpq key=value strings ------------------------------------------------------------------


def _conninfo_items(text: str) -> Iterator[tuple[str, str, str]]:
    """``(key, raw text of the item, value as libpq reads it)`` for each item of a libpq
    ``key=value`` string; stops at the first item that does not parse, yielding what is left
    as a last item with the key ``""``."""
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return
        start = i
        while i < n and text[i] != "=" and not text[i].isspace():
            i += 1
        key = text[start:i]
        while i < n and text[i].isspace():
            i += 1
        if i >= n or text[i] != "=" or not key:
            yield "", text[start:], ""
            return
        i += 1
        while i < n and text[i].isspace():
            i += 1
        value: list[str] = []
        quoted = i < n and text[i] == "'"
        if quoted:
            i += 1
        while i < n:
            c = text[i]
            if c == "\\" and i + 1 < n:
                value.append(text[i + 1])
                i += 2
                continue
            if (quoted and c == "'") or (not quoted and c.isspace()):
                break
            value.append(c)
            i += 1
        if quoted:
            if i >= n:  # no closing quote: the rest is the value
                yield key, text[start:], "".join(value)
                return
            i += 1
        yield key, text[start:i], "".join(value)


def _redact_conninfo(text: str) -> str:
    kept: list[str] = []
    for key, raw, _value in _conninfo_items(text):
        if not key:
            # Unparseable from here on: a secret may be anywhere in it.
            kept.append("...")
            break
        if key.lower() not in _SECRET_KEYS:
            kept.append(raw)
    return " ".join(kept)


# -- what may be shown --------------------------------------------------------------------------


def _as_text(location: object) -> str | None:
    if isinstance(location, os.PathLike):
        location = os.fspath(location)
    if isinstance(location, bytes):
        return location.decode("utf-8", "backslashreplace")
    return location if isinstance(location, str) else None


def redact_location(location: object) -> str:
    """``location`` as it may be shown: without any password (see the module docstring).

    Never raises. A URL (any ``scheme://``) loses the password of its user info and its
    ``password`` and ``sslpassword`` query parameters, and keeps the rest as written; a libpq
    ``key=value`` string loses its ``password`` and ``sslpassword`` items (and everything after
    an item that does not parse); a path is shown as it is. A value that is not text (nor
    ``os.PathLike``, nor bytes) is shown as the name of its type, in angle brackets.
    """
    text = _as_text(location)
    if text is None:
        return f"<{type(location).__name__}>"
    if _SCHEME.match(text):
        return _redact_url(text)
    if _CONNINFO_SECRET.search(text):
        return _redact_conninfo(text)
    return text


def password_forms(location: object) -> frozenset[str]:
    """Every form in which the passwords of ``location`` may appear in a message.

    For a URL: its password as written, percent-decoded, and, when the URL does not parse,
    the pieces a parser might take for a password or a host (at least 4 characters each);
    the values of its ``password``/``sslpassword`` query parameters, as written and decoded.
    For a libpq ``key=value`` string: those values as written and as libpq reads them. Empty
    for a location without a password.
    """
    text = _as_text(location)
    if text is None:
        return frozenset()
    forms: set[str] = set()
    urls = [text] if _SCHEME.match(text) else _URL_IN_TEXT.findall(text) if "://" in text else []
    for url in urls:
        forms.update(_url_password_forms(url))
    if _CONNINFO_SECRET.search(text):
        for key, raw, value in _conninfo_items(text):
            if key.lower() in _SECRET_KEYS:
                forms.update((value, raw.partition("=")[2].strip()))
    # A form of blanks only would mask every run of blanks in a message.
    return frozenset(form for form in forms if form.strip())


def _url_password_forms(url: str) -> set[str]:
    parts = _split_url(url)
    forms: set[str] = set()
    password = parts.password
    if password:
        forms.update((password, unquote(password, errors="replace")))
        if parts.ambiguous or "@" in password:
            # A parser that splits elsewhere (libpq takes the first '@', and ends the host
            # part at the first '/') may show any of these pieces as a password or a host.
            forms.update(piece for piece in re.split(r"[@/?#:]", parts.userinfo or "") if len(piece) >= _MIN_FRAGMENT)
    # The query as a parser that ends the user info at the first '?' would read it.
    _head, items, _fragment = _query_params(url)
    for item in items:
        if _is_secret_param(item):
            value = item.partition("=")[2]
            forms.update((value, unquote(value, errors="replace")))
    return forms


# -- the last line of defence -------------------------------------------------------------------

_lock = threading.Lock()
_remembered: frozenset[str] = frozenset()
_by_length: tuple[str, ...] = ()


def remember_secrets(*texts: object) -> None:
    """Remember every password form (:func:`password_forms`) of ``texts`` for :func:`scrub_secrets`.

    Every location mcstore classifies or connects to is remembered; the CLI also remembers
    each word of its command line. Kept for the life of the process (the process holds those
    locations anyway).
    """
    global _remembered, _by_length
    new: set[str] = set()
    for text in texts:
        new.update(password_forms(text))
    if not new or new <= _remembered:
        return
    with _lock:
        _remembered = _remembered | new
        # Longest first, so that a password is masked whole before any piece of it.
        _by_length = tuple(sorted(_remembered, key=len, reverse=True))


def scrub_secrets(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with every remembered password form (and those of ``extra``) replaced by
    :data:`MASK`, and every URL in it redacted (:func:`redact_location`)."""
    forms = _by_length
    if extra:
        forms = tuple(sorted(set(forms) | {form for form in extra if form}, key=len, reverse=True))
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda match: _redact_url(match.group()), text)
    return text


class _ScrubFilter(logging.Filter):
    """Scrubs each record's message and traceback (:func:`scrub_secrets`) before any handler
    formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: the handler reports it, with its own text
            return True
        clean = scrub_secrets(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub_secrets(logging.Formatter().formatException(record.exc_info))
        return True


SCRUB_FILTER: Final = _ScrubFilter()
"""The filter on the ``mcstore`` logger; the CLI puts it on its log handler too."""

logging.getLogger("mcstore").addFilter(SCRUB_FILTER)
