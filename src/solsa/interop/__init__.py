"""Into and out of the neuromorphic ecosystem: NIR export/import and NeuroBench metrics.

The optional packages (``nir``, ``neurobench``) are imported only when used; install them
with ``pip install -e ".[interop]"``.
"""

from .nir_export import DEFAULT_DT, NIRCompatibilityWarning, layer_form, to_nir, write_nir
from .neurobench import (
    NeuroBenchNet,
    SpikeActivation,
    activity_metrics,
    neurobench_dataset,
    neurobench_model,
    static_metrics,
)
from .nir_import import SUPPORTED_NODES, from_nir

__all__ = [
    "to_nir",
    "from_nir",
    "write_nir",
    "layer_form",
    "NIRCompatibilityWarning",
    "DEFAULT_DT",
    "SUPPORTED_NODES",
    "activity_metrics",
    "static_metrics",
    "neurobench_model",
    "neurobench_dataset",
    "NeuroBenchNet",
    "SpikeActivation",
]
