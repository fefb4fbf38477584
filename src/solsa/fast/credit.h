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
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
        if constexpr (std::is_same_v<T, float> && std::is_same_v<S, Half>) {
            // float16 in registers: 16 lanes widened, filtered and rounded at once, q rounded as stored before
            // u takes it (the buffered loop below does the same in three passes; 2-3x slower here)
            const __m512 va = _mm512_set1_ps(al), vs = _mm512_set1_ps(s), vd = _mm512_set1_ps(db);
            constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
            for (int64_t k = 0; k < count; k += 16) {
                const __mmask16 mk = lane_mask(count, k);
                const __m512 zk = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, z + k));
                const __m512 qk = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, q + k));
                const __m256i qh = _mm512_cvtps_ph(_mm512_fmadd_ps(va, qk, _mm512_mul_ps(vs, zk)), kRound);
                _mm256_mask_storeu_epi16(q + k, mk, qh);
                if (u == q) continue;
                const __m512 uk = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, u + k));
                const __m512 un = _mm512_fmadd_ps(vd, uk, _mm512_cvtph_ps(qh));
                _mm256_mask_storeu_epi16(u + k, mk, _mm512_cvtps_ph(un, kRound));
            }
            return;
        }
#endif
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

// A hidden layer K with credit advances its trace e[t] = F[t] + d e[t-1] not in forward_layer but in
// credit_forward of the layer above, in one pass with its first stage (q, u), since nothing reads e in between;
// with one stage, the stage's weight gradient sum_b P u of the last step is added in that same pass too
// (credit_backward leaves it, as forward_layer does for plain layers with Plan::pending; settle() adds it at
// flush/reset). Fewer passes over the [B, N_out, N_in] arrays, the same arithmetic in the same order. Only
// for traces stored in T, a LIF layer (not alif.h's), and work that runs on one thread (for_each_neuron).
template <typename T, typename S>
static inline bool e_in_credit(const Plan* plan, const LayerDesc& K) {
    return std::is_same_v<S, T> && K.credit_depth > 0 && !K.alif && K.cstage[0] &&
           plan->batch * K.n_out * K.n_in < plan->par_min;
}
template <typename T, typename S>
static inline bool stage_grad_deferred(const Plan* plan, const LayerDesc& K) {
    return e_in_credit<T, S>(plan, K) && K.credit_depth == 1;
}

// One row (b, j) of e_in_credit: gW += c u (the deferred gradient, when G), e = F + d e, q = al q + s e,
// u = db u + q (when U; otherwise u is q)
template <typename T, bool G, bool U>
static inline void e_stage_row(T* __restrict e, const T* __restrict F, T d, T* __restrict q, T* __restrict u, T al,
                               T s, T db, T* __restrict gW, T c, int64_t n) {
    #pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const T prev = U ? u[i] : q[i];
        if constexpr (G) gW[i] += c * prev;
        const T ev = F[i] + d * e[i];
        e[i] = ev;
        const T qv = al * q[i] + s * ev;
        q[i] = qv;
        if constexpr (U) u[i] = db * prev + qv;
    }
}
template <typename T>
static inline void advance_e_stage(T* e, const T* F, T d, T* q, T* u, T al, T s, T db, T* gW, T c, int64_t n) {
    if (gW && u) e_stage_row<T, true, true>(e, F, d, q, u, al, s, db, gW, c, n);
    else if (u) e_stage_row<T, false, true>(e, F, d, q, u, al, s, db, gW, c, n);
    else if (gW) e_stage_row<T, true, false>(e, F, d, q, u, al, s, db, gW, c, n);
    else e_stage_row<T, false, false>(e, F, d, q, u, al, s, db, gW, c, n);
}

// settle(): the deferred stage gradient of the last step, gW += sum_b P u (the order of credit_backward)
template <typename T>
static void add_stage_grad(const Plan* plan, const LayerDesc& K) {
    const int64_t B = plan->batch, nk = K.n_out, ni = K.n_in;
    const T* P = (const T*)K.signals;
    const T* u = (const T*)K.cstage[1];
    T* gW = (T*)K.gW;
    for (int64_t j = 0; j < nk; ++j)
        for (int64_t b = 0; b < B; ++b) {
            const T c = P[b * nk + j];
            if (c == T(0)) continue;
            const T* ub = u + (b * nk + j) * ni;
            T* g = gW + j * ni;
            #pragma omp simd
            for (int64_t i = 0; i < ni; ++i) g[i] += c * ub[i];
        }
}

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
        const bool fuse_e = level == 0 && e_in_credit<T, S>(plan, K);
        const T* dK = (const T*)K.d;
        // the last step's deferred stage gradient: its coefficients P (stage_grad_deferred)
        const T* P = fuse_e && plan->pending && stage_grad_deferred<T, S>(plan, K) ? (const T*)K.signals : nullptr;
        for (int64_t b = 0; b < B; ++b) {
            for (int64_t j = 0; j < nk; ++j) {
                const int64_t bj = b * nk + j;
                const T al = level == 0 ? (fpc ? alpha[j] : alpha[0]) : amean;
                const T s = level == 0 ? eps[bj] : T(1);
                for (int c = 0; c < 2; ++c) {
                    if (c == 0 && fuse_e) {  // e and its first stage in one pass (e_in_credit)
                        const int64_t at = bj * ni;
                        const T c0 = P ? P[bj] : T(0);
                        advance_e_stage<T>((T*)K.e + at, (const T*)K.F + b * ni, dK[bj], (T*)st[0] + at,
                                           st[1] == st[0] ? nullptr : (T*)st[1] + at, al, s, dbar[b],
                                           c0 != T(0) ? (T*)K.gW + j * ni : nullptr, c0, ni);
                        continue;
                    }
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
