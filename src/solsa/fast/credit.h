// Cross-layer credit in the fused SOLSA kernel (docs/credit.md): included by kernel.cpp.
//
// The arithmetic is that of solsa/functional/credit.py and solsa/rules/credit.py (the reference), up to
// the order of floating-point summations; tests/test_credit.py compares the two in float64.
#pragma once
// ---- cross-layer credit (docs/credit.md) ----
// A hidden layer K with credit_depth D > 0 keeps, per stage s < D (through layer K+1+s), q and u of its
// traces e, a, m, n: cstage[8 s + 2 c] = q, cstage[8 s + 2 c + 1] = u (c = 0 e, 1 a, 2 m, 3 n; null: absent).

// q = al q + s z;  u = db u + q   (synaptic_credit, membrane_credit); u == q: the upper membrane keeps
// nothing (d = 0, rules/credit.py zero_decay), the stage stores q once. Stored as S, computed in T: u
// takes q as stored (the reference's order)
template <typename T, typename S>
static void credit_filter(S* q, S* u, const S* z, T al, T s, T db, int64_t count) {
    if constexpr (std::is_same_v<S, T>) {
        if (u == q) {
            #pragma omp simd
            for (int64_t k = 0; k < count; ++k) q[k] = al * q[k] + s * z[k];
            return;
        }
        #pragma omp simd
        for (int64_t k = 0; k < count; ++k) {
            const T qv = al * q[k] + s * z[k];
            q[k] = qv;
            u[k] = db * u[k] + qv;
        }
    } else {  // a chunk at a time through buffers in T (storage.h)
        alignas(64) T zv[kChunk], uv[kChunk];
        for (int64_t k0 = 0; k0 < count; k0 += kChunk) {
            const int64_t m = count - k0 < kChunk ? count - k0 : kChunk;
            widen<T, S>(z + k0, zv, m);
            if (u != q) widen<T, S>(u + k0, uv, m);
            update_row<T, S>(q + k0, m, [&](int64_t, int64_t, T* qv) {
                #pragma omp simd
                for (int64_t k = 0; k < m; ++k) qv[k] = al * qv[k] + s * zv[k];
            });
            if (u == q) continue;
            widen<T, S>(q + k0, zv, m);  // q as stored
            #pragma omp simd
            for (int64_t k = 0; k < m; ++k) uv[k] = db * uv[k] + zv[k];
            narrow<T, S>(uv, u + k0, m);
        }
    }
}

// stage c of layer K is [B, N_out, N_in] (in the storage type): e, and a with one alpha per channel
static inline bool wide_stage(const LayerDesc& K, int c) { return c == 0 || (c == 1 && K.filter_per_channel); }

