"""Sphinx configuration of mcstore's documentation (``make docs`` builds it into ``docs/_build/html``).

The build is strict, as trio's is: ``nitpicky = True`` and ``make docs`` passes ``-W``, so a
reference that resolves to nothing fails the build (and CI). It needs no network:
intersphinx reads the inventories in ``docs/_inventories/`` (see the README there).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The pure core: its classes and functions carry full signatures for autodoc (the compiled
# ones, built by mypyc, expose less). The objects are the same names on both paths.
os.environ["MCSTORE_PURE"] = "1"

import mcstore  # noqa: E402

project = "mcstore"
author = "the mcstore developers"
copyright = "2026, the mcstore developers"  # noqa: A001
version = release = mcstore.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.napoleon",
    "sphinx_click",
    "myst_parser",
]
# The narrative pages are Markdown (MyST); the reference pages, made by autodoc, are rST.
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_heading_anchors = 3

root_doc = "index"
exclude_patterns = ["_build", "_inventories", "examples"]
templates_path: list[str] = []
html_theme = "alabaster"
html_theme_options = {
    "description": "A durable Trio store for Lightning mission control results",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "240px",
}
html_static_path: list[str] = []
html_show_sourcelink = False
pygments_style = "sphinx"

# Every cross-reference must resolve (trio's docs do the same).
nitpicky = True
nitpick_ignore = [
    # Type variables of generic signatures: documented by what they stand for, not as names.
    ("py:class", "T"),
]

# Offline intersphinx: the inventories are the projects' own build output, kept in the
# repository (docs/_inventories/README.md says where each comes from and how to renew it).
intersphinx_mapping = {
    "python": ("https://docs.python.org/3.11/", "_inventories/python.inv"),
    "trio": ("https://trio.readthedocs.io/en/stable/", "_inventories/trio.inv"),
}
intersphinx_cache_limit = -1
intersphinx_timeout = 1

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_inherit_docstrings = False
autodoc_default_options = {"show-inheritance": False}
autodoc_class_signature = "mixed"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True
# ``name`` in a docstring is inline code (as the sources write it), not a reference.
default_role = "code"


# -- References to internal names ------------------------------------------------------------
#
# The public names are documented where users find them (``mcstore.Hop``, not
# ``mcstore.model.Hop``), but the docstrings are written inside their own modules and name
# things as the code sees them: ``:class:`~mcstore.model.PaymentResult```, or a bare
# ``:class:`MemoryBackend``` in ``mcstore.testing``. Such a reference is resolved here to the
# page of the same object under its public name. A reference to a private helper that exists
# (``mcstore.backends._thread.WorkerThread``) is shown as code without a link; one that
# names nothing importable still fails the build, so stale references are caught.

def _lookup(path: str) -> tuple[bool, object]:
    """Import ``path`` (``package.module.Name.attr``); (found, object)."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        except Exception:  # noqa: BLE001 - a module that cannot be imported here names nothing
            return False, None
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
                if isinstance(obj, ModuleType) and not obj.__name__.startswith("mcstore"):
                    return False, None  # another project's module, seen through an import
        except AttributeError:
            return False, None
        return True, obj
    return False, None


def _candidates(node: pending_xref) -> list[str]:
    """The dotted names a reference may mean, most specific context last."""
    target: str = node["reftarget"].lstrip(".~")
    module: str | None = node.get("py:module")
    cls: str | None = node.get("py:class")
    found = [target]
    if module:
        found.append(f"{module}.{target}")
        if cls:
            found.append(f"{module}.{cls}.{target}")
    # The docstring's own module and class, where the code wrote the name
    # ("...:docstring of mcstore.store.open_store").
    source = node.source or ""
    if "docstring of " in source:
        parts = source.rsplit("docstring of ", 1)[1].split(".")
        found.extend(".".join(parts[:cut] + [target]) for cut in range(len(parts), 0, -1))
    return found


_DOCUMENTED: dict[int, str] = {}
_DOCUMENTED_COUNT = [-1]


