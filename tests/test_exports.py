"""The public names: every name in ``__all__`` exists and is public, the lists are sorted and
unique, and every name the reference documents is in them (as trio's and httpx's export tests)."""

from __future__ import annotations

import types

import pytest
from test_docs import _documented_names

import mcstore
import mcstore.backends
import mcstore.mission
import mcstore.testing

MODULES = [mcstore, mcstore.mission, mcstore.backends, mcstore.testing]


def _sort_key(name: str) -> tuple[int, str]:
    """ruff's isort-style order for ``__all__``: CONSTANTS, then Classes, then the rest."""
    if name.isupper():
        return 0, name
    return (1, name) if name[0].isupper() else (2, name)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_every_exported_name_exists_and_is_public(module: types.ModuleType) -> None:
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"{module.__name__}.__all__ names what it lacks: {missing}"
    private = [name for name in module.__all__ if name.startswith("_") and name != "__version__"]
    assert not private, f"{module.__name__}.__all__ exports private names: {private}"
    modules = [name for name in module.__all__ if isinstance(getattr(module, name), types.ModuleType)]
    assert not modules, f"{module.__name__}.__all__ exports modules: {modules}"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_all_is_sorted_and_unique(module: types.ModuleType) -> None:
    names = list(module.__all__)
    assert len(set(names)) == len(names), f"{module.__name__}.__all__ repeats a name"
    assert names == sorted(names, key=_sort_key), f"{module.__name__}.__all__ is out of order"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_every_name_the_reference_documents_is_exported(module: types.ModuleType) -> None:
    # A documented name outside __all__ is public in the docs but not to `from mcstore import *`
    # nor to the checks of the site (docs/conf.py), which go by __all__.
    prefix = module.__name__ + "."
    documented = {
        name[len(prefix):]
        for name in _documented_names()
        if name.startswith(prefix) and "." not in name[len(prefix):]
    }
    submodules = {name for name in documented if isinstance(getattr(module, name, None), types.ModuleType)}
    unexported = sorted(documented - submodules - set(module.__all__))
    assert not unexported, f"the reference documents {module.__name__} names missing from __all__: {unexported}"
