// The fused kernel's accumulators and states between steps: flush (hand the gradients to .grad), settle
// (add the deferred weight gradient of the last step), zero_state (a new sequence). Included by kernel.cpp.
#pragma once

template <typename T, typename S>
static void settle(Plan* plan);

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
        if (L.credit_depth && stage_grad_deferred<T, S>(plan, L)) add_stage_grad<T>(plan, L);  // credit.h
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
