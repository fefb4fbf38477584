// The fused SOLSA step (compiled on first use by solsa/fast/build.py; shipped as package data).
//
// The kernel needs no PyTorch headers: it works on raw pointers that solsa/fast/fused.py takes
// from contiguous CPU tensors, so it compiles in about a second with any C++17 compiler.
//
// One call advances every layer by one time step and, with a target, computes the loss gradient
// and accumulates every parameter gradient (docs/model.md §2-§3). The arithmetic is exactly that of
// solsa/rules/solsa.py (the reference), up to the order of floating-point summations;
// tests/test_fast_path.py holds the two equal. The cross-layer credit modes "next" and "cascade"
// (docs/credit.md) are in credit.h, included below; tests/test_credit.py holds them equal to the reference.
// The [B, N_out, N_in] traces may be stored narrower than the arithmetic (trace_dtype; storage.h): the
// functions that touch them are templated on the storage type S as well as the arithmetic type T.
#include <cmath>
#include <cstdint>
#include <cstring>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "denormals.h"  // FlushDenormals
#include "storage.h"

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
    void *wT, *cur, *wp, *d;     // scratch [n_in,n_out] (W transposed), [B,n_out] x3
    void *wcopy;                 // [n_out,n_in]: the W that wT was made from
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
    int64_t w_dirty;  // bit l set: layer l's W changed since the last call (re-transpose it)
    LayerDesc* layers;
    void** params;   // 5 per layer: W, b (or null), alpha, beta, lam
    double magnitude;  // out: sum over layers of |this step's weight gradient| (when track)
    int64_t storage;   // the [B, N_out, N_in] traces (e, a per channel, their credit stages): 0 T, 1 float16, 2 bfloat16
};

template <typename T, typename S>
static void settle(Plan* plan);

