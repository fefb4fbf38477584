// Storage types of the [B, N_out, N_in] traces in the fused kernel: included by kernel.cpp.
//
// SOLSA's trace_dtype (solsa/functional/traces.py, stored_as) keeps the traces e, a (one alpha per channel)
// and the cascade's stage copies of them in float16 or bfloat16 while the arithmetic stays in the network's
// dtype: every update widens the stored value, computes in T and rounds the result to the storage type,
// round to nearest even, as PyTorch's .to() does (from float64 through float32, as c10::Half does).
// A kernel call picks the storage type from Plan::storage (0: T itself, 1: float16, 2: bfloat16).
#pragma once

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

// fn(S{}) with the storage type S of plan->storage (T itself, Half or BHalf)
template <typename T, typename P, typename Fn>
static inline auto with_storage(const P* plan, Fn&& fn) {
    if (plan->storage == 1) return fn(Half{});
    if (plan->storage == 2) return fn(BHalf{});
    return fn(T{});
}
