"""Mission control: result interpretation, pair history and success probabilities (lnd's rules).

* :func:`interpret_result` reads one payment result as lnd does (:mod:`.interpretation`);
* :class:`MissionControlState` keeps the pair history with lnd's update rules (:mod:`.state`);
* :class:`AprioriEstimator` and :class:`BimodalEstimator` turn it into probabilities
  (:mod:`.estimators`, whose docstring lists the differences from lnd);
* :class:`HistoricalEstimator`, LDK-style, learns its own histograms from the pair outcomes
  the state applies (:mod:`.historical`, whose docstring gives the model and the differences
  from LDK);
* :data:`ESTIMATORS` and :func:`make_estimator` name them (:mod:`.registry`);
* :func:`open_mission_control` ties them to a store and replays its history (:mod:`.control`);
* :class:`ChannelGraph` and :func:`load_graph` give channels' capacities (:mod:`.graph`), and
  :func:`packaged_graph` the real network's graph that ships with mcstore (``mainnet-2025``);
* :func:`evaluate` scores estimators on a history (:mod:`.evaluation`), and :func:`fit` fits an
  estimator's parameters to one (:mod:`.fitting`).
"""

from __future__ import annotations

from .control import MissionControl, open_mission_control
from .estimators import (
    BIMODAL_SCALE_MSAT_MAX,
    PREV_SUCCESS_PROBABILITY,
    AprioriEstimator,
    BimodalEstimator,
    Estimator,
    LearningEstimator,
    Parameter,
    TunableEstimator,
)
from .evaluation import (
    Calibration,
    EstimatorScores,
    Evaluation,
    Evaluator,
    ReliabilityBin,
    Scores,
    evaluate,
)
from .fitting import LND_SETTINGS, FitResult, FitScores, RecordedHistory, fit, lnd_settings
from .graph import PACKAGED_GRAPHS, ChannelGraph, GraphError, load_graph, packaged_graph
from .historical import HistoricalEstimator
from .interpretation import FinalFailureReason, Interpretation, PairOutcome, interpret_result
from .registry import ESTIMATORS, make_estimator
from .state import MIN_SECOND_CHANCE_INTERVAL_NS, MissionControlState, NodeResults, PairLearner, TimedPairResult

__all__ = [
    "BIMODAL_SCALE_MSAT_MAX",
    "ESTIMATORS",
    "LND_SETTINGS",
    "MIN_SECOND_CHANCE_INTERVAL_NS",
    "PACKAGED_GRAPHS",
    "PREV_SUCCESS_PROBABILITY",
    "AprioriEstimator",
    "BimodalEstimator",
    "Calibration",
    "ChannelGraph",
    "Estimator",
    "EstimatorScores",
    "Evaluation",
    "Evaluator",
    "FinalFailureReason",
    "FitResult",
    "FitScores",
    "GraphError",
    "HistoricalEstimator",
    "Interpretation",
    "LearningEstimator",
    "MissionControl",
    "MissionControlState",
    "NodeResults",
    "PairLearner",
    "PairOutcome",
    "Parameter",
    "RecordedHistory",
    "ReliabilityBin",
    "Scores",
    "TimedPairResult",
    "TunableEstimator",
    "evaluate",
    "fit",
    "interpret_result",
    "lnd_settings",
    "load_graph",
    "make_estimator",
    "open_mission_control",
    "packaged_graph",
]
