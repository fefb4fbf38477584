// The element-wise time scans of BPTT's whole-sequence path (compiled on first use by solsa/fast/build.py,
// loaded by solsa/fast/scan.py; shipped as package data), and the online rules' trace loops (online_seq.h).
// No PyTorch headers: raw pointers to contiguous CPU tensors, time-first [T, rows, n].
//
// A feedforward LIF layer over a whole sequence is (docs/model.md §1)
//     F[t] = α F[t-1] + β x[t]                  (solsa_filter_forward)
//     I = F Wᵀ + b                              (one matrix product, in PyTorch)
//     V, o = the membrane over I                (solsa_membrane_forward; a leaky readout: the filter again)
// and its backward is the reverse of each: the membrane's adjoint (reset path and surrogate included,
// solsa_membrane_backward), two matrix products, and the filter's adjoint (solsa_filter_backward).
// The arithmetic per element is that of solsa/functional/neuron.py, in the same order;
// tests/test_bptt_scan.py holds the gradients equal to autograd through the PyTorch path.
#include <cmath>
#include <cstdint>
#include <vector>
#include "denormals.h"  // FlushDenormals: flush-to-zero while a scan runs (decaying adjoints)
#include "online_seq.h"  // the online rules' trace loops (e-prop, OSTL, OTTT), exported below
#include "recurrent_seq.h"  // their forward of a recurrent / ALIF layer (model "native"), exported below

enum Reset : int64_t { SUBTRACT = 0, ZERO = 1, NONE = 2 };

// exp(x) for x <= 0, branch-free so that the loops over it vectorise (libm's exp is a scalar call):
// x = k ln2 + r with |r| <= ln2/2, a degree-13 Taylor polynomial in r (relative error < 3e-16), 2^k in the
// exponent bits; 0 below the normal range.
template <typename T>
static inline T exp_nonpositive(T x) {
    const T lo = sizeof(T) == 8 ? T(-708) : T(-87);
    const T xc = x < lo ? lo : x;
    const T k = std::rint(xc * T(1.4426950408889634));
    const T r = (xc - k * T(6.93147180369123816490e-01)) - k * T(1.90821492927058770002e-10);
    T p = T(1.0 / 6227020800.0);
    const T c[13] = {T(1.0 / 479001600.0), T(1.0 / 39916800.0), T(1.0 / 3628800.0), T(1.0 / 362880.0),
                     T(1.0 / 40320.0), T(1.0 / 5040.0), T(1.0 / 720.0), T(1.0 / 120.0), T(1.0 / 24.0),
                     T(1.0 / 6.0), T(0.5), T(1), T(1)};
    for (int i = 0; i < 13; ++i) p = p * r + c[i];
    T scale;
    if constexpr (sizeof(T) == 8) scale = __builtin_bit_cast(double, (int64_t)(k + 1023.0) << 52);
    else scale = __builtin_bit_cast(float, (int32_t)(k + 127.0f) << 23);
    return x < lo ? T(0) : p * scale;
}

// eps[k] = ε(V[k] - θ) for count entries: the surrogates of solsa/surrogate.py
// (0 gaussian, 1 fast_sigmoid, 2 atan, 3 triangle), one loop per kind so that each vectorises
template <typename T>
static void surrogate(const T* V, T* eps, int64_t count, T th, int64_t kind, T w) {
    if (kind == 0) {
        const T c = T(1) / (T(2.5066282746310002) * w);
        #pragma omp simd
        for (int64_t k = 0; k < count; ++k) {
            const T z = (V[k] - th) / w;
            eps[k] = exp_nonpositive(T(-0.5) * (z * z)) * c;
        }
    } else if (kind == 1) {
        #pragma omp simd
        for (int64_t k = 0; k < count; ++k) {
            const T q = T(1) + std::fabs(V[k] - th) / w;
            eps[k] = T(1) / (T(2) * w * (q * q));
        }
    } else if (kind == 2) {
        #pragma omp simd
        for (int64_t k = 0; k < count; ++k) {
            const T q = T(3.141592653589793) * (V[k] - th) / (T(2) * w);
            eps[k] = T(1) / (T(2) * w * (T(1) + q * q));
        }
    } else {
        #pragma omp simd
        for (int64_t k = 0; k < count; ++k) {
            const T q = T(1) - std::fabs(V[k] - th) / w;
            eps[k] = (q > T(0) ? q : T(0)) / w;
        }
    }
}

