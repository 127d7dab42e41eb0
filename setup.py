"""Build script: compiles mcstore's per-result core with mypyc where it can, else installs pure Python.

The compiled core is the very same source as the pure one: ``mcstore/_bytes.py`` (the byte
helpers), ``mcstore/model.py`` and ``mcstore/codec.py`` are copied, for the duration of the
build, to ``mcstore/_native/`` and compiled there by mypyc (from the ``mypy`` distribution, a
build requirement from PyPI), as one group, into the extension modules ``mcstore._native._bytes``,
``mcstore._native.model`` and ``mcstore._native.codec``; beside them,
``mcstore/_kwcall.c`` becomes ``mcstore._native._kwcall``, which lets the compiled classes take
keyword arguments as fast as positional ones. Each copy ends
with the SHA-256 of its source, so that ``mcstore._select`` can refuse a compiled module that
is older than the source beside it. The ``.py`` files stay the pure path; ``mcstore._select``
chooses between the two once, at import (``MCSTORE_PURE=1`` forces pure Python).

If mypyc or the C compiler is missing or fails, the build warns and installs pure Python.
Editable installs (``pip install -e .``) compile into the source tree: after changing
a module of the core, re-run ``pip install -e .`` (``make`` does it, because its install stamp
depends on their files); until then ``import mcstore`` warns and uses pure Python.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
CORE = ("_bytes", "model", "codec")  # mcstore._select.CORE_MODULES, in the same order
KWCALL = "_kwcall"
NATIVE_DIR = Path("mcstore", "_native")
DIGEST_NAME = "MCSTORE_SOURCE_SHA256"


def _warn(message: str) -> None:
    # pip shows a build backend's stderr with -v only; the warning also goes to the import
    # (mcstore.COMPILED is False), and `mcstore --version` says which path is in use.
    sys.stderr.write(f"\nWARNING: mcstore: {message}; installing the pure-Python core instead.\n\n")


class OptionalMypycBuild(build_ext):
    """``build_ext`` that compiles the core with mypyc, and falls back to pure Python on failure."""

    def finalize_options(self) -> None:
        # Generate the C code here (once per process) rather than at import of setup.py, and
        # only for a command that builds: the frontend's metadata queries (egg_info, which
        # also finalizes build_ext) must not run mypyc.
        builds = _BUILD_COMMANDS & set(self.distribution.commands)
        self.distribution.ext_modules = _mypyc_extensions() if builds else []
        super().finalize_options()

    def run(self) -> None:
        if not self.extensions:
            self._remove_old_outputs()
            return
        try:
            super().run()
        except Exception as exc:  # no compiler, a compile error, a link error
            _warn(f"the C build of the core failed ({exc!r})")
            self._remove_old_outputs()
            self.extensions = []
            self.distribution.ext_modules = []

    def _remove_old_outputs(self) -> None:
        # A compiled core left by an earlier build (or half of one) must not be installed
        # beside the pure one: it would be stale, or one module without the other.
        for base in [Path(self.build_lib), *([ROOT] if self.inplace else [])]:
            for pattern in (f"{NATIVE_DIR}/*.so", f"{NATIVE_DIR}/*.pyd", "mcstore/_native__mypyc*"):
                for path in base.glob(pattern):
                    path.unlink()


_BUILD_COMMANDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "install", "develop"}


@functools.cache
def _mypyc_extensions() -> list[Extension]:
    """mypyc's extensions for the core, or none (with a warning) if mypyc cannot make them."""
    if os.environ.get("MCSTORE_PURE_BUILD", "") not in ("", "0"):
        _warn("MCSTORE_PURE_BUILD is set")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        _warn(f"mypyc is not available ({exc})")
        return []
    copies = [ROOT / NATIVE_DIR / f"{name}.py" for name in CORE]
    cwd = os.getcwd()
    try:
        for name, copy in zip(CORE, copies, strict=True):
            source = (ROOT / "mcstore" / f"{name}.py").read_bytes()
            digest = hashlib.sha256(source).hexdigest()
            copy.write_bytes(source + f'\n{DIGEST_NAME} = "{digest}"\n'.encode())
        os.chdir(ROOT)
        extensions: list[Extension] = mypycify(
            # The rest of the package is only read for its types (errors.py), and its
            # dependencies (trio...) need not be installed in the build environment.
            ["--follow-imports=silent", "--ignore-missing-imports"]
            + [str(NATIVE_DIR / f"{name}.py") for name in CORE],
            opt_level="3",
            group_name="mcstore._native",
        )
    except (Exception, SystemExit) as exc:  # mypyc exits on a type error
        _warn(f"mypyc could not compile the core ({exc!r})")
        return []
    finally:
        os.chdir(cwd)
        for copy in copies:
            copy.unlink(missing_ok=True)
    for ext in extensions:
        ext.sources = [s if os.path.isabs(s) else str(ROOT / s) for s in ext.sources]
        ext.include_dirs = [d if os.path.isabs(d) else str(ROOT / d) for d in ext.include_dirs]
    # Keyword calls of the compiled classes at positional speed (see the file; _select installs it).
    extensions.append(Extension(f"mcstore._native.{KWCALL}", sources=[f"mcstore/{KWCALL}.c"]))
    return extensions


setup(
    # A placeholder, replaced by mypyc's extensions when build_ext runs: it makes setuptools
    # run build_ext (and tag the wheel for this platform) without running mypyc for every
    # metadata query of the build frontend.
    ext_modules=[Extension("mcstore._native._placeholder", sources=[])],
    cmdclass={"build_ext": OptionalMypycBuild},
)