def _documented(env: BuildEnvironment) -> dict[int, str]:
    """id of each documented object -> its documented name.

    Made from the Python domain (which holds every page's objects, also in an incremental build
    that rereads only the changed pages), in this process: ids are not kept across builds.
    """
    objects = env.get_domain("py").objects
    if _DOCUMENTED_COUNT[0] != len(objects):
        _DOCUMENTED.clear()
        for name, entry in objects.items():
            if entry.objtype == "module":
                continue
            ok, obj = _lookup(name)
            if ok and not isinstance(obj, (int, float, str, bytes, tuple, frozenset, type(None))):
                _DOCUMENTED.setdefault(id(obj), name)
        _DOCUMENTED_COUNT[0] = len(objects)
    return _DOCUMENTED


def _resolve_internal(app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.Element) -> Any:
    if node.get("refdomain") != "py":
        return None
    domain = env.get_domain("py")
    for path in _candidates(node):
        ok, obj = _lookup(path)
        if not ok or not (path.startswith("mcstore") or getattr(obj, "__module__", "").startswith("mcstore")):
            continue
        public = _documented(env).get(id(obj))
        if public is not None:
            return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], public, node, contnode)
        return contnode  # exists, but internal: code, no link
    return None


# -- Napoleon on functions and classes only -------------------------------------------------
#
# Napoleon reads an attribute's docstring "Word: text" as "type: description", and the
# attribute docstrings here are prose ("The mean (p - y)**2 in [0, 1]: ..."). Their
# contracts need no Args: or Raises: sections, so napoleon does not see them.

_NOT_NAPOLEON = frozenset({"attribute", "property", "data"})


def _only_callables(setup_app: Sphinx) -> None:
    from sphinx.ext import napoleon

    for listener in list(setup_app.events.listeners["autodoc-process-docstring"]):
        if listener.handler is napoleon._process_docstring:
            setup_app.disconnect(listener.id)

    def process(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
        if what not in _NOT_NAPOLEON:
            napoleon._process_docstring(app, what, name, obj, options, lines)

    setup_app.connect("autodoc-process-docstring", process)


# -- Constants re-exported by a package ------------------------------------------------------
#
# ``mcstore.DEFAULT_MAX_RECORDS`` is documented where it is defined (``mcstore.store``) by the
# string under it; autodoc looks only in the package that re-exports it, and finds the
# docstring of ``int``. This finds the defining module's text instead.


def _reexported_constant_doc(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    if what != "data":
        return
    from sphinx.pycode import ModuleAnalyzer

    package, _, attr = name.rpartition(".")
    for modname, module in sorted(sys.modules.items()):
        if not modname.startswith(package + ".") or getattr(module, attr, None) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except Exception:  # noqa: BLE001 - compiled or generated modules have no source to read
            continue
        if ("", attr) in docs:
            lines[:] = list(docs[("", attr)])
            return


# -- Coverage: every public name and every command is on the site ----------------------------
#
# A warning (an error under -W, as `make docs` builds) names whatever is missing: a name of
# ``mcstore.__all__`` or ``mcstore.mission.__all__`` that no page documents, or a command of
# the ``mcstore`` group without its section on the CLI page.

PUBLIC_MODULES = ("mcstore", "mcstore.mission")


def _section_ids(app: Sphinx, doctree: nodes.document) -> None:
    env = app.env
    found: set[str] = getattr(env, "mcstore_section_ids", set())
    for section in doctree.findall(nodes.section):
        found.update(section["ids"])
    env.mcstore_section_ids = found  # type: ignore[attr-defined]


def _check_coverage(app: Sphinx, env: BuildEnvironment) -> None:
    from sphinx.util import logging

    from mcstore.cli import cli

    log = logging.getLogger("mcstore.docs")
    objects = env.get_domain("py").objects
    for module in PUBLIC_MODULES:
        for name in importlib.import_module(module).__all__:
            if f"{module}.{name}" not in objects:
                log.warning("%s.%s is public (in __all__) but no page documents it", module, name)
    sections: set[str] = getattr(env, "mcstore_section_ids", set())
    for command in cli.commands:
        if f"mcstore-{command}" not in sections:
            log.warning("the command `mcstore %s` has no section on the CLI page", command)


def setup(app: Sphinx) -> None:
    app.connect("doctree-read", _section_ids)
    app.connect("env-check-consistency", _check_coverage)
    _only_callables(app)
    app.connect("autodoc-process-docstring", _reexported_constant_doc)
    # After intersphinx (500): a name of another project never reaches it.
    app.connect("missing-reference", _resolve_internal, priority=900)