// Per-column coefficients: c[i] = src[0] (one for the layer) or src[i] (one per column); 1 when src is null.
template <typename T>
static std::vector<T> columns(const T* src, int64_t src_n, int64_t n) {
    std::vector<T> c(n, T(1));
    if (src)
        for (int64_t i = 0; i < n; ++i) c[i] = src[src_n == 1 ? 0 : i];
    return c;
}

// out[k] (k < out_n) = the per-element sums acc [rows, n] summed over rows (out_n = n: one per column) or over
// everything (out_n = 1: one for the layer), in double.
template <typename T>
static void reduce_columns(const T* acc, T* out, int64_t out_n, int64_t rows, int64_t n) {
    std::vector<double> col(n, 0.0);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < n; ++i) col[i] += double(acc[r * n + i]);
    if (out_n == 1) {
        double total = 0.0;
        for (int64_t i = 0; i < n; ++i) total += col[i];
        out[0] = T(total);
    } else {
        for (int64_t i = 0; i < n; ++i) out[i] = T(col[i]);
    }
}

// The filter y[t] = a ⊙ y[t-1] + b ⊙ u[t] over u [T, rows, n] from y0 [rows, n] (y[-1] = y0); a, b have
// one entry or one per column; b null: y[t] = a ⊙ y[t-1] + u[t] (the leaky readout's membrane).
template <typename T>
static void filter_forward(const T* u, const T* a, int64_t a_n, const T* b, int64_t b_n, const T* y0, T* y,
                           int64_t steps, int64_t rows, int64_t n) {
    FlushDenormals ftz;
    const std::vector<T> ac = columns(a, a_n, n), bc = columns(b, b_n, n);
    const int64_t stride = rows * n;
    for (int64_t t = 0; t < steps; ++t) {
        const T* prev = t ? y + (t - 1) * stride : y0;
        const T* in = u + t * stride;
        T* out = y + t * stride;
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t o = r * n;
            if (b) {
                #pragma omp simd
                for (int64_t i = 0; i < n; ++i) out[o + i] = ac[i] * prev[o + i] + bc[i] * in[o + i];
            } else {
                #pragma omp simd
                for (int64_t i = 0; i < n; ++i) out[o + i] = ac[i] * prev[o + i] + in[o + i];
            }
        }
    }
}

// The adjoint of filter_forward. g = ∂L/∂y [T, rows, n]; adj[t] = g[t] + a ⊙ adj[t+1] is ∂L/∂y[t] through
// every later step. Out (each may be null when not wanted, except gy0): du[t] = b ⊙ adj[t];
// ga [a_n] = Σ adj[t] y[t-1] and gb [b_n] = Σ adj[t] u[t], summed over t, rows (and columns when a, b are
// single); gy0 [rows, n] = a ⊙ adj[0].
template <typename T>
static void filter_backward(const T* g, const T* a, int64_t a_n, const T* b, int64_t b_n, const T* u, const T* y,
                            const T* y0, T* du, T* ga, T* gb, T* gy0, int64_t steps, int64_t rows, int64_t n) {
    FlushDenormals ftz;
    const std::vector<T> ac = columns(a, a_n, n), bc = columns(b, b_n, n);
    const int64_t stride = rows * n;
    std::vector<T> adj(stride, T(0)), ga_acc(stride, T(0)), gb_acc(stride, T(0));
    for (int64_t t = steps - 1; t >= 0; --t) {
        const T* prev = t ? y + (t - 1) * stride : y0;
        const T* gt = g + t * stride;
        const T* ut = u + t * stride;
        T* dut = du ? du + t * stride : nullptr;
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t o = r * n;
            #pragma omp simd
            for (int64_t i = 0; i < n; ++i) {
                const T v = gt[o + i] + ac[i] * adj[o + i];
                adj[o + i] = v;
                ga_acc[o + i] += v * prev[o + i];
                gb_acc[o + i] += v * ut[o + i];
            }
            if (dut) {
                #pragma omp simd
                for (int64_t i = 0; i < n; ++i) dut[o + i] = bc[i] * adj[o + i];
            }
        }
    }
    for (int64_t j = 0; j < stride; ++j) gy0[j] = ac[j % n] * adj[j];
    if (ga) reduce_columns(ga_acc.data(), ga, a_n, rows, n);
    if (gb) reduce_columns(gb_acc.data(), gb, b_n, rows, n);
}

