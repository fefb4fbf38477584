"""Learning rules behind one interface (:class:`LearningRule`), and the registry of rule names.

Each registry entry names the rule's class, its constructor options, and the
neuron model its paper uses (``paper_model``: :class:`~solsa.LIFLayer` options
applied with ``--model paper``; ``--model full`` trains the full SOLSA model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..validation import OptionError
from .base import Capabilities, LearningRule, SequenceResult, StepResult, sequence_weights, target_at
from .bptt import BPTT
from .credit import CREDIT_MODES, DEFAULT_CREDIT
from .eprop import EProp
from .ostl import OSTL
from .ottt import OTTT
from .solsa import SOLSA

# The neuron model of docs/model.md §1 with the synaptic filter removed (α = 0, β = 1, not learned).
NO_FILTER = {"alpha": 0.0, "beta": 1.0, "learn_alpha": False, "learn_beta": False}
# e-prop's own network (Bellec et al. 2020, the LSNN): recurrent ALIF layers without a synaptic filter, applied to
# every rule with model "native" so that the rules compare on it (docs/memory.md)
NATIVE_MODEL = {**NO_FILTER, "reset": "subtract", "neuron": "alif", "recurrent": True}


@dataclass(frozen=True)
class RuleSpec:
    """A named rule: its class, constructor options, and the neuron model it trains.

    ``paper_model``: :class:`~solsa.LIFLayer` options of the rule's paper, applied with model "paper"
    (model "native" applies :data:`NATIVE_MODEL` for every rule);
    ``model``: options applied whichever model is chosen (the ablations that change the model);
    ``ablation``: a variant of SOLSA that removes one of its parts (left out of default benchmarks).
    """

    name: str
    cls: type
    description: str
    options: dict[str, Any] = field(default_factory=dict)
    paper_model: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    ablation: bool = False

    def build(self, net, loss, *, backend: str = "auto", **options: Any) -> LearningRule:
        """The rule on ``net`` with ``loss``; ``backend`` as in :class:`~solsa.rules.LearningRule`; ``options``
        (e.g. SOLSA's ``credit``) replace the registry's."""
        return self.cls(net, loss, backend=backend, **{**self.options, **options})

    def model_options(self, model: str) -> dict[str, Any]:
        """The layer options this rule imposes on ``model`` ("full", "paper" or "native")."""
        imposed = {"paper": self.paper_model, "native": NATIVE_MODEL}.get(model, {})
        return {**imposed, **self.model}


# One line per rule: a new rule is its file plus one entry here (tests/test_conformance.py checks it).
RULES: dict[str, RuleSpec] = {
    "solsa": RuleSpec("solsa", SOLSA, "SOLSA: exact per-layer traces with reset feedback, learned synaptic filter, "
                      "credit through every layer above (docs/credit.md)", options={"credit": DEFAULT_CREDIT}),
    "bptt": RuleSpec("bptt", BPTT, "backpropagation through time on the identical model"),
    "solsa-next": RuleSpec(
        "solsa-next", SOLSA, "SOLSA, each hidden layer's traces filtered through the layer above (docs/credit.md)",
        options={"credit": "next"},
    ),
    "solsa-samestep": RuleSpec(
        "solsa-samestep", SOLSA, "ablation: SOLSA with the error crossing layers within the step only (docs/model.md §3); "
        "the low-memory choice, about a third of the cascade's traces",
        options={"credit": "same-step"}, ablation=True,
    ),
    "solsa-nofilter": RuleSpec(
        "solsa-nofilter", SOLSA, "ablation: SOLSA without synaptic dynamics (α = 0, β = 1 fixed)",
        model=NO_FILTER, ablation=True,
    ),
    "solsa-fixedfilter": RuleSpec(
        "solsa-fixedfilter", SOLSA, "ablation: SOLSA with α, β fixed at their initial values",
        model={"learn_alpha": False, "learn_beta": False}, ablation=True,
    ),
    "solsa-detachreset": RuleSpec(
        "solsa-detachreset", SOLSA, "ablation: SOLSA with the reset feedback dropped from the traces",
        options={"reset_feedback": False}, ablation=True,
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

# Every backend a rule may be asked for (the `backend` option's choices), derived from the registry.
BACKENDS = ("auto", *dict.fromkeys(b for spec in RULES.values() for b in spec.cls.capabilities.backends))

# The ablations (variants of SOLSA), derived from the registry.
ABLATIONS = tuple(name for name, spec in RULES.items() if spec.ablation)


def get_rule(name: str) -> RuleSpec:
    """The registry entry for ``name``; an :class:`~solsa.validation.OptionError` lists the valid names."""
    if name not in RULES:
        raise OptionError("rule", f"unknown rule {name!r}; valid rules: {', '.join(RULES)}")
    return RULES[name]


__all__ = [
    "LearningRule",
    "Capabilities",
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
    "DEFAULT_CREDIT",
    "NO_FILTER",
    "NATIVE_MODEL",
    "ABLATIONS",
    "BACKENDS",
    "get_rule",
]
