"""Pure functions: the neuron step and the trace recursions. No state, no modules."""

from .credit import (
    channel_decay,
    decay_mass,
    lagged_surrogate,
    mass_corrected_error,
    mean_decay,
    membrane_credit,
    neuron_credit_pairing,
    neuron_membrane_credit,
    synaptic_credit,
)
from .neuron import (
    RESET_MODES,
    LIFConfig,
    LIFParams,
    LIFState,
    lif_step,
    membrane_step,
    spike_derivative,
    synaptic_filter,
)
from .traces import (
    alpha_input_trace,
    alpha_trace,
    bias_trace,
    decay_factor,
    lambda_trace,
    spatial_error,
    weight_trace,
)

__all__ = [
    "RESET_MODES",
    "LIFConfig",
    "LIFParams",
    "LIFState",
    "lif_step",
    "synaptic_filter",
    "membrane_step",
    "spike_derivative",
    "decay_factor",
    "weight_trace",
    "alpha_input_trace",
    "alpha_trace",
    "lambda_trace",
    "bias_trace",
    "spatial_error",
    "synaptic_credit",
    "membrane_credit",
    "mean_decay",
    "channel_decay",
    "lagged_surrogate",
    "neuron_membrane_credit",
    "neuron_credit_pairing",
    "decay_mass",
    "mass_corrected_error",
]
