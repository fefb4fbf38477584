// Storage types of the [B, N_out, N_in] traces in the fused kernel: included by kernel.cpp.
//
// SOLSA's trace_dtype (solsa/functional/traces.py, stored_as) keeps the traces e, a (one alpha per channel)
// and the cascade's stage copies of them in float16 or bfloat16 while the arithmetic stays in the network's
// dtype: every update widens the stored value, computes in T and rounds the result to the storage type,
// round to nearest even, as PyTorch's .to() does (from float64 through float32, as c10::Half does).
// A kernel call picks the storage type from Plan::storage (0: T itself, 1: float16, 2: bfloat16).
#pragma once
#include <type_traits>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

// float16 by IEEE bit code: branch-free binary16 <-> binary32, the method of the FP16 library that PyTorch
// uses (round to nearest even, subnormals kept, NaN stays NaN). The float arithmetic never meets a float32
// subnormal, so flush-to-zero does not change it. Not g++'s _Float16: g++ 12 converts it one value at a
// time (vcvtss2sh), 3x slower here than this code, which the loops vectorise (docs/benchmarks.md §0b).
enum class Half : uint16_t {};  // a scalar type (the loops vectorise over it), not float
static inline float half_to_float(Half h) {
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u, two_w = w + w;
    const float normal = __builtin_bit_cast(float, (two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    const float tiny = __builtin_bit_cast(float, (two_w >> 17) | (126u << 23)) - 0.5f;
    const uint32_t bits = two_w < (1u << 27) ? __builtin_bit_cast(uint32_t, tiny) : __builtin_bit_cast(uint32_t, normal);
    return __builtin_bit_cast(float, sign | bits);
}
static inline Half float_to_half(float f) {
    float base = (std::fabs(f) * 0x1.0p+112f) * 0x1.0p-110f;
    const uint32_t w = __builtin_bit_cast(uint32_t, f);
    const uint32_t shl1_w = w + w, sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = __builtin_bit_cast(float, (bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = __builtin_bit_cast(uint32_t, base);
    const uint32_t nonsign = ((bits >> 13) & 0x00007C00u) + (bits & 0x00000FFFu);
    return Half((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

// bfloat16: the upper half of a float32, rounded to nearest even (NaN: 0x7FC0), as c10::BFloat16
enum class BHalf : uint16_t {};
static inline float bhalf_to_float(BHalf h) { return __builtin_bit_cast(float, (uint32_t)h << 16); }
static inline BHalf float_to_bhalf(float f) {
    const uint32_t u = __builtin_bit_cast(uint32_t, f);
    if (f != f) return BHalf(0x7FC0);
    return BHalf((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// load<T>(stored): the stored value in the arithmetic type T; store<S>(v): v rounded to the storage type S
template <typename T> static inline T load(float v) { return T(v); }
template <typename T> static inline T load(double v) { return T(v); }
template <typename T> static inline T load(Half v) { return T(half_to_float(v)); }
template <typename T> static inline T load(BHalf v) { return T(bhalf_to_float(v)); }

template <typename S> struct Store;
template <> struct Store<float> { static inline float of(float v) { return v; } };
template <> struct Store<double> { static inline double of(double v) { return v; } };
template <> struct Store<Half> { static inline Half of(float v) { return float_to_half(v); } };
template <> struct Store<BHalf> { static inline BHalf of(float v) { return float_to_bhalf(v); } };
template <typename S, typename T> static inline S store(T v) { return Store<S>::of(v); }

// Rows of stored values seen in T, a chunk at a time: f(k0, m, v) gets v[0, m) = row[k0, k0 + m) widened
// (update_row writes v back, rounded). With S = T, v is the row itself (one chunk): the plain loop.
// float <-> float16 by the hardware (vcvtph2ps / vcvtps2ph, 16 lanes, masked for the remainder) where the
// CPU has AVX-512 (round to nearest even, subnormals kept, as the bit code; tests/test_trace_storage.py).
constexpr int64_t kChunk = 256;
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
// the lanes of row[k, k + 16) that lie in a row of n values (all 16 but at the row's end)
static inline __mmask16 lane_mask(int64_t n, int64_t k) {
    return n - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - k)) - 1);
}
#endif
template <typename T, typename S>
static inline void widen(const S* src, T* dst, int64_t n) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    if constexpr (std::is_same_v<T, float> && std::is_same_v<S, Half>) {
        for (int64_t k = 0; k < n; k += 16) {
            const __mmask16 m = lane_mask(n, k);
            _mm512_mask_storeu_ps(dst + k, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src + k)));
        }
        return;
    }
#endif
    #pragma omp simd
    for (int64_t k = 0; k < n; ++k) dst[k] = load<T>(src[k]);
}
template <typename T, typename S>
static inline void narrow(const T* src, S* dst, int64_t n) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    if constexpr (std::is_same_v<T, float> && std::is_same_v<S, Half>) {
        for (int64_t k = 0; k < n; k += 16) {
            const __mmask16 m = lane_mask(n, k);
            const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, src + k), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            _mm256_mask_storeu_epi16(dst + k, m, h);
        }
        return;
    }
#endif
    #pragma omp simd
    for (int64_t k = 0; k < n; ++k) dst[k] = store<S>(src[k]);
}
template <typename T, typename S, bool Write, typename R, typename F>
static inline void visit_row(R* row, int64_t n, F&& f) {
    if constexpr (std::is_same_v<S, T>) {
        f(int64_t(0), n, row);
    } else {
        alignas(64) T v[kChunk];
        for (int64_t k0 = 0; k0 < n; k0 += kChunk) {
            const int64_t m = n - k0 < kChunk ? n - k0 : kChunk;
            widen<T, S>(row + k0, v, m);
            f(k0, m, v);
            if constexpr (Write) narrow<T, S>(v, row + k0, m);
        }
    }
}
template <typename T, typename S, typename F>
static inline void update_row(S* row, int64_t n, F&& f) { visit_row<T, S, true>(row, n, f); }

// A float16 row updated in registers, 16 lanes at a time: v = f(k, v, mask) on row[k, k + 16) widened, rounded
// back (f loads its other operands with the mask). One pass instead of update_row's three; only where the CPU
// has AVX-512 (elsewhere the callers take update_row).
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
template <typename F>
static inline void update_half_row(Half* row, int64_t n, F&& f) {
    for (int64_t k = 0; k < n; k += 16) {
        const __mmask16 m = lane_mask(n, k);
        const __m512 v = f(k, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + k)), m);
        _mm256_mask_storeu_epi16(row + k, m, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
}
// f(k, v, mask) on each 16 lanes of a float16 row, widened in registers (read_row's counterpart)
template <typename F>
static inline void read_half_row(const Half* row, int64_t n, F&& f) {
    for (int64_t k = 0; k < n; k += 16) {
        const __mmask16 m = lane_mask(n, k);
        f(k, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + k)), m);
    }
}
#endif
template <typename T, typename S, typename F>
static inline void read_row(const S* row, int64_t n, F&& f) { visit_row<T, S, false>(row, n, f); }

// fn(S{}) with the storage type S of plan->storage (T itself, Half or BHalf)
template <typename T, typename P, typename Fn>
static inline auto with_storage(const P* plan, Fn&& fn) {
    if (plan->storage == 1) return fn(Half{});
    if (plan->storage == 2) return fn(BHalf{});
    return fn(T{});
}
