// One LIF layer's forward step in the fused kernel: the filter and the current, the membrane and the spike,
// the traces e (and a, m, n) with the deferred weight gradient of the last step, and the pure prediction.
// Included by kernel.cpp (after plan.h, surrogate.h, storage.h).
#pragma once
#include <cstring>
#ifdef _OPENMP
#include <omp.h>
#endif

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

// The current is summed in the C export's order (export_c/runtime.c, solsa_matvec_rows): from W's rows, each
// in LANES partial sums (lane k: i = k, k + LANES, ...) added in lane order, then the rest of the row, then the
// bias; a row under 2 LANES inputs is summed in the order i = 0, 1, ... (what the lanes give there too), by
// columns_current. W's rows are read as they are at every call, so a write to W by any means is seen. (GCC may
// fuse a multiply-add here into one rounding, which the C export, built as ISO C, does not: the order is the
// same, not every bit.)
constexpr int64_t LANES = 8;
template <typename T>
struct Lanes { typedef T vec __attribute__((vector_size(LANES * sizeof(T)))); };  // LANES partial sums, lane by lane
template <typename T>
using LaneVec = typename Lanes<T>::vec;

template <typename T>
static inline LaneVec<T> load_lanes(const T* p) {
    LaneVec<T> v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// out[r] = sum_i x_i W_ri (+ b_r) for R rows of W (row stride ni); with TWO, out2[r] = sum_i x2_i W_ri as well,
// in the same pass over the rows
template <typename T, int R, bool TWO>
static inline void dot_rows(const T* __restrict W, int64_t ni, const T* __restrict x, const T* __restrict x2,
                            const T* b, T* out, T* out2) {
    LaneVec<T> acc[R], acc2[R];
    for (int r = 0; r < R; ++r) acc[r] = acc2[r] = LaneVec<T>{};
    int64_t i = 0;
    for (; i + LANES <= ni; i += LANES) {
        const LaneVec<T> xv = load_lanes(x + i), xv2 = TWO ? load_lanes(x2 + i) : LaneVec<T>{};
        for (int r = 0; r < R; ++r) {
            const LaneVec<T> w = load_lanes(W + r * ni + i);
            acc[r] += xv * w;
            if (TWO) acc2[r] += xv2 * w;
        }
    }
    // each row's sums in lane order, then the rest of the row (the loops over r innermost: they vectorise)
    T t[R], t2[R];
    for (int r = 0; r < R; ++r) {
        t[r] = acc[r][0];
        t2[r] = acc2[r][0];
    }
    for (int64_t k = 1; k < LANES; ++k)
        for (int r = 0; r < R; ++r) {
            t[r] += acc[r][k];
            if (TWO) t2[r] += acc2[r][k];
        }
    for (int64_t e = i; e < ni; ++e)
        for (int r = 0; r < R; ++r) {
            t[r] += x[e] * W[r * ni + e];
            if (TWO) t2[r] += x2[e] * W[r * ni + e];
        }
    for (int r = 0; r < R; ++r) {
        out[r] = b ? t[r] + b[r] : t[r];
        if (TWO) out2[r] = t2[r];
    }
}

// A layer under 2 LANES inputs: the same sums in the order i = 0, 1, ..., vectorised over the neurons through
// W^T [n_in, n_out] (L.wT), which is rebuilt whenever W's bits differ from the copy it was made from (L.wcopy):
// compared at every call (n_in x n_out is small here), so a write to W by any means is seen.
template <typename T, bool TWO>
static void columns_current(const LayerDesc& L, const T* W, const T* x, const T* x2, const T* b, T* out, T* out2) {
    const int64_t ni = L.n_in, no = L.n_out;
    T* Wc = (T*)L.wcopy;
    T* WT = (T*)L.wT;
    if (std::memcmp(Wc, W, sizeof(T) * no * ni) != 0) {
        std::memcpy(Wc, W, sizeof(T) * no * ni);
        for (int64_t j = 0; j < no; ++j)
            for (int64_t i = 0; i < ni; ++i) WT[i * no + j] = W[j * ni + i];
    }
    for (int64_t j = 0; j < no; ++j) out[j] = T(0);
    if (TWO) for (int64_t j = 0; j < no; ++j) out2[j] = T(0);
    for (int64_t i = 0; i < ni; ++i) {
        const T* __restrict WTi = WT + i * no;
        const T f = x[i], pi = TWO ? x2[i] : T(0);
        T* __restrict o1 = out;
        T* __restrict o2 = out2;
        #pragma omp simd
        for (int64_t j = 0; j < no; ++j) {
            o1[j] += f * WTi[j];
            if (TWO) o2[j] += pi * WTi[j];
        }
    }
    if (b) for (int64_t j = 0; j < no; ++j) out[j] += b[j];
}

// out = x W^T (+ b) for one sample; with TWO, out2 = x2 W^T as well
template <typename T, bool TWO>
static void rows_current(const T* W, int64_t no, int64_t ni, const T* x, const T* x2, const T* b, T* out, T* out2) {
    int64_t j = 0;
    for (; j + 4 <= no; j += 4) dot_rows<T, 4, TWO>(W + j * ni, ni, x, x2, b ? b + j : nullptr, out + j, out2 + j);
    for (; j < no; ++j) dot_rows<T, 1, TWO>(W + j * ni, ni, x, x2, b ? b + j : nullptr, out + j, out2 + j);
}

// F[t] = alpha F[t-1] + beta x[t] into Fn, and the current I = Fn W^T + b into cur (rows_current), in the order
// forward_layer, predict_layer and the ALIF layers (alif.h) share. With p, also wp = W p (the per-layer alpha
// trace's product) in the same pass over W.
template <typename T>
static void filter_and_current(const LayerDesc& L, void* const* P, int64_t B, const T* x, const T* F, T* Fn,
                               T* cur, const T* p = nullptr, T* wp = nullptr) {
    const int64_t ni = L.n_in, no = L.n_out;
    const T* W = (const T*)P[0];
    const T* bias = (const T*)P[1];
    const T* alpha = (const T*)P[2];
    const T* beta = (const T*)P[3];
    const bool fpc = L.filter_per_channel != 0;
    for (int64_t b = 0; b < B; ++b) {
        for (int64_t i = 0; i < ni; ++i) {
            const int64_t k = b * ni + i;
            Fn[k] = (fpc ? alpha[i] : alpha[0]) * F[k] + (fpc ? beta[i] : beta[0]) * x[k];
        }
        const T* xb = Fn + b * ni;
        if (ni < 2 * LANES) {
            if (p) columns_current<T, true>(L, W, xb, p + b * ni, bias, cur + b * no, wp + b * no);
            else columns_current<T, false>(L, W, xb, nullptr, bias, cur + b * no, cur + b * no);
        } else {
            if (p) rows_current<T, true>(W, no, ni, xb, p + b * ni, bias, cur + b * no, wp + b * no);
            else rows_current<T, false>(W, no, ni, xb, nullptr, bias, cur + b * no, cur + b * no);
        }
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
// state, traces and accumulators are not written.
template <typename T>
static void predict_layer(const LayerDesc& L, void* const* P, int64_t B, const T* x, T* Fn, T* Vn, T* on) {
    const int64_t no = L.n_out;
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

template <typename T, typename S>
static void forward_layer(const LayerDesc& L, void* const* P, int64_t B, const T* x, bool rf, int64_t par_min,
                          bool pending, bool e_later = false) {
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
    // e[t] = F[t] + d e[t-1]  (and a[t] = W p[t] + d a[t-1] for one alpha per channel). With `e_later`, e is
    // left to credit_forward of the layer above (e_in_credit, credit.h). With `pending`,
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
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
            if constexpr (std::is_same_v<T, float> && std::is_same_v<S, Half>) {  // in registers (storage.h)
                const __m512 vd = _mm512_set1_ps(d), vp = _mm512_set1_ps(dp);
                update_half_row(ej, ni, [&](int64_t k, __m512 ev, __mmask16 m) {
                    if (dp != T(0)) {
                        const __m512 g = _mm512_maskz_loadu_ps(m, gWj + k);
                        _mm512_mask_storeu_ps(gWj + k, m, _mm512_fmadd_ps(vp, ev, g));
                    }
                    return _mm512_fmadd_ps(vd, ev, _mm512_maskz_loadu_ps(m, Fb + k));
                });
                if (a_chan) {
                    const T* Wj = W + j * ni;
                    const T* pb = p + b * ni;
                    update_half_row(ac + bj * ni, ni, [&](int64_t k, __m512 av, __mmask16 m) {
                        const __m512 wp = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, Wj + k), _mm512_maskz_loadu_ps(m, pb + k));
                        return _mm512_fmadd_ps(vd, av, wp);
                    });
                }
                continue;
            }
#endif
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
    if (!e_later) {
        for_each_neuron(no, B * no * ni, par_min, update_neuron);
    } else if (a_chan) {  // e advances in credit_forward of the layer above (e_in_credit, credit.h); a here
        for (int64_t bj = 0; bj < B * no; ++bj) {
            const int64_t j = bj % no;
            const T d = dd[bj];
            const T* pb = p + (bj / no) * ni;
            update_row<T, S>(ac + bj * ni, ni, [&](int64_t k0, int64_t m, T* v) {
                const T* Wj = W + j * ni + k0;
                #pragma omp simd
                for (int64_t i = 0; i < m; ++i) v[i] = Wj[i] * pb[i + k0] + d * v[i];
            });
        }
    }
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
