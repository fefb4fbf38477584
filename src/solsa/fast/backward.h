// One layer's backward step in the fused kernel (from g = dl_t/do[t]: delta, the gradients of a plain layer,
// the error for the layer below) and the built-in losses' gradient. Included by kernel.cpp (after credit.h).
#pragma once

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
