"""Tests of the choice between the compiled core and pure Python (mcstore._select).

The rest of the suite runs unchanged on both paths (``make test`` runs it twice, the second
time with ``MCSTORE_PURE=1``); these tests prove that the path in use is the one the
environment asks for, and that the public names do not depend on it.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import subprocess
import sys

import pytest
from click.testing import CliRunner

import mcstore
from mcstore import _bytes, _select, codec, errors, model
from mcstore.cli import cli


def compiled_build_present() -> bool:
    """True when this install has a compiled core (an extension module, not a .py)."""
    spec = importlib.util.find_spec("mcstore._native.model")
    return spec is not None and spec.origin is not None and not spec.origin.endswith(".py")


def test_compiled_flag_matches_the_environment() -> None:
    if _select.pure_requested():
        assert mcstore.COMPILED is False
        return
    # CI has a C compiler and sets MCSTORE_EXPECT_COMPILED=1: a build that silently fell back
    # to pure Python (or a stale compiled core) must fail here rather than test one path twice.
    if os.environ.get("MCSTORE_EXPECT_COMPILED") == "1":
        assert compiled_build_present(), "no compiled core installed: see the warning of pip install -v"
    # A compiled core that is installed is used (unless it is stale, which also fails here).
    assert mcstore.COMPILED is compiled_build_present()


def test_public_names_are_the_modules_in_use() -> None:
    assert sys.modules["mcstore.model"] is model is mcstore.model
    assert sys.modules["mcstore.codec"] is codec is mcstore.codec
    # Every module of the core, the byte helpers included, is on the path in use (a pure
    # helper module under a compiled model and codec would cost a Python call per field).
    for name in _select.CORE_MODULES:
        module = sys.modules[f"mcstore.{name}"]
        assert getattr(mcstore, name) is module
        assert (not module.__file__.endswith(".py") if module.__file__ else True) is mcstore.COMPILED
    # The byte helpers have one home, which both the model and the codec use.
    assert model.put_u64 is codec.put_u64 is _bytes.put_u64
    assert model.U64_MAX == codec.U64_MAX == _bytes.U64_MAX == 2**64 - 1
    for name in ("Hop", "Route", "PaymentFailure", "PaymentResult", "FAILURE_CODE_NAMES"):
        assert getattr(mcstore, name) is getattr(model, name)
    for name in ("encode_result", "decode_result"):
        assert getattr(mcstore, name) is getattr(codec, name)
    compiled = not model.__file__.endswith(".py") if model.__file__ else True
    assert compiled is mcstore.COMPILED
    assert (not codec.__file__.endswith(".py") if codec.__file__ else True) is mcstore.COMPILED
    for cls in (model.Hop, model.Route, model.PaymentFailure, model.PaymentResult):
        assert cls.__module__ == "mcstore.model"


def test_exceptions_are_the_pure_classes_on_both_paths() -> None:
    with pytest.raises(errors.DecodeError) as info:
        codec.decode_result(b"short", b"")
    assert type(info.value) is mcstore.DecodeError is errors.DecodeError
    assert sys.modules["mcstore.errors"].__file__.endswith(".py")  # type: ignore[union-attr]


def test_pickles_name_the_public_module() -> None:
    hop = model.Hop(1, b"\x02" * 33, 2)
    data = pickle.dumps(hop)
    assert b"mcstore.model" in data and b"_native" not in data
    assert pickle.loads(data) == hop


def test_version_says_which_core_is_in_use() -> None:
    out = CliRunner().invoke(cli, ["--version"], catch_exceptions=False).output
    assert f"version {mcstore.__version__}" in out
    assert f"COMPILED={mcstore.COMPILED}" in out


@pytest.mark.skipif(not compiled_build_present(), reason="no compiled core installed")
@pytest.mark.parametrize(("pure", "expected"), [("1", False), ("0", True), ("", True)])
def test_mcstore_pure_selects_the_path_at_import(pure: str, expected: bool) -> None:
    env = {**os.environ, "MCSTORE_PURE": pure}
    code = "import mcstore, mcstore.model as m; print(mcstore.COMPILED, m.__file__.endswith('.py'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(expected), str(not expected)]
    assert out.stderr == ""


@pytest.mark.skipif(not compiled_build_present(), reason="no compiled core installed")
@pytest.mark.parametrize("error", ["ImportError", "ValueError"])
def test_a_compiled_core_that_cannot_load_falls_back_to_pure_python_with_a_warning(error: str) -> None:
    # ValueError is what a compiled core raises when the installed librt.strings has another ABI.
    code = (
        "import importlib, warnings\n"
        "real = importlib.import_module\n"
        "def failing(name, *args):\n"
        "    if name.startswith('mcstore._native.'):\n"
        f"        raise {error}('ABI version conflict for librt.strings, expected 1, found 2')\n"
        "    return real(name, *args)\n"
        "importlib.import_module = failing\n"
        "import mcstore, mcstore.model as m\n"
        "print(mcstore.COMPILED, m.__file__.endswith('.py'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MCSTORE_PURE"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
    assert "compiled core unusable" in out.stderr and "ABI version conflict" in out.stderr


@pytest.mark.skipif(not compiled_build_present(), reason="no compiled core installed")
def test_a_value_error_that_is_not_about_librt_is_not_hidden_by_the_fallback() -> None:
    # Only librt's version checks are a reason to fall back; any other ValueError while loading
    # the compiled core is a bug, and import mcstore says so.
    code = (
        "import importlib\n"
        "real = importlib.import_module\n"
        "def failing(name, *args):\n"
        "    if name.startswith('mcstore._native.'):\n"
        "        raise ValueError('a bug in the compiled module')\n"
        "    return real(name, *args)\n"
        "importlib.import_module = failing\n"
        "import mcstore\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MCSTORE_PURE"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "ValueError: a bug in the compiled module" in out.stderr