// After layer l has its d[t]: advance every stage of the layers below that runs through it.
template <typename T, typename S>
static void credit_forward(Plan* plan, int64_t l) {
    bool needed = false;
    for (int64_t k = 0; k < l; ++k) needed = needed || (l - k - 1 < plan->layers[k].credit_depth);
    if (!needed) return;
    const LayerDesc& U = plan->layers[l];
    void* const* PU = plan->params + 5 * l;
    const int64_t B = plan->batch, nu = U.n_out;
    const T* alpha = (const T*)PU[2];
    const bool fpc = U.filter_per_channel != 0;
    const T* dU = (const T*)U.d;
    T* dbar = (T*)U.dbar;  // mean_decay: one d per sample
    for (int64_t b = 0; b < B; ++b) {
        T s = 0;
        for (int64_t x = 0; x < nu; ++x) s += dU[b * nu + x];
        dbar[b] = s / T(nu);
    }
    T amean = alpha[0];  // channel_decay, for the stages two or more levels up
    if (fpc) {
        T s = 0;
        for (int64_t i = 0; i < U.n_in; ++i) s += alpha[i];
        amean = s / T(U.n_in);
    }
    for (int64_t k = 0; k < l; ++k) {
        const LayerDesc& K = plan->layers[k];
        const int64_t level = l - k - 1;
        if (level >= K.credit_depth) continue;
        const int64_t nk = K.n_out, ni = K.n_in;
        const int64_t sizes[4] = {pre_width(K), K.filter_per_channel ? ni : 1, 1, 1};
        const void* base[4] = {K.e, K.a, K.m, K.n};
        void** st = K.cstage + 8 * level;
        const T* eps = (const T*)K.eps;
        for (int64_t b = 0; b < B; ++b) {
            for (int64_t j = 0; j < nk; ++j) {
                const int64_t bj = b * nk + j;
                const T al = level == 0 ? (fpc ? alpha[j] : alpha[0]) : amean;
                const T s = level == 0 ? eps[bj] : T(1);
                for (int c = 0; c < 2; ++c) {
                    if (!st[2 * c] || !wide_stage(K, c)) continue;
                    const void* z = level == 0 ? base[c] : K.cstage[8 * (level - 1) + 2 * c + 1];
                    credit_filter<T, S>((S*)st[2 * c] + bj * sizes[c], (S*)st[2 * c + 1] + bj * sizes[c],
                                        (const S*)z + bj * sizes[c], al, s, dbar[b], sizes[c]);
                }
            }
            // the [B, N_out] stages (a with one alpha per layer, m, n): one value per neuron, so one loop over j
            for (int c = 1; c < 4; ++c) {
                if (!st[2 * c] || wide_stage(K, c)) continue;
                T* q = (T*)st[2 * c] + b * nk;
                T* u = (T*)st[2 * c + 1] + b * nk;
                const T* z = (const T*)(level == 0 ? base[c] : K.cstage[8 * (level - 1) + 2 * c + 1]) + b * nk;
                const T* sb = eps + b * nk;
                const T db = dbar[b];
                const bool same = u == q;
                #pragma omp simd
                for (int64_t j = 0; j < nk; ++j) {
                    const T al = level == 0 ? (fpc ? alpha[j] : alpha[0]) : amean;
                    const T sj = level == 0 ? sb[j] : T(1);
                    const T qv = al * q[j] + sj * z[j];
                    q[j] = qv;
                    if (!same) u[j] = db * u[j] + qv;
                }
            }
        }
        if (level == 0 && K.eps_lag) {  // eps and 1 through U, then lagged_surrogate
            T* qE = (T*)K.lag_qE; T* uE = (T*)K.lag_uE; T* qN = (T*)K.lag_qN; T* uN = (T*)K.lag_uN;
            T* el = (T*)K.eps_lag;
            for (int64_t b = 0; b < B; ++b)
                for (int64_t j = 0; j < nk; ++j) {
                    const int64_t bj = b * nk + j;
                    const T al = fpc ? alpha[j] : alpha[0];
                    qE[bj] = al * qE[bj] + eps[bj];
                    qN[bj] = al * qN[bj] + T(1);
                    uE[bj] = dbar[b] * uE[bj] + qE[bj];
                    uN[bj] = dbar[b] * uN[bj] + qN[bj];
                    const T den = uN[bj] - T(1);
                    el[bj] = std::fabs(den) > T(1e-12) ? (uE[bj] - eps[bj]) / den : T(0);
                }
        }
        if (level == 0 && K.mass) {  // decay_mass: M = d M + 1 per upper neuron, and with dbar
            T* M = (T*)K.mass; T* Mb = (T*)K.mass_bar;
            for (int64_t b = 0; b < B; ++b) {
                for (int64_t x = 0; x < nu; ++x) M[b * nu + x] = dU[b * nu + x] * M[b * nu + x] + T(1);
                Mb[b] = dbar[b] * Mb[b] + T(1);
            }
        }
        if (level == 0 && K.n_neuron) {  // neuron_membrane_credit: h[b, x, j] = d_x h + q_j
            void* hs[4] = {nullptr, K.h_a, K.h_m, K.h_n};
            for (int c = 1; c < 4; ++c) {
                T* h = (T*)hs[c];
                if (!h) continue;
                const T* q = (const T*)st[2 * c];
                for (int64_t b = 0; b < B; ++b)
                    for (int64_t x = 0; x < nu; ++x) {
                        const T dx = dU[b * nu + x];
                        T* hr = h + (b * nu + x) * nk;
                        const T* qb = q + b * nk;
                        #pragma omp simd
                        for (int64_t j = 0; j < nk; ++j) hr[j] = dx * hr[j] + qb[j];
                    }
            }
        }
    }
}

