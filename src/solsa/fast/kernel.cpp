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
// Each job has its header (plan.h, surrogate.h, forward.h, backward.h, flush.h, alif.h, credit.h,
// credit_backward.h, sequence.h); this file holds the per-step drivers (forward_all, backward_all, step_all)
// and the extern "C" entry points.
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
#include "plan.h"       // LayerDesc, Plan: the layout fused.py mirrors
#include "surrogate.h"  // surrogate_row, exp_neg
#include "forward.h"    // one LIF layer's forward step: forward_layer, predict_layer
#include "alif.h"       // ALIF and recurrent layers

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
            predict_layer<T>(plan->layers[l], plan->params + 5 * l, plan->batch, in, (T*)scratch[3 * l], (T*)scratch[3 * l + 1], on);
        in = on;
    }
    const LayerDesc& top = plan->layers[plan->n_layers - 1];
    std::memcpy(y_out, in, sizeof(T) * plan->batch * top.n_out);
}

#include "credit.h"     // cross-layer credit: credit_forward (the traces through the layers above)
#include "credit_backward.h"  // cross-layer credit: credit_backward (a hidden layer's gradient)
#include "backward.h"   // one layer's backward step, the built-in losses

template <typename T, typename S>
static void forward_all(Plan* plan, const T* x, T* y_out) {
    const bool rf = plan->reset_feedback != 0;
    const T* in = x;
    for (int64_t l = 0; l < plan->n_layers; ++l) {
        const LayerDesc& L = plan->layers[l];
        if (L.alif)
            alif_forward_layer<T, S>(plan, l, in, rf);
        else
            forward_layer<T, S>(L, plan->params + 5 * l, plan->batch, in, rf, plan->par_min,
                                plan->pending != 0 && L.credit_depth == 0, e_in_credit<T, S>(plan, L));
        if (l > 0) credit_forward<T, S>(plan, l);
        in = (const T*)L.o;
    }
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

#include "flush.h"      // flush_all, settle, zero_state

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
int64_t solsa_abi_version() { return 17; }
}
