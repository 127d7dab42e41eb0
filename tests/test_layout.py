"""The layout's rules that no type checker sees: which module may import what, and where the
commands are registered."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import mcstore

PACKAGE = Path(mcstore.__file__).parent
CLI = PACKAGE / "cli"
BACKENDS = PACKAGE / "backends"

DRIVERS = ("sqlite3", "psycopg", "psycopg_pool")
"""Database drivers: only the backends speak to them."""


def _imports(path: Path, package: str) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for every import in ``path`` (a module of ``package``), nested ones
    too, relative ones made absolute; ``from M import N`` gives ``M.N`` as well as ``M``."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


LAYERS = [
    ("mcstore._select", "mcstore._native", "mcstore.errors", "mcstore._bytes"),
    ("mcstore.model",),
    ("mcstore.codec",),
    ("mcstore.backends",),
    ("mcstore.store",),
    ("mcstore",),
    ("mcstore.mission", "mcstore.testing"),
    ("mcstore.cli",),
    ("mcstore.__main__",),
]
"""The package's layers, bottom first: a module imports only from its own layer or below
(``testing`` may import anything below ``cli``)."""


def _layer(module: str) -> int:
    """The layer of ``module`` (or of the package that holds it): the longest prefix wins."""
    best, depth = -1, -1
    for layer, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and prefix.count(".") > depth:
                best, depth = layer, prefix.count(".")
    return best


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_imports_run_one_way_down_the_layers() -> None:
    # cli -> mission -> store -> backends -> codec -> model: an import back up (errors.py once
    # imported the backends, lazily, to redact a location) would tie a lower layer to a higher one.
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for line, module in _imports(path, package):
            if module.startswith("mcstore") and _layer(module) > _layer(name):
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {name} imports {module}")
    assert not upward, "\n".join(upward)


def _backend_modules() -> set[str]:
    return {f"mcstore.backends.{p.stem}" for p in BACKENDS.glob("*.py") if p.stem != "__init__"}


def test_the_cli_reaches_the_backends_only_through_their_package() -> None:
    # Locations in one place (issue 18): parsing, classifying and the SQLite-only checks are the
    # backends' business; the CLI uses the names `mcstore.backends` exports, never a module of
    # it, and never a database driver.
    backend_modules = _backend_modules()
    found = []
    for path in sorted(CLI.glob("*.py")):
        for line, module in _imports(path, "mcstore.cli"):
            if module.split(".")[0] in DRIVERS or module in backend_modules or any(
                module.startswith(m + ".") for m in backend_modules
            ):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: imports {module}")
    assert not found, "\n".join(found)


def test_the_scan_sees_relative_nested_and_driver_imports(tmp_path: Path) -> None:
    # The rule above is only as good as its scan.
    module = tmp_path / "x.py"
    module.write_text(
        "from ..backends.sqlite import SCHEMA_VERSION\n"
        "from ..backends import sqlite_read, open_reader\n"
        "def f():\n"
        "    import sqlite3\n"
        "    from psycopg import errors\n"
    )
    seen = {name for _line, name in _imports(module, "mcstore.cli")}
    assert {"mcstore.backends.sqlite", "mcstore.backends.sqlite_read", "sqlite3", "psycopg"} <= seen
    assert "mcstore.backends.open_reader" in seen and "mcstore.backends" in seen


def test_every_command_is_registered_in_main_and_nowhere_else() -> None:
    main = importlib.import_module("mcstore.cli.main")  # the package's `main` is the function
    registered_elsewhere = []
    for path in sorted(CLI.glob("*.py")):
        if path.name == "main.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("command", "add_command", "group")
                and isinstance(node.value, ast.Name)
                and node.value.id == "cli"
            ):
                registered_elsewhere.append(f"{path.name}:{node.lineno}")
    assert not registered_elsewhere
    names = {"demo", "stats", "export", "import", "import-lnd", "reset", "querymc", "queryprob", "eval", "fit"}
    assert set(main.cli.commands) == names
    assert all(command.callback.__module__ != main.__name__ for command in main.cli.commands.values())