// One step of the spiking membrane for one reset mode (a template argument: no branch in the loop):
// V[t] = λ V[t-1] + I[t] - θ_r o[t-1] (subtract), λ V[t-1] (1 - o[t-1]) + I[t] (zero), λ V[t-1] + I[t] (none);
// o[t] = H(V[t] - θ).
template <typename T, int64_t R>
static void membrane_step(const T* It, const T* lam, const T* Vp, const T* op, T* Vt, T* ot, int64_t rows,
                          int64_t n, T th, T r_amt) {
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t o = r * n;
        #pragma omp simd
        for (int64_t i = 0; i < n; ++i) {
            const int64_t j = o + i;
            T v;
            if constexpr (R == SUBTRACT) v = lam[i] * Vp[j] + It[j] - r_amt * op[j];
            else if constexpr (R == ZERO) v = lam[i] * Vp[j] * (T(1) - op[j]) + It[j];
            else v = lam[i] * Vp[j] + It[j];
            Vt[j] = v;
            ot[j] = (v - th) > T(0) ? T(1) : T(0);
        }
    }
}

template <typename T>
static void membrane_forward(const T* I, const T* lam, int64_t lam_n, const T* V0, const T* o0, T* V, T* o,
                             int64_t steps, int64_t rows, int64_t n, int64_t reset, T th, T r_amt) {
    FlushDenormals ftz;
    const std::vector<T> lc = columns(lam, lam_n, n);
    const int64_t stride = rows * n;
    for (int64_t t = 0; t < steps; ++t) {
        const T* Vp = t ? V + (t - 1) * stride : V0;
        const T* op = t ? o + (t - 1) * stride : o0;
        const int64_t k = t * stride;
        if (reset == SUBTRACT) membrane_step<T, SUBTRACT>(I + k, lc.data(), Vp, op, V + k, o + k, rows, n, th, r_amt);
        else if (reset == ZERO) membrane_step<T, ZERO>(I + k, lc.data(), Vp, op, V + k, o + k, rows, n, th, r_amt);
        else membrane_step<T, NONE>(I + k, lc.data(), Vp, op, V + k, o + k, rows, n, th, r_amt);
    }
}

// One step of the adjoint, for one reset mode (a template argument, so that the loop has no branch).
// In: gO, gV (∂L/∂o[t], ∂L/∂V[t] from outside), eps = ε[t], the previous state Vp, op and λ per column;
// cV, co carry ∂L/∂V[t], ∂L/∂o[t] from step t+1 and leave with those of step t-1.
template <typename T, int64_t R>
static void adjoint_step(const T* gO, const T* gV, const T* eps, const T* Vp, const T* op, const T* lam, T* gI,
                         T* cV, T* co, T* glam, int64_t rows, int64_t n, T r_amt) {
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t o = r * n;
        #pragma omp simd
        for (int64_t i = 0; i < n; ++i) {
            const int64_t j = o + i;
            const T l = lam[i];
            const T dv = gV[j] + cV[j] + (gO[j] + co[j]) * eps[j];
            gI[j] = dv;
            if constexpr (R == SUBTRACT) {
                cV[j] = l * dv;
                co[j] = -r_amt * dv;
                glam[j] += dv * Vp[j];
            } else if constexpr (R == ZERO) {
                cV[j] = l * (T(1) - op[j]) * dv;
                co[j] = -(l * Vp[j]) * dv;
                glam[j] += dv * (Vp[j] * (T(1) - op[j]));
            } else {
                cV[j] = l * dv;
                co[j] = T(0);
                glam[j] += dv * Vp[j];
            }
        }
    }
}

