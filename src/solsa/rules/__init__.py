"""Learning rules behind one interface (:class:`LearningRule`), and the registry of rule names.

Each registry entry names the rule's class, its constructor options, and the
neuron model its paper uses (``paper_model``: :class:`~solsa.LIFLayer` options
applied with ``--model paper``; ``--model full`` trains the full SOLSA model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .base import LearningRule, SequenceResult, StepResult, sequence_weights, target_at
from .bptt import BPTT
from .credit import CREDIT_MODES
from .eprop import EProp
from .ostl import OSTL
from .ottt import OTTT
from .solsa import SOLSA

# The neuron model of SOLSA.md §1 with the synaptic filter removed (α = 0, β = 1, not learned).
NO_FILTER = {"alpha": 0.0, "beta": 1.0, "learn_alpha": False, "learn_beta": False}


@dataclass(frozen=True)
class RuleSpec:
    """A named rule: its class, constructor options, and its paper's neuron model."""

    name: str
    cls: type
    description: str
    options: dict[str, Any] = field(default_factory=dict)
    paper_model: dict[str, Any] = field(default_factory=dict)

    def build(self, net, loss) -> LearningRule:
        return self.cls(net, loss, **self.options)


RULES: dict[str, RuleSpec] = {
    "solsa": RuleSpec("solsa", SOLSA, "SOLSA: exact per-layer traces with reset feedback, learned synaptic filter",
                      options={"credit": "same-step"}),
    "bptt": RuleSpec("bptt", BPTT, "backpropagation through time on the identical model"),
    "solsa-next": RuleSpec(
        "solsa-next", SOLSA, "SOLSA, each hidden layer's traces filtered through the layer above (docs/credit.md)",
        options={"credit": "next"},
    ),
    "solsa-cascade": RuleSpec(
        "solsa-cascade", SOLSA, "SOLSA, each hidden layer's traces filtered through every layer above (docs/credit.md)",
        options={"credit": "cascade"},
    ),
    "solsa-samestep": RuleSpec(
        "solsa-samestep", SOLSA, "ablation: SOLSA with the error crossing layers within the step only (SOLSA.md §3)",
        options={"credit": "same-step"},
    ),
    "solsa-nofilter": RuleSpec(
        "solsa-nofilter", SOLSA, "ablation: SOLSA without synaptic dynamics (α = 0, β = 1 fixed)",
        paper_model=NO_FILTER,
    ),
    "solsa-fixedfilter": RuleSpec(
        "solsa-fixedfilter", SOLSA, "ablation: SOLSA with α, β fixed at their initial values",
        paper_model={"learn_alpha": False, "learn_beta": False},
    ),
    "solsa-detachreset": RuleSpec(
        "solsa-detachreset", SOLSA, "ablation: SOLSA with the reset feedback dropped from the traces",
        options={"reset_feedback": False},
    ),
    "eprop": RuleSpec(
        "eprop", EProp, "e-prop (Bellec et al. 2020): eligibility traces, reset detached, same-step learning signal",
        paper_model={**NO_FILTER, "reset": "subtract"},
    ),
    "ottt": RuleSpec(
        "ottt", OTTT, "OTTT (Xiao et al. 2022): presynaptic trace, instantaneous error, O(N_in) per layer",
        paper_model={**NO_FILTER, "reset": "subtract", "lam_granularity": "layer"},
    ),
    "ostl": RuleSpec(
        "ostl", OSTL, "OSTL (Bohnstingl et al. 2022): exact per-layer eligibility with the reset, spatial error",
        paper_model={**NO_FILTER, "reset": "zero"},
    ),
}

# The ablations change the model whichever --model is chosen: their overrides always apply.
ABLATIONS = ("solsa-nofilter", "solsa-fixedfilter")


def get_rule(name: str) -> RuleSpec:
    """The registry entry for ``name``; a ``ValueError`` lists the valid names."""
    if name not in RULES:
        raise ValueError(f"unknown rule {name!r}; valid rules: {', '.join(RULES)}")
    return RULES[name]


__all__ = [
    "LearningRule",
    "StepResult",
    "SequenceResult",
    "sequence_weights",
    "target_at",
    "SOLSA",
    "BPTT",
    "EProp",
    "OTTT",
    "OSTL",
    "RuleSpec",
    "RULES",
    "CREDIT_MODES",
    "NO_FILTER",
    "ABLATIONS",
    "get_rule",
]
