// Cross-layer credit in the fused SOLSA kernel, the backward half (docs/credit.md): a hidden layer's gradient from
// its filtered traces (credit_backward). Included by kernel.cpp after credit.h, which advances the traces.
#pragma once

// rows r1 (and r2, unless null) = beta^A ((v1 and v2) W^A) in one pass over W^A: each row summed over the
// upper neurons x in order, zero coefficients v(x) skipped
template <typename T, typename V1, typename V2>
static void signal_rows(const T* WA, const T* betaA, bool fpcA, int64_t na, int64_t nk, V1&& v1, T* __restrict r1,
                        V2&& v2, T* __restrict r2) {
    for (int64_t i = 0; i < nk; ++i) r1[i] = 0;
    if (r2) for (int64_t i = 0; i < nk; ++i) r2[i] = 0;
    for (int64_t x = 0; x < na; ++x) {
        const T a = v1(x);
        const T c = r2 ? v2(x) : T(0);
        const T* __restrict Wx = WA + x * nk;
        if (a != T(0) && c != T(0)) {
            #pragma omp simd
            for (int64_t i = 0; i < nk; ++i) {
                r1[i] += a * Wx[i];
                r2[i] += c * Wx[i];
            }
        } else if (a != T(0)) {
            #pragma omp simd
            for (int64_t i = 0; i < nk; ++i) r1[i] += a * Wx[i];
        } else if (c != T(0)) {
            #pragma omp simd
            for (int64_t i = 0; i < nk; ++i) r2[i] += c * Wx[i];
        }
    }
    for (int64_t i = 0; i < nk; ++i) r1[i] *= fpcA ? betaA[i] : betaA[0];
    if (r2) for (int64_t i = 0; i < nk; ++i) r2[i] *= fpcA ? betaA[i] : betaA[0];
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
    const T* Mv = (const T*)K.mass; const T* Mb = (const T*)K.mass_bar;
    const T* el = (const T*)A.eps_lag;
    // mass_corrected_error: P^1 = beta^A ((delta^A . M / Mbar) W^A); with two or more stages, P^2 in the same
    // pass over W^A (descend_signals below)
    const int64_t first = K.mass && D > 1 ? 2 : 1;
    for (int64_t b = 0; b < B && K.mass; ++b) {
        const T* Pa = (const T*)A.signals + b * na;
        signal_rows<T>(WA, betaA, fpcA, na, nk, [&](int64_t x) { return deltaA[b * na + x] * (Mv[b * na + x] / Mb[b]); },
                       P + b * nk, [&](int64_t x) { return el[b * na + x] * Pa[x]; }, D > 1 ? P + BN + b * nk : nullptr);
    }
    if (!K.mass) std::memcpy(P, g, sizeof(T) * BN);
    for (int64_t s = first; s < D; ++s) {  // descend_signals: P^{s+1} = beta^A ((eps_lag^A . P^s_A) W^A)
        const T* Pa = (const T*)A.signals + (s - 1) * B * na;
        for (int64_t b = 0; b < B; ++b)
            signal_rows<T>(WA, betaA, fpcA, na, nk, [&](int64_t x) { return el[b * na + x] * Pa[b * na + x]; },
                           P + s * BN + b * nk, [](int64_t) { return T(0); }, nullptr);
    }
    auto coef = [&](int64_t s, int64_t bj) -> T { return P[s * BN + bj] - (s + 1 < D ? P[(s + 1) * BN + bj] : T(0)); };
    auto stage = [&](int64_t s, int c) -> const T* { return (const T*)K.cstage[8 * s + 2 * c + 1]; };
    auto wide = [&](int64_t s, int c) -> const S* { return (const S*)K.cstage[8 * s + 2 * c + 1]; };  // wide_stage

    T* gW = (T*)K.gW;
    const int64_t np = pre_width(K);  // a recurrent layer's rows run over [F, o[t-1]] (alif.h)
    const bool split = np != ni;
    T* wtmp = split ? (T*)K.alif->wrow : (T*)K.wtmp;
    double mag = 0.0;
    const bool deferred = !track && stage_grad_deferred<T, S>(plan, K);  // added in the next pass over u instead
    for (int64_t j = 0; j < nk && !deferred; ++j) {
        T* acc = track || split ? wtmp + j * np : gW + j * ni;  // without the magnitude: straight into gW (one pass)
        if (track || split)
            for (int64_t i = 0; i < np; ++i) acc[i] = 0;
        for (int64_t b = 0; b < B; ++b) {
            if constexpr (std::is_same_v<S, T>) {
                if (D == 2) {  // both stages in one pass over the row, each added in the order of the loop below
                    const T c0 = coef(0, b * nk + j), c1 = coef(1, b * nk + j);
                    const T* __restrict u0 = stage(0, 0) + (b * nk + j) * np;
                    const T* __restrict u1 = stage(1, 0) + (b * nk + j) * np;
                    if (c0 != T(0) && c1 != T(0)) {
                        #pragma omp simd
                        for (int64_t i = 0; i < np; ++i) {
                            acc[i] += c0 * u0[i];
                            acc[i] += c1 * u1[i];
                        }
                        continue;
                    }
                }
            }
            for (int64_t s = 0; s < D; ++s) {
                const T c = coef(s, b * nk + j);
                if (c == T(0)) continue;
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
                if constexpr (std::is_same_v<T, float> && std::is_same_v<S, Half>) {  // in registers (storage.h)
                    const __m512 vc = _mm512_set1_ps(c);
                    read_half_row(wide(s, 0) + (b * nk + j) * np, np, [&](int64_t k, __m512 v, __mmask16 m) {
                        _mm512_mask_storeu_ps(acc + k, m, _mm512_fmadd_ps(vc, v, _mm512_maskz_loadu_ps(m, acc + k)));
                    });
                    continue;
                }
#endif
                read_row<T, S>(wide(s, 0) + (b * nk + j) * np, np, [&](int64_t k0, int64_t m, const T* v) {
                    T* ak = acc + k0;
                    #pragma omp simd
                    for (int64_t i = 0; i < m; ++i) ak[i] += c * v[i];
                });
            }
        }
        if (track || split) mag += add_pre_row<T>(K, j, acc, track);
    }
    // the [B, N] traces: sum_s c^s u^s, or the per-output-neuron pairing (neuron_pair, vectorised over the
    // neurons j, each one's sum over x in order), into out[0, m) for the neurons j0 .. j0 + m - 1. The same
    // sums as the scalar loop this replaced, but the compiler fuses their multiply-adds differently (it
    // keeps scalar loop-carried sums unfused on this CPU's tuning), so float32 results differ from it in
    // the last bit (docs/benchmarks.md §7, "The streaming step, a third pass")
    alignas(64) T pv[kChunk];
    auto small = [&](int c, const T* h, int64_t b, int64_t j0, int64_t m, T* __restrict out) {
        if (h) {
            for (int64_t jj = 0; jj < m; ++jj) out[jj] = 0;
            for (int64_t x = 0; x < na; ++x) {
                const T dA = deltaA[b * na + x];
                const T* __restrict Wr = WA + x * nk + j0;
                const T* __restrict hr = h + (b * na + x) * nk + j0;
                #pragma omp simd
                for (int64_t jj = 0; jj < m; ++jj) out[jj] += dA * Wr[jj] * hr[jj];
            }
            return;  // the caller scales by beta^A_j (scale())
        }
        for (int64_t jj = 0; jj < m; ++jj) {
            T v = 0;
            for (int64_t s = 0; s < D; ++s) v += coef(s, b * nk + j0 + jj) * stage(s, c)[b * nk + j0 + jj];
            out[jj] = v;
        }
    };
    // what multiplies small's out[jj]: beta^A_j for the pairing (h), else 1 (an exact product)
    auto scale = [&](const T* h, int64_t j) -> T { return h ? (fpcA ? betaA[j] : betaA[0]) : T(1); };
    // fn(j, sum_b small(c, b, j)) for every neuron j in order, each sum over b in order
    auto per_neuron = [&](int c, const T* h, auto&& fn) {
        alignas(64) T sum[kChunk];
        for (int64_t j0 = 0; j0 < nk; j0 += kChunk) {
            const int64_t m = nk - j0 < kChunk ? nk - j0 : kChunk;
            for (int64_t jj = 0; jj < m; ++jj) sum[jj] = 0;
            for (int64_t b = 0; b < B; ++b) {
                small(c, h, b, j0, m, pv);
                for (int64_t jj = 0; jj < m; ++jj) sum[jj] += pv[jj] * scale(h, j0 + jj);
            }
            for (int64_t jj = 0; jj < m; ++jj) fn(j0 + jj, sum[jj]);
        }
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
                for (int64_t j0 = 0; j0 < nk; j0 += kChunk) {
                    const int64_t m = nk - j0 < kChunk ? nk - j0 : kChunk;
                    small(1, (const T*)K.h_a, b, j0, m, pv);
                    for (int64_t jj = 0; jj < m; ++jj) tot += pv[jj] * scale((const T*)K.h_a, j0 + jj);
                }
            galpha[0] += tot;
        }
    }
    T* glam = (T*)K.glam;
    if (glam && K.cstage[4]) {
        T tot = 0;
        per_neuron(2, (const T*)K.h_m, [&](int64_t j, T s) {
            if (K.lam_per_neuron) glam[j] += s; else tot += s;
        });
        if (!K.lam_per_neuron) glam[0] += tot;
    }
    T* gb = (T*)K.gb;
    if (gb && K.cstage[6]) per_neuron(3, (const T*)K.h_n, [&](int64_t j, T s) { gb[j] += s; });
    return mag;
}
