"""River's estimator conventions for :class:`~solsa.StreamClassifier`, without depending on river.

``river.checks.check_estimator`` reads these from an estimator: its parameters (``_get_params``), a
fresh copy with the same parameters (``clone``), ``mutate``, its tags, whether it is stochastic, the
parameters and checks to use in river's own test suite, and its memory. With river installed the
class also registers as a ``river.base.Classifier`` (river's evaluators check ``isinstance``).
"""

from __future__ import annotations

import copy
import functools
import pickle
from typing import Any, Iterator

__all__ = ["RiverConventions", "register_with_river"]


class RiverConventions:
    """Mixin: river's ``Estimator`` interface over the constructor arguments kept in ``self._params``."""

    _params: dict[str, Any]
    _supervised = True
    _multiclass = True
    _mutable_attributes: set[str] = set()  # nothing may be changed in place: clone with new parameters
    # Given its parameters the classifier is deterministic (a network built from a factory is seeded by
    # `seed`), so river's seeding check does not apply.
    _is_stochastic = False

    @property
    def _tags(self) -> set[str]:
        return set()

    def _get_params(self) -> dict[str, Any]:
        """The constructor's arguments."""
        return dict(self._params)

    def clone(self, new_params: dict[str, Any] | None = None, include_attributes: bool = False):
        """A new classifier with the same arguments (``new_params`` replacing some), not trained further.

        The arguments are deep-copied together, so a rule or optimizer given for ``net`` stays bound to the
        copy of ``net`` (river copies each argument on its own). A network given as a module is copied as it
        is now; give a factory (``net=lambda n_inputs: SNN(...)``) for a fresh network."""
        unknown = sorted(set(new_params or {}) - set(self._params))
        if unknown:
            raise ValueError(f"clone: unknown parameter(s) {unknown}; valid: {sorted(self._params)}")
        return type(self)(**copy.deepcopy({**self._params, **(new_params or {})}))

    def mutate(self, new_attrs: dict[str, Any]) -> None:
        """River's in-place change of ``_mutable_attributes``: none here (clone with new parameters)."""
        if new_attrs:
            raise ValueError(f"mutate: {type(self).__name__} has no mutable attributes; use clone(new_params)")

    @property
    def _raw_memory_usage(self) -> int:
        """Bytes of the classifier's state (its pickle: network, optimizer, traces, labels)."""
        return len(pickle.dumps(self))

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        from ..layers import SNN

        # river's check data sets have 9 and 18 features and up to 7 labels: the network is built for the
        # first sample's features
        yield {"net": functools.partial(SNN, hidden=[16], n_outputs=8, readout="leaky"), "update_every": 10}

    def _unit_test_skips(self) -> set[str]:
        """River's checks that feed samples with features missing or added: a network has a fixed set of input
        channels, and such a sample is refused with a ValueError naming the features (never silently)."""
        return {"check_emerging_features", "check_disappearing_features", "check_radically_disappearing_features"}


_RIVER = {"registered": False}


def register_with_river(cls: type) -> None:
    """Make ``isinstance(clf, river.base.Classifier)`` true when river is installed; river stays optional."""
    if _RIVER["registered"]:
        return
    _RIVER["registered"] = True
    try:
        from river import base
    except ImportError:
        return
    base.Classifier.register(cls)