// The adjoint of membrane_forward. gO, gV: ∂L/∂o[t], ∂L/∂V[t] from outside (either may be null: zero).
// Out: gI[t] = ∂L/∂I[t] (the total ∂L/∂V[t]); gV0, go0 [rows, n] = ∂L/∂V0, ∂L/∂o0; glam [lam_n]
// (null: not wanted) = Σ ∂L/∂V[t] ∂V[t]/∂λ over t and rows (and columns when λ is single).
template <typename T>
static void membrane_backward(const T* gO, const T* gV, const T* V, const T* o, const T* V0, const T* o0,
                              const T* lam, int64_t lam_n, T* gI, T* gV0, T* go0, T* glam, int64_t steps,
                              int64_t rows, int64_t n, int64_t reset, T th, T r_amt, int64_t sur, T width) {
    FlushDenormals ftz;
    const int64_t stride = rows * n;
    const std::vector<T> lam_col = columns(lam, lam_n, n);
    std::vector<T> zeros(stride, T(0)), eps(stride), lam_acc(stride, T(0));
    for (int64_t j = 0; j < stride; ++j) gV0[j] = go0[j] = T(0);
    for (int64_t t = steps - 1; t >= 0; --t) {
        const T* Vp = t ? V + (t - 1) * stride : V0;
        const T* op = t ? o + (t - 1) * stride : o0;
        const T* gOt = gO ? gO + t * stride : zeros.data();
        const T* gVt = gV ? gV + t * stride : zeros.data();
        surrogate(V + t * stride, eps.data(), stride, th, sur, width);
        T* gIt = gI + t * stride;
        if (reset == SUBTRACT)
            adjoint_step<T, SUBTRACT>(gOt, gVt, eps.data(), Vp, op, lam_col.data(), gIt, gV0, go0, lam_acc.data(),
                                      rows, n, r_amt);
        else if (reset == ZERO)
            adjoint_step<T, ZERO>(gOt, gVt, eps.data(), Vp, op, lam_col.data(), gIt, gV0, go0, lam_acc.data(), rows,
                                  n, r_amt);
        else
            adjoint_step<T, NONE>(gOt, gVt, eps.data(), Vp, op, lam_col.data(), gIt, gV0, go0, lam_acc.data(), rows,
                                  n, r_amt);
    }
    if (glam) reduce_columns(lam_acc.data(), glam, lam_n, rows, n);
}

// BPTT's adjoint of a recurrent / ALIF layer (uses surrogate, columns and reduce_columns above), exported below
#include "recurrent_adjoint.h"

#define SCAN_EXPORT(T, S)                                                                                        \
    extern "C" void solsa_filter_forward_##S(const T* u, const T* a, int64_t a_n, const T* b, int64_t b_n,      \
                                             const T* y0, T* y, int64_t steps, int64_t rows, int64_t n) {     \
        filter_forward<T>(u, a, a_n, b, b_n, y0, y, steps, rows, n);                                           \
    }                                                                                                            \
    extern "C" void solsa_filter_backward_##S(const T* g, const T* a, int64_t a_n, const T* b, int64_t b_n,     \
                                              const T* u, const T* y, const T* y0, T* du, T* ga, T* gb,       \
                                              T* gy0, int64_t steps, int64_t rows, int64_t n) {               \
        filter_backward<T>(g, a, a_n, b, b_n, u, y, y0, du, ga, gb, gy0, steps, rows, n);                      \
    }                                                                                                            \
    extern "C" void solsa_membrane_forward_##S(const T* I, const T* lam, int64_t lam_n, const T* V0,           \
                                               const T* o0, T* V, T* o, int64_t steps, int64_t rows,          \
                                               int64_t n, int64_t reset, double th, double r_amt) {           \
        membrane_forward<T>(I, lam, lam_n, V0, o0, V, o, steps, rows, n, reset, T(th), T(r_amt));            \
    }                                                                                                            \
    extern "C" void solsa_membrane_backward_##S(const T* gO, const T* gV, const T* V, const T* o, const T* V0, \
                                                const T* o0, const T* lam, int64_t lam_n, T* gI, T* gV0,     \
                                                T* go0, T* glam, int64_t steps, int64_t rows, int64_t n,     \
                                                int64_t reset, double th, double r_amt, int64_t sur,         \
                                                double width) {                                               \
        membrane_backward<T>(gO, gV, V, o, V0, o0, lam, lam_n, gI, gV0, go0, glam, steps, rows, n, reset,     \
                             T(th), T(r_amt), sur, T(width));                                                 \
    }

SCAN_EXPORT(float, f32)
SCAN_EXPORT(double, f64)
ONLINE_SEQ_EXPORT(float, f32)
ONLINE_SEQ_EXPORT(double, f64)
RECURRENT_SEQ_EXPORT(float, f32)
RECURRENT_SEQ_EXPORT(double, f64)
RECURRENT_ADJOINT_EXPORT(float, f32)
RECURRENT_ADJOINT_EXPORT(double, f64)

extern "C" int64_t solsa_scan_abi_version() { return 6; }
