// BPTT's backward (the adjoint time loop) of a recurrent and/or ALIF layer over a whole sequence: the reverse of
// recurrent_forward (recurrent_seq.h), from the o and u = V - θ - β_a b of every step it gave. Included by scan.cpp
// after its helpers (surrogate, columns, reduce_columns), so that it ships in the scan library; called from
// solsa/fast/recurrent_scan.py. Raw pointers to contiguous CPU tensors, time-first [T, B, n].
//
// The forward of one step (docs/model.md §1, solsa/functional/neuron.py):
//     I[t] = Iff[t] + o[t-1] W_recᵀ
//     V[t] = λ V[t-1] + I[t] - θ_r o[t-1]        (subtract; zero: λ V[t-1] (1 - o[t-1]) + I[t]; none: no reset)
//     b[t] = ρ b[t-1] + o[t-1]                    (ALIF)
//     o[t] = H(u[t]),  u[t] = V[t] - (θ + β_a b[t])    (surrogate ε[t] = ε(u[t]) in the backward)
// Its adjoint, with cV, co, cb = ∂L/∂V[t], ∂L/∂o[t], ∂L/∂b[t] through every later step (after the last: the
// outside gradients of the last state V[T-1], b[T-1]; co 0):
//     du   = (gO[t] + co) ε[t]          ∂L/∂u[t]  (gO: ∂L/∂o[t] from outside)
//     dV   = cV + du                    ∂L/∂V[t] in all  (= ∂L/∂I[t] = ∂L/∂Iff[t], out as gI[t])
//     db   = cb - β_a du                ∂L/∂b[t] in all
//     cV  <- λ dV                       (zero: λ (1 - o[t-1]) dV)
//     co  <- dV W_rec  - θ_r dV  + db   (the recurrent error, the reset path — zero: -λ V[t-1] dV, none: 0 —
//                                        and the adaptation's input; each term only where the layer has it)
//     cb  <- ρ db
//     ∂λ  += dV V[t-1]                  (zero: dV V[t-1] (1 - o[t-1]))
// ∂W_rec = Σ_t dV[t]ᵀ o[t-1] is one matrix product over all steps, taken by the caller. ε[t] needs only u[t]
// (the forward keeps u, not b); V only the hard reset and ∂λ need.
#pragma once
#include <cstdint>
#include <vector>
#include "denormals.h"

// One batch row of one step for reset mode R (0 subtract, 1 zero, 2 none: a template argument, no branch in
// the loop). eps = ε[t] of the row; gO: the row's ∂L/∂o[t] from outside; Vp, op: the row's previous state;
// cV, co, cb carry the row's adjoints in and out (cb null: LIF); gI receives dV.
template <typename T, int64_t R>
static void adjoint_row(const T* gO, const T* eps, const T* Vp, const T* op, const T* lam, T* gI, T* cV, T* co,
                        T* cb, T* glam, int64_t n, T r_amt, T adapt, T rho) {
    #pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
        const T l = lam[j];
        const T du = (gO[j] + co[j]) * eps[j];  // ∂L/∂u[t]
        const T dv = cV[j] + du;
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
            const T db = cb[j] - adapt * du;
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

// The adjoint of recurrent_forward. gO [T, B, n]: ∂L/∂o from outside (null: zero); gV, gb [B, n]: ∂L/∂V[T-1],
// ∂L/∂b[T-1] of the last state (null: zero); u [T, B, n] = V - (θ + β_a b) and o [T, B, n], V0, o0 [B, n]: the
// forward's; V [T, B, n]: its membrane (null unless the reset is zero or ∂λ is wanted); w_rec [n, n] = W_rec
// (row i: the weights into neuron i; null: not recurrent); lam [lam_n]. Out: gI [T, B, n] = ∂L/∂I;
// gV0, go0 [B, n]; gb0 [B, n] (null: a LIF layer, no adaptation); glam [lam_n] (null: not wanted).
template <typename T>
static void recurrent_backward(const T* gO, const T* gV, const T* gb, const T* u, const T* V, const T* o,
                               const T* V0, const T* o0, const T* w_rec, const T* lam, int64_t lam_n,
                               T* gI, T* gV0, T* go0, T* gb0, T* glam, int64_t steps, int64_t batch, int64_t n,
                               int64_t reset, T r_amt, T adapt, T rho, int64_t sur, T width) {
    FlushDenormals ftz;
    const int64_t stride = batch * n;
    const std::vector<T> lc = columns(lam, lam_n, n);
    std::vector<T> zeros(n, T(0)), eps(n), lam_acc(stride, T(0));
    for (int64_t k = 0; k < stride; ++k) {  // the carries start at the last state's outside gradients
        gV0[k] = gV ? gV[k] : T(0);
        go0[k] = T(0);
        if (gb0) gb0[k] = gb ? gb[k] : T(0);
    }
    for (int64_t t = steps - 1; t >= 0; --t) {
        for (int64_t r = 0; r < batch; ++r) {
            const int64_t row = r * n, k0 = t * stride + row;
            const T* Vp = !V ? zeros.data() : t ? V + k0 - stride : V0 + row;
            const T* op = t ? o + k0 - stride : o0 + row;
            surrogate(u + k0, eps.data(), n, T(0), sur, width);
            const T* gOt = gO ? gO + k0 : zeros.data();
            T* gIt = gI + k0;
            T* cor = go0 + row;
            T* cbr = gb0 ? gb0 + row : nullptr;
            if (reset == 0)
                adjoint_row<T, 0>(gOt, eps.data(), Vp, op, lc.data(), gIt, gV0 + row, cor, cbr, lam_acc.data() + row,
                                  n, r_amt, adapt, rho);
            else if (reset == 1)
                adjoint_row<T, 1>(gOt, eps.data(), Vp, op, lc.data(), gIt, gV0 + row, cor, cbr, lam_acc.data() + row,
                                  n, r_amt, adapt, rho);
            else
                adjoint_row<T, 2>(gOt, eps.data(), Vp, op, lc.data(), gIt, gV0 + row, cor, cbr, lam_acc.data() + row,
                                  n, r_amt, adapt, rho);
            if (w_rec) recurrent_error(gIt, w_rec, cor, n);
        }
    }
    if (glam) reduce_columns(lam_acc.data(), glam, lam_n, batch, n);
}

#define RECURRENT_ADJOINT_EXPORT(T, S)                                                                          \
    extern "C" void solsa_recurrent_backward_##S(                                                               \
        const T* gO, const T* gV, const T* gb, const T* u, const T* V, const T* o, const T* V0, const T* o0,   \
        const T* w_rec, const T* lam, int64_t lam_n, T* gI, T* gV0, T* go0, T* gb0, T* glam, int64_t steps,     \
        int64_t batch, int64_t n, int64_t reset, double r_amt, double adapt, double rho, int64_t sur,           \
        double width) {                                                                                         \
        recurrent_backward<T>(gO, gV, gb, u, V, o, V0, o0, w_rec, lam, lam_n, gI, gV0, go0, gb0, glam, steps,   \
                              batch, n, reset, T(r_amt), T(adapt), T(rho), sur, T(width));                      \
    }
