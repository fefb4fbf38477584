// Flush-to-zero and denormals-are-zero while a compiled call runs, restored after (included by kernel.cpp and
// scan.cpp). Traces and adjoints that decay by |d| < 1 every step reach the subnormal range within tens of
// steps (float32), where each operation costs ~100 cycles; flushing changes results by less than the smallest
// normal number (1e-38 / 1e-308).
#pragma once
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define SOLSA_HAVE_MXCSR 1
#endif

struct FlushDenormals {
#ifdef SOLSA_HAVE_MXCSR
    unsigned int saved;
    FlushDenormals() : saved(_mm_getcsr()) { _mm_setcsr(saved | 0x8040u); }
    ~FlushDenormals() { _mm_setcsr(saved); }
#endif
};
