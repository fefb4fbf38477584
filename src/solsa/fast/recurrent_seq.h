// The forward of a recurrent and/or ALIF layer over a stretch of T steps, for the online rules' whole-sequence
// path (e-prop, OSTL, OTTT on model "native"; solsa/fast/online_seq.py), included by scan.cpp so that it ships
// in its library. Raw pointers to contiguous CPU tensors, time-first.
//
// The feedforward part of the current (F[t] Wᵀ + b) does not depend on the layer's output and is one matrix
// product over all steps in PyTorch; what stays here is the recursion through the layer's own output
// (docs/model.md, solsa/functional/neuron.py, the same arithmetic per element):
//     I[t] = Iff[t] + o[t-1] W_recᵀ                  (recurrent; o is 0/1: the sum runs over the spiking neurons)
//     V[t] = λ V[t-1] + I[t] - θ_r o[t-1]            (subtract; zero: λ V[t-1] (1 - o[t-1]) + I[t]; none)
//     b[t] = ρ b[t-1] + o[t-1]                        (ALIF)
//     o[t] = H(V[t] - (θ + β_a b[t]))
#pragma once
#include <cstdint>
#include <vector>
#include "denormals.h"

// One step for one reset mode R (0 subtract, 1 zero, 2 none; a template argument: no branch in the loop) and
// one row (a batch element) of n neurons. cur holds I[t] on entry; b_prev/b_out null for a LIF layer.
template <typename T, int64_t R>
static void recurrent_row(const T* cur, const T* lam, const T* Vp, const T* op, const T* bp, T* Vt, T* ot, T* bt,
                          int64_t n, T th, T r_amt, T adapt, T rho) {
    #pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
        T v;
        if constexpr (R == 0) v = lam[j] * Vp[j] + cur[j] - r_amt * op[j];
        else if constexpr (R == 1) v = lam[j] * Vp[j] * (T(1) - op[j]) + cur[j];
        else v = lam[j] * Vp[j] + cur[j];
        Vt[j] = v;
        T thr = th;
        if (bp) {
            const T b = rho * bp[j] + op[j];
            bt[j] = b;
            thr = th + adapt * b;
        }
        ot[j] = (v - thr) > T(0) ? T(1) : T(0);
    }
}

// Iff [T, B, n] (the feedforward current); w_rec_t [n, n] = W_recᵀ (row k: the weights out of neuron k; null:
// not recurrent); lam [lam_n]; V0, o0, b0 [B, n] (b0 null: LIF). Out: V, o, b [T, B, n] (b null: LIF).
template <typename T>
static void recurrent_forward(const T* Iff, const T* w_rec_t, const T* lam, int64_t lam_n, const T* V0,
                              const T* o0, const T* b0, T* V, T* o, T* b, int64_t steps, int64_t batch, int64_t n,
                              int64_t reset, T th, T r_amt, T adapt, T rho) {
    FlushDenormals ftz;
    std::vector<T> lc(n), cur(n);
    for (int64_t j = 0; j < n; ++j) lc[j] = lam[lam_n == 1 ? 0 : j];
    const int64_t stride = batch * n;
    for (int64_t t = 0; t < steps; ++t) {
        for (int64_t r = 0; r < batch; ++r) {
            const int64_t k0 = t * stride + r * n;
            const T* Vp = t ? V + k0 - stride : V0 + r * n;
            const T* op = t ? o + k0 - stride : o0 + r * n;
            const T* bp = b0 ? (t ? b + k0 - stride : b0 + r * n) : nullptr;
            for (int64_t j = 0; j < n; ++j) cur[j] = Iff[k0 + j];
            if (w_rec_t) {
                for (int64_t k = 0; k < n; ++k) {
                    const T ok = op[k];
                    if (ok == T(0)) continue;
                    const T* wk = w_rec_t + k * n;
                    #pragma omp simd
                    for (int64_t j = 0; j < n; ++j) cur[j] += ok * wk[j];
                }
            }
            T* bt = bp ? b + k0 : nullptr;
            if (reset == 0)
                recurrent_row<T, 0>(cur.data(), lc.data(), Vp, op, bp, V + k0, o + k0, bt, n, th, r_amt, adapt, rho);
            else if (reset == 1)
                recurrent_row<T, 1>(cur.data(), lc.data(), Vp, op, bp, V + k0, o + k0, bt, n, th, r_amt, adapt, rho);
            else
                recurrent_row<T, 2>(cur.data(), lc.data(), Vp, op, bp, V + k0, o + k0, bt, n, th, r_amt, adapt, rho);
        }
    }
}

#define RECURRENT_SEQ_EXPORT(T, S)                                                                               \
    extern "C" void solsa_recurrent_forward_##S(const T* Iff, const T* w_rec_t, const T* lam, int64_t lam_n,    \
                                                const T* V0, const T* o0, const T* b0, T* V, T* o, T* b,       \
                                                int64_t steps, int64_t batch, int64_t n, int64_t reset,        \
                                                double th, double r_amt, double adapt, double rho) {           \
        recurrent_forward<T>(Iff, w_rec_t, lam, lam_n, V0, o0, b0, V, o, b, steps, batch, n, reset, T(th),     \
                             T(r_amt), T(adapt), T(rho));                                                       \
    }
