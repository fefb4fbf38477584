"""solsa: online learning for spiking neural networks (SOLSA, BPTT and the online baselines)."""

from .functional import LIFConfig, LIFParams, LIFState, lif_step
from .interop import from_nir, to_nir
from .layers import SNN, LIFLayer
from .losses import CrossEntropy, SpikeMSE, make_loss
from .rules import BPTT, OSTL, OTTT, RULES, SOLSA, EProp, LearningRule, get_rule
from .stream import StreamClassifier
from .config import TrainConfig
from .learner import Learner
from .training import train

__version__ = "0.1.0"

__all__ = [
    "LIFConfig",
    "LIFParams",
    "LIFState",
    "lif_step",
    "LIFLayer",
    "SNN",
    "SpikeMSE",
    "CrossEntropy",
    "make_loss",
    "LearningRule",
    "SOLSA",
    "BPTT",
    "EProp",
    "OTTT",
    "OSTL",
    "RULES",
    "get_rule",
    "StreamClassifier",
    "TrainConfig",
    "Learner",
    "train",
    "to_nir",
    "from_nir",
]
