"""The namespace lock: one open store per namespace, across threads and processes.

The lock is an advisory ``flock`` on a small sidecar file next to the database, one file per
namespace. ``flock`` belongs to the open file description, so two opens in one process
conflict just as two processes do, and the kernel drops the lock when the process dies:
a crashed writer never leaves a namespace locked.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re

from ..errors import StoreError, StoreLocked

__all__ = ["NamespaceLock", "lock_path_for"]

# Namespaces that are safe as a file-name suffix are used as they are, so an operator can
# see which lock file belongs to which namespace; anything else is hashed.
_PLAIN_NAMESPACE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def lock_path_for(db_path: str, namespace: str) -> str:
    """Return the path of the lock file that guards ``namespace`` of the database ``db_path``.

    The path is resolved first, so that a symlink to the database shares its lock. (Two hard
    links to one file do not; mcstore assumes a database has one name.)
    """
    db_path = os.path.realpath(db_path)
    if _PLAIN_NAMESPACE.fullmatch(namespace):
        suffix = namespace
    else:
        suffix = "h" + hashlib.sha256(namespace.encode("utf-8")).hexdigest()[:24]
    return f"{db_path}.{suffix}.lock"


class NamespaceLock:
    """An exclusive, non-blocking lock on one namespace of one database file."""

    __slots__ = ("_fd", "path")

    def __init__(self, db_path: str, namespace: str) -> None:
        self.path = lock_path_for(db_path, namespace)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock at once, or raise :class:`StoreLocked` if someone holds it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot create lock file {self.path!r}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLocked(
                f"namespace is already open in another store (lock file {self.path!r})"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot lock {self.path!r}: {exc}") from exc
        self._fd = fd

    def release(self) -> None:
        """Drop the lock. Harmless if it is not held."""
        fd, self._fd = self._fd, None
        if fd is not None:
            # Closing the descriptor releases the flock; the file stays, because removing it
            # would race with another opener that already has it open.
            os.close(fd)