// The gradient of hidden layer k with filtered traces, from g = dl_t/do^k[t]. Signals P^1 = g and
// P^{s+1} = beta^A ((eps_lag^A . P^s_A) W^A) (descend_signals); layer k accumulates
// sum_s P^s (u^s - u^{s-1}) = sum_s (P^s - P^{s+1}) u^s (credited_view); the [B, N] traces with
// per-output-neuron copies pair with the output's delta (neuron_credit_pairing). Returns sum |dl_t/dW|.
template <typename T, typename S>
static double credit_backward(Plan* plan, int64_t k, const T* g, bool track) {
    const LayerDesc& K = plan->layers[k];
    const LayerDesc& A = plan->layers[k + 1];
    void* const* PA = plan->params + 5 * (k + 1);
    const T* WA = (const T*)PA[0];
    const T* betaA = (const T*)PA[3];
    const bool fpcA = A.filter_per_channel != 0;
    const int64_t B = plan->batch, nk = K.n_out, ni = K.n_in, na = A.n_out, D = K.credit_depth;
    const int64_t BN = B * nk;
    T* P = (T*)K.signals;
    const T* deltaA = (const T*)A.delta;
    if (K.mass) {  // mass_corrected_error: P^1 = beta^A ((delta^A . M / Mbar) W^A)
        const T* M = (const T*)K.mass; const T* Mb = (const T*)K.mass_bar;
        for (int64_t b = 0; b < B; ++b) {
            T* row = P + b * nk;
            for (int64_t i = 0; i < nk; ++i) row[i] = 0;
            for (int64_t x = 0; x < na; ++x) {
                const T v = deltaA[b * na + x] * (M[b * na + x] / Mb[b]);
                if (v == T(0)) continue;
                const T* Wx = WA + x * nk;
                #pragma omp simd
                for (int64_t i = 0; i < nk; ++i) row[i] += v * Wx[i];
            }
            for (int64_t i = 0; i < nk; ++i) row[i] *= fpcA ? betaA[i] : betaA[0];
        }
    } else {
        std::memcpy(P, g, sizeof(T) * BN);
    }
    for (int64_t s = 1; s < D; ++s) {
        const T* Pa = (const T*)A.signals + (s - 1) * B * na;
        const T* el = (const T*)A.eps_lag;
        T* out = P + s * BN;
        for (int64_t b = 0; b < B; ++b) {
            T* row = out + b * nk;
            for (int64_t i = 0; i < nk; ++i) row[i] = 0;
            for (int64_t x = 0; x < na; ++x) {
                const T v = el[b * na + x] * Pa[b * na + x];
                if (v == T(0)) continue;
                const T* Wx = WA + x * nk;
                #pragma omp simd
                for (int64_t i = 0; i < nk; ++i) row[i] += v * Wx[i];
            }
            for (int64_t i = 0; i < nk; ++i) row[i] *= fpcA ? betaA[i] : betaA[0];
        }
    }
    auto coef = [&](int64_t s, int64_t bj) -> T { return P[s * BN + bj] - (s + 1 < D ? P[(s + 1) * BN + bj] : T(0)); };
    auto stage = [&](int64_t s, int c) -> const T* { return (const T*)K.cstage[8 * s + 2 * c + 1]; };
    auto wide = [&](int64_t s, int c) -> const S* { return (const S*)K.cstage[8 * s + 2 * c + 1]; };  // wide_stage

    T* gW = (T*)K.gW;
    const int64_t np = pre_width(K);  // a recurrent layer's rows run over [F, o[t-1]] (alif.h)
    const bool split = np != ni;
    T* wtmp = split ? (T*)K.alif->wrow : (T*)K.wtmp;
    double mag = 0.0;
    for (int64_t j = 0; j < nk; ++j) {
        T* acc = track || split ? wtmp + j * np : gW + j * ni;  // without the magnitude: straight into gW (one pass)
        if (track || split)
            for (int64_t i = 0; i < np; ++i) acc[i] = 0;
        for (int64_t b = 0; b < B; ++b)
            for (int64_t s = 0; s < D; ++s) {
                const T c = coef(s, b * nk + j);
                if (c == T(0)) continue;
                read_row<T, S>(wide(s, 0) + (b * nk + j) * np, np, [&](int64_t k0, int64_t m, const T* v) {
                    T* ak = acc + k0;
                    #pragma omp simd
                    for (int64_t i = 0; i < m; ++i) ak[i] += c * v[i];
                });
            }
        if (track || split) mag += add_pre_row<T>(K, j, acc, track);
    }
    // the [B, N] traces: sum_s c^s u^s, or the per-output-neuron pairing
    auto neuron_pair = [&](const T* h, int64_t b, int64_t j) -> T {
        T s = 0;
        for (int64_t x = 0; x < na; ++x) s += deltaA[b * na + x] * WA[x * nk + j] * h[(b * na + x) * nk + j];
        return s * (fpcA ? betaA[j] : betaA[0]);
    };
    auto small = [&](int c, const T* h, int64_t b, int64_t j) -> T {
        if (h) return neuron_pair(h, b, j);
        T v = 0;
        for (int64_t s = 0; s < D; ++s) v += coef(s, b * nk + j) * stage(s, c)[b * nk + j];
        return v;
    };
    T* galpha = (T*)K.galpha;
    if (galpha && K.cstage[2]) {
        if (K.filter_per_channel) {
            T* at = (T*)K.atmp;
            for (int64_t i = 0; i < ni; ++i) at[i] = 0;
            for (int64_t bj = 0; bj < BN; ++bj)
                for (int64_t s = 0; s < D; ++s) {
                    const T c = coef(s, bj);
                    if (c == T(0)) continue;
                    read_row<T, S>(wide(s, 1) + bj * ni, ni, [&](int64_t k0, int64_t m, const T* v) {
                        T* ak = at + k0;
                        for (int64_t i = 0; i < m; ++i) ak[i] += c * v[i];
                    });
                }
            for (int64_t i = 0; i < ni; ++i) galpha[i] += at[i];
        } else {
            T tot = 0;
            for (int64_t b = 0; b < B; ++b)
                for (int64_t j = 0; j < nk; ++j) tot += small(1, (const T*)K.h_a, b, j);
            galpha[0] += tot;
        }
    }
    T* glam = (T*)K.glam;
    if (glam && K.cstage[4]) {
        T tot = 0;
        for (int64_t j = 0; j < nk; ++j) {
            T s = 0;
            for (int64_t b = 0; b < B; ++b) s += small(2, (const T*)K.h_m, b, j);
            if (K.lam_per_neuron) glam[j] += s; else tot += s;
        }
        if (!K.lam_per_neuron) glam[0] += tot;
    }
    T* gb = (T*)K.gb;
    if (gb && K.cstage[6]) {
        for (int64_t j = 0; j < nk; ++j) {
            T s = 0;
            for (int64_t b = 0; b < B; ++b) s += small(3, (const T*)K.h_n, b, j);
            gb[j] += s;
        }
    }
    return mag;
}

