"""What the distribution declares: the library's dependencies, the ``cli`` extra, one version."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import mcstore
from mcstore.cli import MISSING_EXTRA

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mcstore"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

_BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Block())
"""


def _without(blocked: set[str], code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter in which the modules ``blocked`` cannot be imported."""
    program = _BLOCK.format(blocked=blocked) + code
    return subprocess.run(
        [sys.executable, "-c", program, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("blocked", ["click", "rich"])
@pytest.mark.parametrize("how", ["console script", "python -m mcstore"])
def test_the_command_without_the_cli_extra_says_so_in_one_line(blocked: str, how: str) -> None:
    script = Path(sys.executable).parent / "mcstore"
    if how == "console script":
        code = (
            f"import runpy, sys; sys.argv = [{str(script)!r}, *sys.argv[1:]]; "
            f"runpy.run_path({str(script)!r}, run_name='__main__')"
        )
    else:
        code = "import runpy; runpy.run_module('mcstore', run_name='__main__', alter_sys=True)"
    proc = _without({blocked}, code, "stats", "x.sqlite")
    assert proc.returncode == 1, proc
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [f"{MISSING_EXTRA} (no module {blocked!r})"]
    assert "pip install 'mcstore[cli]'" in proc.stderr


def test_the_library_needs_no_cli_extra() -> None:
    proc = _without(
        {"click", "rich"},
        "import mcstore, mcstore.backends, mcstore.mission, mcstore.testing, mcstore.cli\n"
        "print(mcstore.__version__)",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == mcstore.__version__


def test_the_cli_extra_holds_click_and_rich_and_make_installs_it() -> None:
    project = PYPROJECT["project"]
    names = {_requirement_name(r) for r in project["dependencies"]}
    assert not names & {"click", "rich"}
    assert {_requirement_name(r) for r in project["optional-dependencies"]["cli"]} == {"click", "rich"}
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet -e '.[cli," in makefile


def test_one_version_source() -> None:
    # pyproject.toml holds the version; the package reads it from the installed metadata.
    assert mcstore.__version__ == importlib.metadata.version("mcstore") == PYPROJECT["project"]["version"]
    assert PYPROJECT["project"]["version"] not in (PACKAGE / "__init__.py").read_text()


def _requirement_name(requirement: str) -> str:
    name = requirement
    for stop in "<>=!~[;( ":
        name = name.split(stop)[0]
    return name.strip().lower().replace("_", "-")


def _module_level_imports(path: Path) -> set[str]:
    """The top-level names of the modules that ``path`` imports when it is imported (not in a
    function, not under ``if TYPE_CHECKING``), relative imports left out."""
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                names.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.partition(".")[0])
            elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)

    visit(ast.parse(path.read_text()).body)
    return names


def test_every_module_level_import_of_the_library_is_a_declared_dependency() -> None:
    # outcome was imported by the store without being declared (it came with trio). The CLI
    # may also import the `cli` extra's modules; psycopg and matplotlib are imported where used.
    project = PYPROJECT["project"]
    base = {_requirement_name(r) for r in project["dependencies"]}
    cli = base | {_requirement_name(r) for r in project["optional-dependencies"]["cli"]}
    distributions = importlib.metadata.packages_distributions()
    undeclared = []
    for path in sorted(PACKAGE.rglob("*.py")):
        allowed = cli if "cli" in path.relative_to(PACKAGE).parts[:1] else base
        for module in sorted(_module_level_imports(path)):
            if module in sys.stdlib_module_names or module in ("mcstore", "__future__"):
                continue
            dists = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
            if not dists & allowed:
                undeclared.append(f"{path.relative_to(ROOT)}: {module}")
    assert not undeclared, undeclared


def test_a_checkout_that_was_never_installed_still_imports() -> None:
    # No distribution metadata on the path: the version says so instead of the import failing.
    code = (
        "import importlib.metadata as m\n"
        "def missing(name):\n"
        "    raise m.PackageNotFoundError(name)\n"
        "m.version = missing\n"
        "import mcstore\n"
        "print(mcstore.__version__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0+unknown"
