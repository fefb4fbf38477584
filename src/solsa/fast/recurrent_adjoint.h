// BPTT's backward (the adjoint time loop) of a recurrent and/or ALIF layer over a whole sequence: the reverse of
// recurrent_forward (recurrent_seq.h), whose V, o, b over all steps are what it takes. Included by scan.cpp
// after its helpers (surrogate, columns, reduce_columns), so that it ships in the scan library; called from
// solsa/fast/recurrent_scan.py. Raw pointers to contiguous CPU tensors, time-first [T, B, n].
//
// The forward of one step (docs/model.md §1, solsa/functional/neuron.py):
//     I[t] = Iff[t] + o[t-1] W_recᵀ
//     V[t] = λ V[t-1] + I[t] - θ_r o[t-1]        (subtract; zero: λ V[t-1] (1 - o[t-1]) + I[t]; none: no reset)
//     b[t] = ρ b[t-1] + o[t-1]                    (ALIF)
//     o[t] = H(u[t]),  u[t] = V[t] - (θ + β_a b[t])    (surrogate ε[t] = ε(u[t]) in the backward)
// Its adjoint, with cV, co, cb = ∂L/∂V[t], ∂L/∂o[t], ∂L/∂b[t] through every later step (0 after the last):
//     go   = gO[t] + co                 ∂L/∂o[t] in all
//     dV   = gV[t] + cV + go ε[t]       ∂L/∂V[t] in all  (= ∂L/∂I[t] = ∂L/∂Iff[t], out as gI[t])
//     db   = gb[t] + cb - β_a go ε[t]   ∂L/∂b[t] in all
//     cV  <- λ dV                       (zero: λ (1 - o[t-1]) dV)
//     co  <- dV W_rec  - θ_r dV  + db   (the recurrent error, the reset path — zero: -λ V[t-1] dV, none: 0 —
//                                        and the adaptation's input; each term only where the layer has it)
//     cb  <- ρ db
//     ∂λ  += dV V[t-1]                  (zero: dV V[t-1] (1 - o[t-1]))
// ∂W_rec = Σ_t dV[t]ᵀ o[t-1] is one matrix product over all steps, taken by the caller.
#pragma once
#include <cstdint>
#include <vector>
#include "denormals.h"

// One batch row of one step for reset mode R (0 subtract, 1 zero, 2 none: a template argument, no branch in
// the loop). eps = ε[t] of the row; gO, gV, gb: the row's outside gradients (gb null: LIF); Vp, op: the row's
// previous state; cV, co, cb carry the row's adjoints in and out (cb null: LIF); gI receives dV.
template <typename T, int64_t R>
static void adjoint_row(const T* gO, const T* gV, const T* gb, const T* eps, const T* Vp, const T* op,
                        const T* lam, T* gI, T* cV, T* co, T* cb, T* glam, int64_t n, T r_amt, T adapt, T rho) {
    #pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
        const T l = lam[j];
        const T du = (gO[j] + co[j]) * eps[j];  // ∂L/∂u[t]
        const T dv = gV[j] + cV[j] + du;
        gI[j] = dv;
        T c;
        if constexpr (R == 0) {
            cV[j] = l * dv;
            c = -r_amt * dv;
            glam[j] += dv * Vp[j];
        } else if constexpr (R == 1) {
            cV[j] = l * (T(1) - op[j]) * dv;
            c = -(l * Vp[j]) * dv;
            glam[j] += dv * (Vp[j] * (T(1) - op[j]));
        } else {
            cV[j] = l * dv;
            c = T(0);
            glam[j] += dv * Vp[j];
        }
        if (cb) {
            const T db = gb[j] + cb[j] - adapt * du;
            cb[j] = rho * db;
            c += db;
        }
        co[j] = c;
    }
}

// The recurrent error of one row: co += dV W_rec (row i of W_rec scaled by dV[i]), four rows of W_rec per pass
// over co (a quarter of its loads and stores).
template <typename T>
static void recurrent_error(const T* dv, const T* w_rec, T* co, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const T d0 = dv[i], d1 = dv[i + 1], d2 = dv[i + 2], d3 = dv[i + 3];
        const T *w0 = w_rec + i * n, *w1 = w0 + n, *w2 = w1 + n, *w3 = w2 + n;
        #pragma omp simd
        for (int64_t k = 0; k < n; ++k) co[k] += (d0 * w0[k] + d1 * w1[k]) + (d2 * w2[k] + d3 * w3[k]);
    }
    for (; i < n; ++i) {
        const T d = dv[i];
        const T* wi = w_rec + i * n;
        #pragma omp simd
        for (int64_t k = 0; k < n; ++k) co[k] += d * wi[k];
    }
}