// zero a layer's credit state (a new sequence)
template <typename T, typename S>
static void credit_zero(const LayerDesc& L, int64_t B, int64_t n_above) {
    const int64_t no = L.n_out, ni = L.n_in;
    const int64_t bytes[4] = {(int64_t)sizeof(S) * B * no * pre_width(L),
                              L.filter_per_channel ? (int64_t)sizeof(S) * B * no * ni : (int64_t)sizeof(T) * B * no,
                              (int64_t)sizeof(T) * B * no, (int64_t)sizeof(T) * B * no};
    for (int64_t s = 0; s < L.credit_depth; ++s)
        for (int c = 0; c < 4; ++c)
            for (int h = 0; h < 2; ++h)
                if (L.cstage[8 * s + 2 * c + h]) std::memset(L.cstage[8 * s + 2 * c + h], 0, bytes[c]);
    void* lag[5] = {L.lag_qE, L.lag_uE, L.lag_qN, L.lag_uN, L.eps_lag};
    for (int k = 0; k < 5; ++k)
        if (lag[k]) std::memset(lag[k], 0, sizeof(T) * B * no);
    void* hs[3] = {L.h_a, L.h_m, L.h_n};
    for (int k = 0; k < 3; ++k)
        if (hs[k]) std::memset(hs[k], 0, sizeof(T) * B * L.n_neuron * no);
    if (L.mass) {
        std::memset(L.mass, 0, sizeof(T) * B * n_above);
        std::memset(L.mass_bar, 0, sizeof(T) * B);
    }
}
