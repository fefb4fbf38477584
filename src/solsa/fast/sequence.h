// A stretch of time steps in one call (included by kernel.cpp, after the per-step functions).
//
// solsa_sequence runs step_all -- the per-step code of solsa_step, unchanged -- for `steps` consecutive
// time steps: forward, traces, credit, the built-in loss and gradient accumulation, with the parameters
// fixed for the whole stretch (the caller updates them only between calls). So the results are those of
// `steps` calls of solsa_step bit for bit; only the Python work between the calls is gone.
// solsa/fast/fused.py (FusedStepper.run) calls it; tests/test_fused_sequence.py holds the two paths equal.
#pragma once

// x: [steps, B, n_in]; target: labels (target_kind 1, int64) or dense [B, C] rows (2), the one of step t at
// target + t * target_stride bytes (stride 0: the same labels every step); w: [steps, B] per-sample loss
// weights (padded steps have weight 0); y_out: [steps, B, C]; loss_out: the per-step losses summed in
// order. Returns 0, or t + 1 when step t has a label out of range (steps before t are done).
template <typename T, typename S>
static int64_t sequence_all(Plan* plan, int64_t steps, const T* x, const void* target, int64_t target_kind,
                            int64_t target_stride, const T* w, int64_t loss_kind, T* y_out, T* loss_out, T* gbuf) {
    const int64_t B = plan->batch;
    const int64_t n_in = plan->layers[0].n_in, C = plan->layers[plan->n_layers - 1].n_out;
    const char* tgt = (const char*)target;
    T total = 0;
    for (int64_t t = 0; t < steps; ++t) {
        T value = 0;
        if (step_all<T, S>(plan, x + t * B * n_in, tgt + t * target_stride, target_kind, w + t * B, loss_kind,
                        y_out + t * B * C, &value, gbuf))
            return t + 1;
        total += value;
    }
    *loss_out = total;
    return 0;
}

extern "C" {
int64_t solsa_sequence_f32(Plan* p, int64_t steps, const float* x, const void* t, int64_t tk, int64_t ts,
                           const float* w, int64_t lk, float* y, float* loss, float* gbuf) {
    FlushDenormals f;
    return SOLSA_S(float, (sequence_all<float, S>(p, steps, x, t, tk, ts, w, lk, y, loss, gbuf)));
}
int64_t solsa_sequence_f64(Plan* p, int64_t steps, const double* x, const void* t, int64_t tk, int64_t ts,
                           const double* w, int64_t lk, double* y, double* loss, double* gbuf) {
    FlushDenormals f;
    return SOLSA_S(double, (sequence_all<double, S>(p, steps, x, t, tk, ts, w, lk, y, loss, gbuf)));
}
}
