"""Learning rules behind one interface (:class:`LearningRule`)."""

from .base import LearningRule, SequenceResult, StepResult, sequence_weights, target_at
from .bptt import BPTT
from .solsa import SOLSA

RULES = {"solsa": SOLSA, "bptt": BPTT}

__all__ = ["LearningRule", "StepResult", "SequenceResult", "sequence_weights", "target_at", "SOLSA", "BPTT", "RULES"]
