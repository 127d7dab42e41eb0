"""The estimators by name: the one list that the CLI, evaluation and fitting choose from.

``make_estimator("bimodal", {"node_weight": 0.3})`` builds an estimator from its name and
constructor keywords. Adding an estimator to mcstore means adding its class here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from .estimators import AprioriEstimator, BimodalEstimator, TunableEstimator
from .historical import HistoricalEstimator

__all__ = ["ESTIMATORS", "make_estimator"]

ESTIMATORS: Final[Mapping[str, type[TunableEstimator]]] = {
    AprioriEstimator.name: AprioriEstimator,
    BimodalEstimator.name: BimodalEstimator,
    HistoricalEstimator.name: HistoricalEstimator,
}
"""Every named estimator, by its ``name``, in the order the CLI lists them."""


def make_estimator(name: str, params: Mapping[str, object] | None = None) -> TunableEstimator:
    """The estimator called ``name``, built with the constructor keywords ``params``.

    Args:
        name: The estimator's name, a key of :data:`ESTIMATORS`.
        params: Its constructor keywords (default: none, lnd's defaults).

    Raises:
        ValueError: An unknown name or parameter (naming it and listing the known ones), or
            the constructor's for a bad value.
        TypeError: The constructor's, for a value of the wrong type.
    """
    cls = ESTIMATORS.get(name)
    if cls is None:
        raise ValueError(f"unknown estimator {name!r}; known: {', '.join(ESTIMATORS)}")
    params = dict(params or {})
    known = {p.name for p in cls.parameters}
    for key in params:
        if key not in known:
            raise ValueError(f"estimator {name!r} has no parameter {key!r}; its parameters: {', '.join(sorted(known))}")
    return cls(**params)
