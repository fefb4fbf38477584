// The trace time loops of the online rules' whole-sequence path (e-prop, OSTL, OTTT; solsa/fast/online_seq.py),
// included by scan.cpp so that they ship in its library. Raw pointers to contiguous CPU tensors, time-first.
//
// Everything else of that path (the layers' forward, the loss, the same-step errors) is a handful of
// whole-sequence tensor operations; what stays here is a recursion over t whose state is too large to keep
// for every step (OSTL's and e-prop's [B, N_out, N_in] traces), or too small to be worth a Python call per step.
#pragma once
#include <cstdint>
#include <vector>
#include "denormals.h"

// y[t] = d[t] ⊙ y[t-1] + u[t] for d [T, rows], u [T, rows, n], from y0 [rows, n] (y[-1] = y0): one decay per
// row, shared by its n entries (n = 1: element-wise). Out: y [T, rows, n].
template <typename T>
static void decay_scan(const T* d, const T* u, const T* y0, T* y, int64_t steps, int64_t rows, int64_t n) {
    FlushDenormals ftz;
    const int64_t stride = rows * n;
    for (int64_t t = 0; t < steps; ++t) {
        const T* prev = t ? y + (t - 1) * stride : y0;
        const T* dt = d + t * rows;
        const T* ut = u + t * stride;
        T* out = y + t * stride;
        for (int64_t r = 0; r < rows; ++r) {
            const T dr = dt[r];
            const int64_t o = r * n;
            #pragma omp simd
            for (int64_t i = 0; i < n; ++i) out[o + i] = dr * prev[o + i] + ut[o + i];
        }
    }
}

// e[i] = d e[i] + u[i] over one trace row of n
template <typename T>
static inline void advance_row(T* e, const T* u, T d, int64_t n) {
    #pragma omp simd
    for (int64_t i = 0; i < n; ++i) e[i] = d * e[i] + u[i];
}

// ALIF: e[i] = d e[i] + u[i] + k w[i],  w[i] = ρ w[i] + q e_prev[i] over one row
template <typename T>
static inline void advance_adapted_row(T* e, T* w, const T* u, T d, T k, T q, T rho, int64_t n) {
    #pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const T ep = e[i];
        e[i] = (u[i] + d * ep) + k * w[i];
        w[i] = rho * w[i] + q * ep;
    }
}

// A per-synapse trace and its gradient, step by step, for a batch of B and a layer of R neurons, n inputs:
//     e[t]_bri = d[t]_br e[t-1]_bri + u[t]_bi            (rows_e = 1: one row for all r, d [T, B, 1])
//     G_ri    += s[t]_br e[t]_bri                          (psi null: OSTL's W trace, e-prop's x̄ per neuron)
// or, with e-prop's readout filter (psi non-null; ē [B, R, n] in/out):
//     ē[t]_bri = κ ē[t-1]_bri + ψ[t]_br e[t]_bri,   G_ri += s[t]_br ē[t]_bri
// d [T, B, rows_e], u [T, B, u_rows, n] (u_rows 1: the same input for every row, or rows_e), s and psi
// [T, B, R]; e [B, rows_e, n] in/out (the trace before and after); G [R, n] is added to.
// ALIF (w non-null, rows_e = R; docs/memory.md §1): the trace of h = V - A has a partner w = ∂b/∂θ, and
//     e[t] = d[t] e[t-1] + u[t] + k[t] w[t-1],   w[t] = ρ w[t-1] + q[t] e[t-1]
// with k, q [T, B, R] (k = β_a (d° - ρ), q = ε[t-1]: solsa/functional/traces.py adaptation_decays, adapted);
// w [B, R, n] in/out.
template <typename T>
static void trace_accumulate(const T* d, const T* u, int64_t u_rows, const T* s, T* e, int64_t rows_e,
                             const T* psi, T kappa, T* ebar, const T* k, const T* q, T rho, T* w, T* G,
                             int64_t steps, int64_t batch, int64_t R, int64_t n) {
    FlushDenormals ftz;
    // batch element outermost: its traces (e, w, ē: [R, n] each) stay in cache over the T steps
    for (int64_t b = 0; b < batch; ++b) {
        for (int64_t t = 0; t < steps; ++t) {
            const int64_t tb = t * batch + b;
            const T* ut = u + tb * u_rows * n;
            const T* dt = d + tb * rows_e;
            const T* st = s + tb * R;
            T* eb = e + b * rows_e * n;
            if (rows_e == 1) advance_row(eb, ut, dt[0], n);  // one trace row shared by all R neurons
            for (int64_t r = 0; r < R; ++r) {
                T* er = eb + (rows_e == 1 ? 0 : r * n);
                if (rows_e != 1) {  // this neuron's row, advanced just before it is paired (it stays in cache)
                    const T* ur = ut + (u_rows == 1 ? 0 : r * n);
                    if (w) advance_adapted_row(er, w + (b * rows_e + r) * n, ur, dt[r], k[tb * rows_e + r],
                                               q[tb * rows_e + r], rho, n);
                    else advance_row(er, ur, dt[r], n);
                }
                T* gr = G + r * n;
                const T sr = st[r];
                if (psi) {
                    T* fr = ebar + (b * R + r) * n;
                    const T pr = psi[tb * R + r];
                    #pragma omp simd
                    for (int64_t i = 0; i < n; ++i) {
                        fr[i] = kappa * fr[i] + pr * er[i];
                        gr[i] += sr * fr[i];
                    }
                } else {
                    #pragma omp simd
                    for (int64_t i = 0; i < n; ++i) gr[i] += sr * er[i];
                }
            }
        }
    }
}

#define ONLINE_SEQ_EXPORT(T, S)                                                                                  \
    extern "C" void solsa_decay_scan_##S(const T* d, const T* u, const T* y0, T* y, int64_t steps, int64_t rows, \
                                         int64_t n) {                                                           \
        decay_scan<T>(d, u, y0, y, steps, rows, n);                                                             \
    }                                                                                                            \
    extern "C" void solsa_trace_accumulate_##S(const T* d, const T* u, int64_t u_rows, const T* s, T* e,       \
                                               int64_t rows_e, const T* psi, double kappa, T* ebar, const T* k, \
                                               const T* q, double rho, T* w, T* G, int64_t steps, int64_t batch,\
                                               int64_t R, int64_t n) {                                          \
        trace_accumulate<T>(d, u, u_rows, s, e, rows_e, psi, T(kappa), ebar, k, q, T(rho), w, G, steps, batch,  \
                            R, n);                                                                              \
    }
