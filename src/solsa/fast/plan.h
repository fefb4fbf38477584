// The fused kernel's plan: the layout of struct LayerDesc and struct Plan that solsa/fast/fused.py mirrors
// with ctypes (LayerDesc, Plan; bump ABI_VERSION in build.py and solsa_abi_version when it changes).
// Included by kernel.cpp.
#pragma once
#include <cstdint>

struct AlifDesc;  // an ALIF and/or recurrent layer's extra state (alif.h)

// One layer: shapes, settings and pointers. Parameters are read through Plan::params (refreshed by
// Python before every call); every other pointer is fixed between reset() calls.
struct LayerDesc {
    int64_t n_in, n_out;
    int64_t reset;               // 0 subtract, 1 zero, 2 none
    int64_t surrogate;           // 0 gaussian, 1 fast_sigmoid, 2 atan, 3 triangle
    int64_t spiking;             // 0: leaky readout (o = V, eps = 1)
    int64_t filter_per_channel;  // alpha, beta: [n_in] (1) or scalar (0)
    int64_t lam_per_neuron;      // lam: [n_out] (1) or scalar (0)
    double threshold, reset_amount, width;
    void *F, *V, *o, *eps;       // state [B,n_in], [B,n_out] x3
    void *e, *p, *a, *m, *n;     // traces (p, a, m, n may be null)
    void *gW, *gb, *galpha, *glam;  // accumulators (null when not learned)
    void *delta, *gbelow, *wtmp, *atmp;  // scratch [B,n_out], [B,n_in], [n_out,n_in], [n_in]
    void *cur, *wp, *d;          // scratch [B,n_out] x3
    void *wT, *wcopy;            // n_in < 16 only (forward.h, columns_current): [n_in,n_out] W^T, W as it was
    int64_t credit_depth;        // > 0: the traces are filtered through that many layers above (docs/credit.md)
    void** cstage;               // [credit_depth * 8]: q, u of e, a, m, n per stage (null where absent)
    void *lag_qE, *lag_uE, *lag_qN, *lag_uN, *eps_lag;  // cascade: eps and 1 through the layer above, eps~
    int64_t n_neuron;            // > 0: per-output-neuron copies of the [B, n_out] traces (cascade, under the output)
    void *h_a, *h_m, *h_n;       // [B, n_neuron, n_out]
    void *signals, *dbar;        // scratch [credit_depth, B, n_out] (P^s) and [B] (this layer's mean d)
    void *mass, *mass_bar;       // cascade: decay-kernel masses of the layer above, [B, n_above] and [B]
    AlifDesc* alif;              // non-null: an ALIF and/or recurrent layer, run by alif.h
};

struct Plan {
    int64_t batch, n_layers, reset_feedback, track, par_min;
    int64_t pending;  // 1: every layer's delta of the last step still has to be added to gW (sum_b delta e)
    LayerDesc* layers;
    void** params;   // 5 per layer: W, b (or null), alpha, beta, lam
    double magnitude;  // out: sum over layers of |this step's weight gradient| (when track)
    int64_t storage;   // the [B, N_out, N_in] traces (e, a per channel, their credit stages): 0 T, 1 float16, 2 bfloat16
};
