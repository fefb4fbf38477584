// The surrogate derivative eps = surrogate(V - th) of a row of neurons, and the branch-free exp it uses.
// Included by kernel.cpp.
#pragma once
#include <cmath>
#include <cstdint>

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
