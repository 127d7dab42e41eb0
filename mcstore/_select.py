"""The one place that chooses between the compiled core and pure Python, once, at import.

``mcstore._bytes``, ``mcstore.model`` and ``mcstore.codec`` have one source each. An install
with a working C compiler also has them compiled by mypyc (see ``setup.py``) as
``mcstore._native._bytes``, ``mcstore._native.model`` and ``mcstore._native.codec``.
:func:`select` runs first thing in ``mcstore/__init__.py``, before anything imports those
modules: it installs the compiled modules under the public names
(``sys.modules`` and the package attributes), so that ``mcstore.Hop``, ``mcstore.model.Hop``
and ``from mcstore.model import Hop`` are one and the same object whichever path is in use.
Exception classes live in the pure module ``mcstore.errors`` on both paths.

The pure path is used when ``MCSTORE_PURE`` is set to anything but ``""`` or ``"0"``, when no
compiled core is installed, and (with a warning) when the compiled core cannot be imported
or was built from a different source than the ``.py`` file beside it (an editable install
not rebuilt after an edit: run ``make`` or ``pip install -e .``).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

__all__ = ["CORE_MODULES", "select"]

CORE_MODULES = ("_bytes", "model", "codec")
"""The modules of the core, in import order (the model imports the byte helpers, the codec both)."""

_DIGEST_NAME = "MCSTORE_SOURCE_SHA256"  # appended to each compiled copy by setup.py


def pure_requested() -> bool:
    """True when the environment forces the pure-Python core (``MCSTORE_PURE=1``)."""
    return os.environ.get("MCSTORE_PURE", "") not in ("", "0")


def _load_compiled() -> list[ModuleType] | None:
    """Import the compiled core; None (with a warning if it exists but is unusable) otherwise."""
    package = Path(__file__).resolve().parent
    modules: list[ModuleType] = []
    for name in CORE_MODULES:
        try:
            module = importlib.import_module(f"mcstore._native.{name}")
        except (ImportError, ValueError) as exc:
            # ValueError: the compiled core was built against another ABI or API version of
            # librt (mypyc's runtime library), which it checks as it loads ("ABI version conflict
            # for librt.strings, ..."). Any other ValueError is a bug, and propagates.
            if isinstance(exc, ValueError) and "librt" not in str(exc):
                raise
            if any((package / "_native").glob(f"{name}.*.so")) or any((package / "_native").glob(f"{name}.*.pyd")):
                warnings.warn(f"mcstore: compiled core unusable ({exc}); using pure Python", RuntimeWarning, 3)
            return None
        source = package / f"{name}.py"
        expected = getattr(module, _DIGEST_NAME, None)
        if source.exists() and hashlib.sha256(source.read_bytes()).hexdigest() != expected:
            warnings.warn(
                f"mcstore: the compiled core is stale ({source} changed since it was built); using pure "
                "Python. Rebuild it with `make` or `pip install -e .`",
                RuntimeWarning,
                3,
            )
            return None
        modules.append(module)
    return modules


MODEL_CLASSES = ("Hop", "Route", "PaymentFailure", "PaymentResult")
"""The classes of the model users build (``mcstore._kwcall.c`` speeds up their keyword calls)."""


def _install_keyword_calls(model: ModuleType) -> None:
    """Let the compiled model classes take keyword arguments at the speed of positional ones
    (``mcstore/_kwcall.c``): each class's parameters that may be passed by position, in order,
    read from its signature. Without the extension (a build that has none), calls work as usual."""
    try:
        kwcall = importlib.import_module("mcstore._native._kwcall")
    except ImportError:
        return
    for name in MODEL_CLASSES:
        cls = getattr(model, name)
        try:
            params = inspect.signature(cls).parameters.values()
        except (TypeError, ValueError):  # no signature to read: the class is called as usual
            continue
        kwcall.install(cls, tuple(p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD))


def select() -> bool:
    """Install the compiled core under the public module names if it is usable; return whether it is.

    Must run before anything imports a module of the core (:data:`CORE_MODULES`).
    """
    if pure_requested():
        return False
    modules = _load_compiled()
    if modules is None:
        return False
    _install_keyword_calls(modules[CORE_MODULES.index("model")])
    package = sys.modules["mcstore"]
    for name, module in zip(CORE_MODULES, modules, strict=True):
        public = f"mcstore.{name}"
        sys.modules[public] = module
        setattr(package, name, module)
        # Classes report the public module, so that pickles name mcstore.model.Hop (valid on
        # both paths) rather than the private compiled module.
        for value in vars(module).values():
            if isinstance(value, type) and getattr(value, "__module__", None) == module.__name__:
                value.__module__ = public
    return True


COMPILED = select()
"""Whether the compiled core is in use; re-exported as ``mcstore.COMPILED``."""