// The adjoint of recurrent_forward. gO, gV, gb [T, B, n]: ∂L/∂o, ∂L/∂V, ∂L/∂b from outside (each may be null:
// zero); V, o, b [T, B, n] and V0, o0 [B, n]: the forward's (b null: LIF; b[-1] is not needed); w_rec [n, n] = W_rec
// (row i: the weights into neuron i; null: not recurrent); lam [lam_n]. Out: gI [T, B, n] = ∂L/∂I;
// gV0, go0 [B, n]; gb0 [B, n] (null for LIF); glam [lam_n] (null: not wanted).
template <typename T>
static void recurrent_backward(const T* gO, const T* gV, const T* gb, const T* V, const T* o, const T* b,
                               const T* V0, const T* o0, const T* w_rec, const T* lam, int64_t lam_n,
                               T* gI, T* gV0, T* go0, T* gb0, T* glam, int64_t steps, int64_t batch, int64_t n,
                               int64_t reset, T th, T r_amt, T adapt, T rho, int64_t sur, T width) {
    FlushDenormals ftz;
    const int64_t stride = batch * n;
    const std::vector<T> lc = columns(lam, lam_n, n);
    std::vector<T> zeros(n, T(0)), u(n), eps(n), lam_acc(stride, T(0));
    for (int64_t k = 0; k < stride; ++k) {
        gV0[k] = go0[k] = T(0);
        if (gb0) gb0[k] = T(0);
    }
    T* cb = b ? gb0 : nullptr;
    for (int64_t t = steps - 1; t >= 0; --t) {
        for (int64_t r = 0; r < batch; ++r) {
            const int64_t row = r * n, k0 = t * stride + row;
            const T* Vp = t ? V + k0 - stride : V0 + row;
            const T* op = t ? o + k0 - stride : o0 + row;
            const T* Vt = V + k0;
            if (b) {
                const T* bt = b + k0;
                #pragma omp simd
                for (int64_t j = 0; j < n; ++j) u[j] = Vt[j] - (th + adapt * bt[j]);
                surrogate(u.data(), eps.data(), n, T(0), sur, width);
            } else {
                surrogate(Vt, eps.data(), n, th, sur, width);
            }
            const T* gOt = gO ? gO + k0 : zeros.data();
            const T* gVt = gV ? gV + k0 : zeros.data();
            const T* gbt = gb ? gb + k0 : zeros.data();
            T* cbr = cb ? cb + row : nullptr;
            T* gIt = gI + k0;
            T* cor = go0 + row;
            if (reset == 0)
                adjoint_row<T, 0>(gOt, gVt, gbt, eps.data(), Vp, op, lc.data(), gIt, gV0 + row, cor, cbr,
                                  lam_acc.data() + row, n, r_amt, adapt, rho);
            else if (reset == 1)
                adjoint_row<T, 1>(gOt, gVt, gbt, eps.data(), Vp, op, lc.data(), gIt, gV0 + row, cor, cbr,
                                  lam_acc.data() + row, n, r_amt, adapt, rho);
            else
                adjoint_row<T, 2>(gOt, gVt, gbt, eps.data(), Vp, op, lc.data(), gIt, gV0 + row, cor, cbr,
                                  lam_acc.data() + row, n, r_amt, adapt, rho);
            if (w_rec) recurrent_error(gIt, w_rec, cor, n);
        }
    }
    if (glam) reduce_columns(lam_acc.data(), glam, lam_n, batch, n);
}

#define RECURRENT_ADJOINT_EXPORT(T, S)                                                                          \
    extern "C" void solsa_recurrent_backward_##S(                                                               \
        const T* gO, const T* gV, const T* gb, const T* V, const T* o, const T* b, const T* V0, const T* o0,   \
        const T* w_rec, const T* lam, int64_t lam_n, T* gI, T* gV0, T* go0, T* gb0, T* glam,      \
        int64_t steps, int64_t batch, int64_t n, int64_t reset, double th, double r_amt, double adapt,          \
        double rho, int64_t sur, double width) {                                                                \
        recurrent_backward<T>(gO, gV, gb, V, o, b, V0, o0, w_rec, lam, lam_n, gI, gV0, go0, gb0, glam,     \
                              steps, batch, n, reset, T(th), T(r_amt), T(adapt), T(rho), sur, T(width));       \
    }