// exp(x) for x <= 0, branch-free so that loops over it vectorise (libm's expf/exp are scalar calls):
// Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, Taylor polynomial (error < 2e-16 for double,
// < 1e-7 relative for float), 2^n built in the exponent bits. Underflows to 0 below the normal range.
static inline double exp_neg(double x) {
    const double lo = -708.0;
    const double xc = x < lo ? lo : x;
    const double n = std::rint(xc * 1.4426950408889634);  // rint (not floor) vectorises
    const double r = (xc - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    const double scale = __builtin_bit_cast(double, (int64_t)(n + 1023.0) << 52);
    return x < lo ? 0.0 : p * scale;
}

static inline float exp_neg(float x) {
    const float lo = -87.0f;
    const float xc = x < lo ? lo : x;
    const float n = std::rint(xc * 1.44269504f);
    const float r = (xc - n * 0.693145751953125f) - n * 1.428606765330187045e-06f;
    float p = 1.0f / 40320.0f;
    p = p * r + 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const float scale = __builtin_bit_cast(float, (int32_t)(n + 127.0f) << 23);
    return x < lo ? 0.0f : p * scale;
}

// eps = surrogate(V - th) for a whole row; one loop per kind so that each vectorises
template <typename T>
static void surrogate_row(const T* V, T* eps, int64_t count, T th, int64_t kind, T w) {
    switch (kind) {
        case 0: {
            const T c = T(1) / (T(2.5066282746310002) * w);
            #pragma omp simd
            for (int64_t k = 0; k < count; ++k) {
                const T z = (V[k] - th) / w;
                eps[k] = exp_neg(T(-0.5) * (z * z)) * c;
            }
            break;
        }
        case 1:
            #pragma omp simd
            for (int64_t k = 0; k < count; ++k) {
                const T q = T(1) + std::fabs(V[k] - th) / w;
                eps[k] = T(1) / (T(2) * w * (q * q));
            }
            break;
        case 2:
            #pragma omp simd
            for (int64_t k = 0; k < count; ++k) {
                const T q = T(3.141592653589793) * (V[k] - th) / (T(2) * w);
                eps[k] = T(1) / (T(2) * w * (T(1) + q * q));
            }
            break;
        default:
            #pragma omp simd
            for (int64_t k = 0; k < count; ++k) {
                const T q = T(1) - std::fabs(V[k] - th) / w;
                eps[k] = (q > T(0) ? q : T(0)) / w;
            }
    }
}


static inline int n_threads(int64_t work, int64_t par_min) {
#ifdef _OPENMP
    if (work < par_min) return 1;
    return omp_get_max_threads();
#else
    (void)work; (void)par_min;
    return 1;
#endif
}

// f(j) for every neuron j (independent columns), on several threads when `work` is at least par_min
template <typename Fn>
static void for_each_neuron(int64_t no, int64_t work, int64_t par_min, Fn&& f) {
    const int nt = n_threads(work, par_min);
    if (nt > 1) {
        #pragma omp parallel num_threads(nt)
        {
            FlushDenormals ftz;
            #pragma omp for schedule(static)
            for (int64_t j = 0; j < no; ++j) f(j);
        }
    } else {
        for (int64_t j = 0; j < no; ++j) f(j);
    }
}

// W^T [n_in, n_out], so that the currents vectorise over neurons; rebuilt only when W's bits changed
// (whoever wrote them: optimizer, load_state_dict, .data), found by comparing with a copy. A cache:
// rebuilding it changes no result.
template <typename T>
static void refresh_wt(const LayerDesc& L, const T* W) {
    const int64_t ni = L.n_in, no = L.n_out;
    T* Wc = (T*)L.wcopy;
    T* WT = (T*)L.wT;
    if (std::memcmp(Wc, W, sizeof(T) * no * ni) != 0) {
        std::memcpy(Wc, W, sizeof(T) * no * ni);
        for (int64_t j = 0; j < no; ++j)
            for (int64_t i = 0; i < ni; ++i) WT[i * no + j] = W[j * ni + i];
    }
}

// F[t] = alpha F[t-1] + beta x[t] into Fn, and the current I = Fn W^T + b into cur (zero inputs skipped),
// in the order forward_layer and predict_layer share, so that both give the same bits. With p, also
// wp = W p (the per-layer alpha trace's product) in the same pass over W^T: each sum in the order of its own loop.
template <typename T>
static void filter_and_current(const LayerDesc& L, void* const* P, int64_t B, const T* x, const T* F, T* Fn,
                               T* cur, const T* p = nullptr, T* wp = nullptr) {
    const int64_t ni = L.n_in, no = L.n_out;
    const T* bias = (const T*)P[1];
    const T* alpha = (const T*)P[2];
    const T* beta = (const T*)P[3];
    const T* WT = (const T*)L.wT;
    const bool fpc = L.filter_per_channel != 0;
    for (int64_t b = 0; b < B; ++b) {
        for (int64_t i = 0; i < ni; ++i) {
            const int64_t k = b * ni + i;
            Fn[k] = (fpc ? alpha[i] : alpha[0]) * F[k] + (fpc ? beta[i] : beta[0]) * x[k];
        }
        T* __restrict cb = cur + b * no;
        T* __restrict wb = p ? wp + b * no : nullptr;
        for (int64_t j = 0; j < no; ++j) cb[j] = T(0);
        if (p) for (int64_t j = 0; j < no; ++j) wb[j] = T(0);
        for (int64_t i = 0; i < ni; ++i) {
            const T* __restrict WTi = WT + i * no;
            const T f = Fn[b * ni + i];
            const T pi = p ? p[b * ni + i] : T(0);
            if (f != T(0) && pi != T(0)) {
                #pragma omp simd
                for (int64_t j = 0; j < no; ++j) {
                    cb[j] += f * WTi[j];
                    wb[j] += pi * WTi[j];
                }
            } else if (f != T(0)) {
                #pragma omp simd
                for (int64_t j = 0; j < no; ++j) cb[j] += f * WTi[j];
            } else if (pi != T(0)) {
                #pragma omp simd
                for (int64_t j = 0; j < no; ++j) wb[j] += pi * WTi[j];
            }
        }
        if (bias) for (int64_t j = 0; j < no; ++j) cb[j] += bias[j];
    }
}

// V[t] and o[t] of one neuron from V[t-1], o[t-1] and the current (docs/model.md §1)
template <typename T>
static inline T membrane(int64_t reset, T lj, T Vp, T op, T c, T ra) {
    if (reset == 0) return lj * Vp + c - ra * op;
    if (reset == 1) return lj * Vp * (T(1) - op) + c;
    return lj * Vp + c;
}

// The output of one layer at the next step from its current state, into Fn [B,n_in], Vn and on [B,n_out]:
// state, traces and accumulators are not written (only the W^T cache may be refreshed).
template <typename T>
static void predict_layer(const LayerDesc& L, void* const* P, int64_t B, const T* x, bool w_dirty, T* Fn, T* Vn,
                          T* on) {
    const int64_t no = L.n_out;
    if (w_dirty) refresh_wt<T>(L, (const T*)P[0]);
    filter_and_current<T>(L, P, B, x, (const T*)L.F, Fn, Vn);
    const T* lam = (const T*)P[4];
    const T* V = (const T*)L.V;
    const T* o = (const T*)L.o;
    const bool spiking = L.spiking != 0;
    const int64_t reset = spiking ? L.reset : 2;
    const T th = (T)L.threshold, ra = (T)L.reset_amount;
    for (int64_t bj = 0; bj < B * no; ++bj) {
        const T v = membrane<T>(reset, L.lam_per_neuron ? lam[bj % no] : lam[0], V[bj], o[bj], Vn[bj], ra);
        Vn[bj] = v;
        on[bj] = spiking ? (v - th > T(0) ? T(1) : T(0)) : v;
    }
}

#include "alif.h"  // ALIF and recurrent layers

// A pure step: the network's output at the next step (into y_out), from the current state; scratch holds
// three buffers per layer (F [B,n_in], V and o [B,n_out]). Nothing the learner keeps is written.
template <typename T>
static void predict_all(const Plan* plan, const T* x, T* y_out, void* const* scratch) {
    const T* in = x;
    for (int64_t l = 0; l < plan->n_layers; ++l) {
        T* on = (T*)scratch[3 * l + 2];
        if (plan->layers[l].alif)
            alif_predict_layer<T>(plan, l, in, (T*)scratch[3 * l], (T*)scratch[3 * l + 1], on);
        else
            predict_layer<T>(plan->layers[l], plan->params + 5 * l, plan->batch, in, (plan->w_dirty >> l) & 1,
                             (T*)scratch[3 * l], (T*)scratch[3 * l + 1], on);
        in = on;
    }
    const LayerDesc& top = plan->layers[plan->n_layers - 1];
    std::memcpy(y_out, in, sizeof(T) * plan->batch * top.n_out);
}

#include "credit.h"

template <typename T, typename S>
static void forward_layer(const LayerDesc& L, void* const* P, int64_t B, const T* x, bool rf, int64_t par_min,
                          bool w_dirty, bool pending) {
    const int64_t ni = L.n_in, no = L.n_out;
    const T* W = (const T*)P[0];
    const T* alpha = (const T*)P[2];
    const T* lam = (const T*)P[4];
    T* F = (T*)L.F; T* V = (T*)L.V; T* o = (T*)L.o; T* eps = (T*)L.eps;
    S* e = (S*)L.e; T* p = (T*)L.p; T* a = (T*)L.a; T* m = (T*)L.m; T* n = (T*)L.n;
    S* ac = (S*)L.a;  // a [B, N_out, N_in] (one alpha per channel) in the storage type
    T* cur = (T*)L.cur; T* wp = (T*)L.wp; T* dd = (T*)L.d;
    const bool fpc = L.filter_per_channel != 0, lpn = L.lam_per_neuron != 0, spiking = L.spiking != 0;
    const bool a_layer = a && !fpc, a_chan = a && fpc;
    const int64_t reset = spiking ? L.reset : 2;
    const T th = (T)L.threshold, ra = (T)L.reset_amount, width = (T)L.width;
    const int64_t sur = L.surrogate;

    if (w_dirty) refresh_wt<T>(L, W);
    // p[t] = F[t-1] + alpha p[t-1], before F moves on
    if (p) {
        for (int64_t b = 0; b < B; ++b)
            for (int64_t i = 0; i < ni; ++i) p[b * ni + i] = F[b * ni + i] + (fpc ? alpha[i] : alpha[0]) * p[b * ni + i];
    }
    // F[t] = alpha F[t-1] + beta x[t] (in place) and I = F W^T + b; with one alpha per layer, W p in the same pass
    filter_and_current<T>(L, P, B, x, F, F, cur, a_layer ? p : nullptr, wp);
    // d[t] = dV[t]/dV[t-1], the reset path included (docs/model.md §2)
    for (int64_t bj = 0; bj < B * no; ++bj) {
        const T lj = lpn ? lam[bj % no] : lam[0];
        T d;
        if (reset == 2) d = lj;
        else if (reset == 0) d = rf ? lj - ra * eps[bj] : lj;
        else { const T kept = lj * (T(1) - o[bj]); d = rf ? kept - lj * V[bj] * eps[bj] : kept; }
        dd[bj] = d;
    }
    // e[t] = F[t] + d e[t-1]  (and a[t] = W p[t] + d a[t-1] for one alpha per channel). With `pending`,
    // the last step's weight gradient sum_b delta[t-1] e[t-1] is added to gW in the same pass over e[t-1]:
    // one read of e per step instead of two. Columns j are independent (gW row j), so they run in parallel.
    T* gW = (T*)L.gW;
    const T* delta = (const T*)L.delta;
    auto update_neuron = [&](int64_t j) {
        T* gWj = gW + j * ni;
        for (int64_t b = 0; b < B; ++b) {
            const int64_t bj = b * no + j;
            const T d = dd[bj];
            const T* Fb = F + b * ni;
            S* ej = e + bj * ni;
            const T dp = pending ? delta[bj] : T(0);
            if (dp != T(0)) {
                update_row<T, S>(ej, ni, [&](int64_t k0, int64_t m, T* v) {
                    T* g = gWj + k0;
                    const T* f = Fb + k0;
                    #pragma omp simd
                    for (int64_t i = 0; i < m; ++i) {
                        const T ev = v[i];
                        g[i] += dp * ev;
                        v[i] = f[i] + d * ev;
                    }
                });
            } else {
                update_row<T, S>(ej, ni, [&](int64_t k0, int64_t m, T* v) {
                    const T* f = Fb + k0;
                    #pragma omp simd
                    for (int64_t i = 0; i < m; ++i) v[i] = f[i] + d * v[i];
                });
            }
            if (a_chan) {
                update_row<T, S>(ac + bj * ni, ni, [&](int64_t k0, int64_t m, T* v) {
                    const T* Wj = W + j * ni + k0;
                    const T* pb = p + b * ni + k0;
                    #pragma omp simd
                    for (int64_t i = 0; i < m; ++i) v[i] = Wj[i] * pb[i] + d * v[i];
                });
            }
        }
    };
    for_each_neuron(no, B * no * ni, par_min, update_neuron);
    // per neuron: the alpha (per layer), lambda and bias traces, then the membrane and the spike
    for (int64_t bj = 0; bj < B * no; ++bj) {
        const T lj = lpn ? lam[bj % no] : lam[0];
        const T d = dd[bj], Vp = V[bj], op = o[bj];
        if (a_layer) a[bj] = wp[bj] + d * a[bj];
        if (m) m[bj] = ((reset == 1) ? Vp * (T(1) - op) : Vp) + d * m[bj];
        if (n) n[bj] = T(1) + d * n[bj];
        const T Vn = membrane<T>(reset, lj, Vp, op, cur[bj], ra);
        V[bj] = Vn;
        o[bj] = spiking ? (Vn - th > T(0) ? T(1) : T(0)) : Vn;
    }
    if (spiking) {
        surrogate_row<T>(V, eps, B * no, th, sur, width);
    } else {
        for (int64_t bj = 0; bj < B * no; ++bj) eps[bj] = T(1);
    }
}

// Accumulates this step's gradient of one layer from g = dl_t/do[t]; writes the error for the layer
// below into L.gbelow when `below`. Returns sum |dl_t/dW| when `track`.
template <typename T, typename S>
static double backward_layer(Plan* plan, int64_t l, const T* g, bool below, bool track) {
    const LayerDesc& L = plan->layers[l];
    void* const* P = plan->params + 5 * l;
    const int64_t B = plan->batch;
    const bool plain = L.credit_depth == 0;  // otherwise credit_backward accumulates
    const int64_t ni = L.n_in, no = L.n_out;
    const T* W = (const T*)P[0];
    const T* beta = (const T*)P[3];
    const T* eps = (const T*)L.eps;
    const T* a = (const T*)L.a; const T* m = (const T*)L.m; const T* n = (const T*)L.n;
    const S* ac = (const S*)L.a;  // a per channel, in the storage type
    T* delta = (T*)L.delta;
    T* gb = (T*)L.gb; T* galpha = (T*)L.galpha; T* glam = (T*)L.glam;
    const bool fpc = L.filter_per_channel != 0, lpn = L.lam_per_neuron != 0;
    for (int64_t k = 0; k < B * no; ++k) delta[k] = g[k] * eps[k];

    // dl/dW = sum_b delta e: accumulated right away when this step's magnitude is wanted or the layer is ALIF /
    // recurrent (alif.h); otherwise it is added during the next step's trace update (or by settle() at
    // flush/reset), see forward_layer.
    double mag = !plain ? credit_backward<T, S>(plan, l, g, track)
                        : track || L.alif ? step_weight_grad<T, S>(plan, l, track) : 0.0;
    if (galpha && a && plain) {
        if (fpc) {
            T* at = (T*)L.atmp;
            for (int64_t i = 0; i < ni; ++i) at[i] = 0;
            for (int64_t bj = 0; bj < B * no; ++bj) {
                const T dj = delta[bj];
                if (dj == T(0)) continue;
                read_row<T, S>(ac + bj * ni, ni, [&](int64_t k0, int64_t m, const T* v) {
                    T* ak = at + k0;
                    #pragma omp simd
                    for (int64_t i = 0; i < m; ++i) ak[i] += dj * v[i];
                });
            }
            for (int64_t i = 0; i < ni; ++i) galpha[i] += at[i];
        } else {
            T s = 0;
            for (int64_t bj = 0; bj < B * no; ++bj) s += delta[bj] * a[bj];
            galpha[0] += s;
        }
    }
    if (glam && m && plain) {
        T total = 0;
        for (int64_t j = 0; j < no; ++j) {
            T s = 0;
            for (int64_t b = 0; b < B; ++b) s += delta[b * no + j] * m[b * no + j];
            if (lpn) glam[j] += s; else total += s;
        }
        if (!lpn) glam[0] += total;
    }
    if (gb && n && plain) {
        for (int64_t j = 0; j < no; ++j) {
            T s = 0;
            for (int64_t b = 0; b < B; ++b) s += delta[b * no + j] * n[b * no + j];
            gb[j] += s;
        }
    }
    if (below) {  // g^{l-1}_i = beta_i sum_j delta_j W_ji (same step only, docs/model.md §3)
        T* gl = (T*)L.gbelow;
        const bool fpc_b = fpc;
        for (int64_t b = 0; b < B; ++b) {
            T* row = gl + b * ni;
            for (int64_t i = 0; i < ni; ++i) row[i] = 0;
            for (int64_t j = 0; j < no; ++j) {
                const T dj = delta[b * no + j];
                if (dj == T(0)) continue;
                const T* Wj = W + j * ni;
                #pragma omp simd
                for (int64_t i = 0; i < ni; ++i) row[i] += dj * Wj[i];
            }
            for (int64_t i = 0; i < ni; ++i) row[i] *= fpc_b ? beta[i] : beta[0];
        }
    }
    return mag;
}

// The built-in losses (solsa.losses): 0 spike-MSE, 1 cross-entropy. target_kind 1: int64 labels [B];
// 2: dense [B, C]. Writes g = dl_t/dy and the loss value; returns 0, or 1 for a label out of range.
template <typename T>
static int loss_grad(int64_t kind, const T* y, int64_t B, int64_t C, const void* target, int64_t target_kind,
                     const T* w, T* g, T* value) {
    const int64_t* lab = (const int64_t*)target;
    const T* dense = (const T*)target;
    if (target_kind == 1)
        for (int64_t b = 0; b < B; ++b)
            if (lab[b] < 0 || lab[b] >= C) return 1;
    T total = 0;
    for (int64_t b = 0; b < B; ++b) {
        const T* yb = y + b * C;
        T* gb = g + b * C;
        const T wb = w[b];
        if (kind == 0) {
            T sq = 0;
            for (int64_t c = 0; c < C; ++c) {
                const T tc = target_kind == 1 ? (c == lab[b] ? T(1) : T(0)) : dense[b * C + c];
                const T diff = yb[c] - tc;
                sq += diff * diff;
                gb[c] = diff * (T(2) / T(C)) * wb;
            }
            total += wb * (sq / T(C));
        } else {
            T mx = yb[0];
            for (int64_t c = 1; c < C; ++c) mx = yb[c] > mx ? yb[c] : mx;
            T se = 0;
            for (int64_t c = 0; c < C; ++c) se += std::exp(yb[c] - mx);
            const T lse = mx + std::log(se);
            T tsum = 0, dot = 0;
            for (int64_t c = 0; c < C; ++c) {
                const T tc = target_kind == 1 ? (c == lab[b] ? T(1) : T(0)) : dense[b * C + c];
                tsum += tc;
                dot += (yb[c] - lse) * tc;
            }
            for (int64_t c = 0; c < C; ++c) {
                const T tc = target_kind == 1 ? (c == lab[b] ? T(1) : T(0)) : dense[b * C + c];
                gb[c] = (std::exp(yb[c] - lse) * tsum - tc) * wb;
            }
            total -= wb * dot;
        }
    }
    *value = total;
    return 0;
}

template <typename T, typename S>
static void forward_all(Plan* plan, const T* x, T* y_out) {
    const bool rf = plan->reset_feedback != 0;
    const T* in = x;
    for (int64_t l = 0; l < plan->n_layers; ++l) {
        const LayerDesc& L = plan->layers[l];
        if (L.alif)
            alif_forward_layer<T, S>(plan, l, in, rf);
        else
            forward_layer<T, S>(L, plan->params + 5 * l, plan->batch, in, rf, plan->par_min, (plan->w_dirty >> l) & 1,
                                plan->pending != 0 && L.credit_depth == 0);
        if (l > 0) credit_forward<T, S>(plan, l);
        in = (const T*)L.o;
    }
    plan->w_dirty = 0;
    plan->pending = 0;
    const LayerDesc& top = plan->layers[plan->n_layers - 1];
    std::memcpy(y_out, top.o, sizeof(T) * plan->batch * top.n_out);
}

// Whether anything reads layer k's error g = dl_t/do^k (the layer above's gbelow): its own gradients do
// unless a cascade's decay-mass credit computes its first signal from the layer above's delta instead
// (credit_backward), and the layer below's credit reads k's delta. Where nothing does, the layer above
// skips that matrix-vector product.
static bool needs_error(const Plan* plan, int64_t k) {
    const LayerDesc& K = plan->layers[k];
    if (K.credit_depth == 0 || !K.mass) return true;
    return k > 0 && plan->layers[k - 1].credit_depth > 0;
}

template <typename T, typename S>
static void backward_all(Plan* plan, const T* g) {
    double mag = 0.0;
    for (int64_t l = plan->n_layers - 1; l >= 0; --l) {
        const LayerDesc& L = plan->layers[l];
        mag += backward_layer<T, S>(plan, l, g, l > 0 && needs_error(plan, l - 1), plan->track != 0);
        g = (const T*)L.gbelow;
    }
    plan->magnitude = mag;
    plan->pending = plan->track ? 0 : 1;
}

template <typename T, typename S>
static int64_t step_all(Plan* plan, const T* x, const void* target, int64_t target_kind, const T* w,
                        int64_t loss_kind, T* y_out, T* loss_out, T* gbuf) {
    forward_all<T, S>(plan, x, y_out);
    const LayerDesc& top = plan->layers[plan->n_layers - 1];
    if (loss_grad<T>(loss_kind, y_out, plan->batch, top.n_out, target, target_kind, w, gbuf, loss_out)) return 1;
    backward_all<T, S>(plan, gbuf);
    return 0;
}

// flush: dsts holds 5 slots per layer (W, b, alpha, beta, lam): the .grad data of each learnable parameter
// (null: not learned); modes[k] = 0 writes the gradient there, 1 adds it (the accumulator is zeroed after),
// 2: the accumulator is handed over as .grad as it is (left untouched).
// beta's gradient comes from W's: dV/dbeta_i = sum_j W_ji e_ji / beta_i (docs/model.md §2).
template <typename T, typename S>
static void flush_all(Plan* plan, void* const* dsts, const int64_t* modes) {
    settle<T, S>(plan);
    for (int64_t l = 0; l < plan->n_layers; ++l) {
        const LayerDesc& L = plan->layers[l];
        void* const* P = plan->params + 5 * l;
        const int64_t ni = L.n_in, no = L.n_out;
        const bool fpc = L.filter_per_channel != 0, lpn = L.lam_per_neuron != 0;
        T* gW = (T*)L.gW;
        if (dsts[5 * l + 3]) {  // beta, from this flush's weight gradient
            const T* W = (const T*)P[0];
            const T* beta = (const T*)P[3];
            T* dst = (T*)dsts[5 * l + 3];
            T* at = (T*)L.atmp;
            for (int64_t i = 0; i < ni; ++i) at[i] = 0;
            T total = 0;
            for (int64_t j = 0; j < no; ++j)
                for (int64_t i = 0; i < ni; ++i) at[i] += W[j * ni + i] * gW[j * ni + i];
            if (fpc) {
                for (int64_t i = 0; i < ni; ++i) {
                    const T g = at[i] / beta[i];
                    dst[i] = modes[5 * l + 3] ? dst[i] + g : g;
                }
            } else {
                for (int64_t i = 0; i < ni; ++i) total += at[i];
                const T g = total / beta[0];
                dst[0] = modes[5 * l + 3] ? dst[0] + g : g;
            }
        }
        T* accs[5] = {gW, (T*)L.gb, (T*)L.galpha, nullptr, (T*)L.glam};
        const int64_t sizes[5] = {no * ni, no, fpc ? ni : 1, 0, lpn ? no : 1};
        for (int k = 0; k < 5; ++k) {
            T* acc = accs[k];
            if (!acc) continue;
            T* dst = (T*)dsts[5 * l + k];
            const int64_t mode = modes[5 * l + k];
            if (mode == 2) continue;  // the accumulator itself became .grad (Python gives the kernel a new one)
            if (dst) {
                if (mode == 1) for (int64_t q = 0; q < sizes[k]; ++q) dst[q] += acc[q];
                else std::memcpy(dst, acc, sizeof(T) * sizes[k]);
            }
            std::memset(acc, 0, sizeof(T) * sizes[k]);
        }
    }
}

// add the deferred weight gradient of the last step (sum_b delta e) to gW
template <typename T, typename S>
static void settle(Plan* plan) {
    if (!plan->pending) return;
    const int64_t B = plan->batch;
    for (int64_t l = 0; l < plan->n_layers; ++l) {
        const LayerDesc& L = plan->layers[l];
        if (L.credit_depth || L.alif) continue;  // credit_backward or alif_weight_grad accumulated it already
        const int64_t ni = L.n_in, no = L.n_out;
        const S* e = (const S*)L.e;
        const T* delta = (const T*)L.delta;
        T* gW = (T*)L.gW;
        for (int64_t j = 0; j < no; ++j)
            for (int64_t b = 0; b < B; ++b) {
                const T dj = delta[b * no + j];
                if (dj == T(0)) continue;
                read_row<T, S>(e + (b * no + j) * ni, ni, [&](int64_t k0, int64_t m, const T* v) {
                    T* gWj = gW + j * ni + k0;
                    #pragma omp simd
                    for (int64_t i = 0; i < m; ++i) gWj[i] += dj * v[i];
                });
            }
    }
    plan->pending = 0;
}

// zero the states and traces of every layer (a new sequence on the same tensors)
template <typename T, typename S>
static void zero_state(Plan* plan) {
    settle<T, S>(plan);
    const int64_t B = plan->batch;
    for (int64_t l = 0; l < plan->n_layers; ++l) {
        const LayerDesc& L = plan->layers[l];
        const int64_t ni = L.n_in, no = L.n_out;
        const int64_t a_bytes = L.filter_per_channel ? sizeof(S) * B * no * ni : sizeof(T) * B * no;
        void* ptrs[9] = {L.F, L.V, L.o, L.eps, L.e, L.p, L.a, L.m, L.n};
        const int64_t bytes[9] = {(int64_t)sizeof(T) * B * ni, (int64_t)sizeof(T) * B * no, (int64_t)sizeof(T) * B * no,
                                  (int64_t)sizeof(T) * B * no, (int64_t)sizeof(S) * B * no * pre_width(L),
                                  (int64_t)sizeof(T) * B * ni, a_bytes, (int64_t)sizeof(T) * B * no,
                                  (int64_t)sizeof(T) * B * no};
        for (int k = 0; k < 9; ++k)
            if (ptrs[k]) std::memset(ptrs[k], 0, bytes[k]);
        credit_zero<T, S>(L, B, l + 1 < plan->n_layers ? plan->layers[l + 1].n_out : 0);
        alif_zero<T>(L, B);
    }
}

// the entry points: T from the suffix, the storage type S from plan->storage (with_storage, storage.h)
#define SOLSA_S(T, call) with_storage<T>(p, [&](auto s_) { using S = decltype(s_); return call; })
#include "sequence.h"  // solsa_sequence: a stretch of steps in one call

extern "C" {
void solsa_settle_f32(Plan* p) { FlushDenormals f; SOLSA_S(float, (settle<float, S>(p))); }
void solsa_settle_f64(Plan* p) { FlushDenormals f; SOLSA_S(double, (settle<double, S>(p))); }
void solsa_zero_state_f32(Plan* p) { SOLSA_S(float, (zero_state<float, S>(p))); }
void solsa_zero_state_f64(Plan* p) { SOLSA_S(double, (zero_state<double, S>(p))); }
void solsa_flush_f32(Plan* p, void* const* d, const int64_t* m) { FlushDenormals f; SOLSA_S(float, (flush_all<float, S>(p, d, m))); }
void solsa_flush_f64(Plan* p, void* const* d, const int64_t* m) {
    FlushDenormals f;
    SOLSA_S(double, (flush_all<double, S>(p, d, m)));
}
void solsa_forward_f32(Plan* p, const float* x, float* y) { FlushDenormals f; SOLSA_S(float, (forward_all<float, S>(p, x, y))); }
void solsa_forward_f64(Plan* p, const double* x, double* y) {
    FlushDenormals f;
    SOLSA_S(double, (forward_all<double, S>(p, x, y)));
}
void solsa_predict_f32(Plan* p, const float* x, float* y, void* const* s) { FlushDenormals f; predict_all<float>(p, x, y, s); }
void solsa_predict_f64(Plan* p, const double* x, double* y, void* const* s) {
    FlushDenormals f;
    predict_all<double>(p, x, y, s);
}
void solsa_backward_f32(Plan* p, const float* g) { FlushDenormals f; SOLSA_S(float, (backward_all<float, S>(p, g))); }
void solsa_backward_f64(Plan* p, const double* g) { FlushDenormals f; SOLSA_S(double, (backward_all<double, S>(p, g))); }
int64_t solsa_step_f32(Plan* p, const float* x, const void* t, int64_t tk, const float* w, int64_t lk, float* y,
                       float* loss, float* gbuf) {
    FlushDenormals f;
    return SOLSA_S(float, (step_all<float, S>(p, x, t, tk, w, lk, y, loss, gbuf)));
}
int64_t solsa_step_f64(Plan* p, const double* x, const void* t, int64_t tk, const double* w, int64_t lk, double* y,
                       double* loss, double* gbuf) {
    FlushDenormals f;
    return SOLSA_S(double, (step_all<double, S>(p, x, t, tk, w, lk, y, loss, gbuf)));
}
int64_t solsa_abi_version() { return 16; }
}
