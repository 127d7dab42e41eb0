"""The namespace lock: one open store per namespace, across threads and processes.

The lock is an advisory ``flock`` on a small sidecar file next to the database, one file per
namespace. ``flock`` belongs to the open file description, so two opens in one process
conflict just as two processes do, and the kernel drops the lock when the process dies:
a crashed writer never leaves a namespace locked.

A lock file can be deleted or replaced behind a store's back (``rm``, an editor, a careless
``export -o``); the next opener then creates a new file and locks it, and two stores would
write one namespace. The lock alone cannot see that, so every store also holds a fencing
token in the database (see :class:`~mcstore.backends.SQLiteBackend`): the lock keeps a second
store out, the token keeps an ousted one from writing.

Lock files are created private (mode 0600) and never through a symbolic link: a link at the
lock path is refused, so that a planted link cannot make the store create or lock its target.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import stat
from typing import Final

from ..errors import StoreError, StoreLocked

__all__ = ["LOCK_SUFFIX", "NamespaceLock", "is_lock_path", "legacy_lock_path", "lock_path_for"]

LOCK_SUFFIX: Final = ".lock"

# Namespaces that are safe as a file-name suffix are used as they are, so an operator can
# see which lock file belongs to which namespace; anything else is hashed.
_PLAIN_NAMESPACE: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SEPARATOR: Final = "@"
"""Between the database's name and the namespace's part. It cannot occur in a namespace's part
(neither plain nor hashed), so the last one in a lock file's name says where the database's
name ends: two different (database, namespace) pairs never share a lock file."""
_HASHED: Final = "~"
"""Starts the hashed form of a namespace. It cannot occur in a plain namespace, so no literal
namespace has the name of a hashed one."""


def _namespace_part(namespace: str) -> str:
    if _PLAIN_NAMESPACE.fullmatch(namespace):
        return namespace
    # surrogatepass: any str namespace has a name, even one that is not valid UTF-8.
    return _HASHED + hashlib.sha256(namespace.encode("utf-8", "surrogatepass")).hexdigest()


def lock_path_for(db_path: str, namespace: str) -> str:
    """Return the path of the lock file that guards ``namespace`` of the database ``db_path``:
    ``<db>@<namespace>.lock`` for a plain namespace (letters, digits, ``_.-``, at most 64),
    ``<db>@~<sha256 of the namespace, hex>.lock`` for any other.

    One-to-one: distinct (database, namespace) pairs get distinct paths (the hashed form up to
    a SHA-256 collision). The database path is resolved first, so that a symlink to the
    database shares its lock. (Two hard links to one file do not; mcstore assumes a database
    has one name.)
    """
    return f"{os.path.realpath(db_path)}{_SEPARATOR}{_namespace_part(namespace)}{LOCK_SUFFIX}"


def legacy_lock_path(db_path: str, namespace: str) -> str:
    """The lock file of ``namespace`` as mcstore named it before schema version 2,
    ``<db>.<namespace>.lock`` (``<db>.h<24 hex>.lock`` hashed).

    Those names could collide; they are used only while a version-1 database is migrated, to
    keep out an older mcstore that has the namespace open (see ``SQLiteBackend``)."""
    if _PLAIN_NAMESPACE.fullmatch(namespace):
        suffix = namespace
    else:
        suffix = "h" + hashlib.sha256(namespace.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return f"{os.path.realpath(db_path)}.{suffix}{LOCK_SUFFIX}"


def is_lock_path(db_path: str, path: str) -> bool:
    """Whether ``path`` is, or is named like, a lock file of some namespace of ``db_path``
    (either naming); both paths are resolved first."""
    db = os.path.realpath(db_path)
    target = os.path.realpath(path)
    return target.endswith(LOCK_SUFFIX) and target.startswith((db + _SEPARATOR, db + "."))


class NamespaceLock:
    """An exclusive, non-blocking lock on one namespace of one database file.

    ``legacy`` selects the lock file name of mcstore before schema version 2
    (:func:`legacy_lock_path`).
    """

    __slots__ = ("_fd", "created", "path")

    def __init__(self, db_path: str, namespace: str, *, legacy: bool = False) -> None:
        self.path = (legacy_lock_path if legacy else lock_path_for)(db_path, namespace)
        self._fd: int | None = None
        self.created = False
        """Whether :meth:`acquire` created the lock file (it did not exist before)."""

    def acquire(self) -> None:
        """Take the lock at once, or raise :class:`StoreLocked` if someone holds it.

        Creates the lock file, mode 0600, if it is missing. Raises :class:`StoreError` naming
        the path if it is a symbolic link or not a regular file, or cannot be created.
        """
        flags = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            try:
                fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o600)
                self.created = True
            except FileExistsError:
                fd = os.open(self.path, flags)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StoreError(
                    f"lock file {self.path!r} is a symbolic link; refusing to follow it (remove it if "
                    "no store of this mcstore is open on the database)"
                ) from None
            raise StoreError(f"cannot create lock file {self.path!r}: {exc.strerror or exc}") from exc
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StoreError(f"lock file {self.path!r} is not a regular file; refusing to use it")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreLocked(
                    f"namespace is already open in another store (lock file {self.path!r})"
                ) from None
            except OSError as exc:
                raise StoreError(f"cannot lock {self.path!r}: {exc}") from exc
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Drop the lock. Harmless if it is not held."""
        fd, self._fd = self._fd, None
        if fd is not None:
            # Closing the descriptor releases the flock; the file stays, because removing it
            # would race with another opener that already has it open.
            os.close(fd)
