/* ---- the SOLSA runtime (solsa/export_c/runtime.c, appended to every export) ----------------------------
 *
 * One time step of the network of docs/model.md §1 and, with SOLSA_LEARN, the SOLSA traces of §2 with the
 * cross-layer credit of docs/credit.md, for batch size 1 (the gradient and the update: runtime_learn.c). The
 * arithmetic is that of solsa/functional/ and solsa/rules/solsa.py + rules/credit.py (the reference), up to
 * the order of floating-point summations; tests/test_export_c.py holds the two equal. Plain C99: no malloc,
 * no threads, no libm beyond expf (double: exp, expm1). The generated part above defines solsa_real (float, or
 * double with --dtype float64), SOLSA_R and SOLSA_EXP, the layer table SOLSA_LAYERS, the parameters
 * solsa_param[] and the state struct of solsa_model.h.
 */

/* Flush-to-zero and denormals-are-zero while a call runs, restored after (x86: MXCSR), as the fused PyTorch
 * kernel does (solsa/fast/kernel.cpp): traces that decay by |d| < 1 every step reach the subnormal range,
 * where each operation costs ~100 cycles; flushing changes results by less than the smallest normal number
 * (1.2e-38 in float, 2.2e-308 in double). Elsewhere, set the FPU's flush-to-zero mode once (Cortex-M: FPSCR.FZ). Define
 * SOLSA_KEEP_SUBNORMALS to leave the mode alone. */
#if (defined(__SSE__) || defined(__x86_64__)) && !defined(SOLSA_KEEP_SUBNORMALS)
#include <xmmintrin.h>
static unsigned int solsa_ftz_begin(void) {
    const unsigned int saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040u);
    return saved;
}
static void solsa_ftz_end(unsigned int saved) { _mm_setcsr(saved); }
#else
static unsigned int solsa_ftz_begin(void) { return 0u; }
static void solsa_ftz_end(unsigned int saved) { (void)saved; }
#endif

#define SOLSA_OFF(s, off) ((off) < 0 ? (solsa_real*)0 : (solsa_real*)(void*)(s) + (off))
#define SOLSA_PAR(off) ((off) < 0 ? (solsa_real*)0 : solsa_param + (off))

/* A function the compiler keeps whole (GCC, Clang): the layer passes, whose inlined loops are tuned as they stand;
 * inlined into their caller, GCC 12 stopped inlining the row loops into them (measured 10 % slower). */
#if defined(__GNUC__)
#define SOLSA_NOINLINE __attribute__((noinline))
#else
#define SOLSA_NOINLINE
#endif

/* The element-wise loops, four entries per iteration so that compilers vectorise them at -O2 (each entry's
 * arithmetic, and so its rounding, is that of the plain loop). */

#if SOLSA_LEARN
/* y = y + c x */
static void solsa_axpy(solsa_real* restrict y, const solsa_real* restrict x, solsa_real c, long n) {
    long k = 0;
    for (; k + 4 <= n; k += 4) {
        y[k] += c * x[k]; y[k + 1] += c * x[k + 1]; y[k + 2] += c * x[k + 2]; y[k + 3] += c * x[k + 3];
    }
    for (; k < n; ++k) y[k] += c * x[k];
}

#endif

/* out_j = sum_i x_i W_ji (+ b_j) for R rows (R = SOLSA_ROWS or 1), each summed in SOLSA_LANES partial sums (lane
 * k: i = k, k + L, ...) added in lane order, then the rest of the row, then b: an order that vectorises, and the
 * order i = 0, 1, ... for rows shorter than 2 L (the reference's own order, for long rows, is its BLAS's); with two,
 * out2_j = sum_i x2_i W_ji as well, in the same pass over W. With GCC or Clang on x86 with AVX, each row's lanes
 * are one vector (the compilers' vector extension: GCC 12 kept the plain version's partial sums in memory, 1.9x
 * slower for the default 100 x 100 layer); elsewhere plain C. Both add the same values in the same order. */
#include <string.h>
#define SOLSA_LANES 8
#if defined(__GNUC__) && defined(__AVX__) && !defined(SOLSA_PLAIN_C)
#define SOLSA_VECTOR_LANES 1
typedef solsa_real solsa_lanes __attribute__((vector_size(SOLSA_LANES * sizeof(solsa_real))));
typedef solsa_real solsa_quad __attribute__((vector_size(4 * sizeof(solsa_real))));
#else
#define SOLSA_VECTOR_LANES 0
typedef solsa_real solsa_lanes[SOLSA_LANES];
#endif
#if defined(__AVX512F__)
#define SOLSA_ROWS 8 /* 32 vector registers: 8 rows' partial sums (16 with two) stay in registers */
#else
#define SOLSA_ROWS 4
#endif
static inline void solsa_matvec_rows(const solsa_real* restrict W, const solsa_real* restrict x, const solsa_real* b,
                                     solsa_real* restrict out, const solsa_real* restrict x2,
                                     solsa_real* restrict out2, long n_in, int R, int two) {
    solsa_lanes acc[SOLSA_ROWS], acc2[SOLSA_ROWS];
    long i, e;
    int r, k;
    memset(acc, 0, sizeof acc); /* +0.0 */
    memset(acc2, 0, sizeof acc2);
    for (i = 0; i + SOLSA_LANES <= n_in; i += SOLSA_LANES) {
#if SOLSA_VECTOR_LANES
        solsa_lanes xv, x2v, wv;
        memcpy(&xv, x + i, sizeof xv);
        if (two) memcpy(&x2v, x2 + i, sizeof x2v);
        for (r = 0; r < R; ++r) {
            memcpy(&wv, W + r * n_in + i, sizeof wv);
            acc[r] += xv * wv;
            if (two) acc2[r] += x2v * wv;
        }
#else
        for (r = 0; r < R; ++r)
            for (k = 0; k < SOLSA_LANES; ++k) {
                acc[r][k] += x[i + k] * W[r * n_in + i + k];
                if (two) acc2[r][k] += x2[i + k] * W[r * n_in + i + k];
            }
#endif
    }
    for (r = 0; r < R; ++r) {
        solsa_real t = acc[r][0], t2 = acc2[r][0];
        for (k = 1; k < SOLSA_LANES; ++k) {
            t += acc[r][k];
            if (two) t2 += acc2[r][k];
        }
        for (e = i; e < n_in; ++e) {
            t += x[e] * W[r * n_in + e];
            if (two) t2 += x2[e] * W[r * n_in + e];
        }
        out[r] = b ? t + b[r] : t;
        if (two) out2[r] = t2;
    }
}

/* out = W x (+ b) and, with x2, out2 = W x2: SOLSA_ROWS rows at a time */
static void solsa_matvec(const solsa_real* W, const solsa_real* x, const solsa_real* b, solsa_real* out,
                         const solsa_real* x2, solsa_real* out2, long n_out, long n_in) {
    long j = 0;
    for (; j + SOLSA_ROWS <= n_out; j += SOLSA_ROWS) {
        if (x2) solsa_matvec_rows(W + j * n_in, x, b ? b + j : 0, out + j, x2, out2 + j, n_in, SOLSA_ROWS, 1);
        else solsa_matvec_rows(W + j * n_in, x, b ? b + j : 0, out + j, 0, 0, n_in, SOLSA_ROWS, 0);
    }
    for (; j < n_out; ++j) {
        if (x2) solsa_matvec_rows(W + j * n_in, x, b ? b + j : 0, out + j, x2, out2 + j, n_in, 1, 1);
        else solsa_matvec_rows(W + j * n_in, x, b ? b + j : 0, out + j, 0, 0, n_in, 1, 0);
    }
}

/* x = spike(V - th): the Heaviside step */
static solsa_real solsa_heaviside(solsa_real u) { return u > 0.0f ? 1.0f : 0.0f; }

/* the membrane V[t] from V[t-1], o[t-1] and the current (0 subtract, 1 zero, 2 none) */
static solsa_real solsa_membrane(int reset, solsa_real lam, solsa_real Vp, solsa_real op, solsa_real cur,
                                 solsa_real ra) {
    if (reset == 0) return lam * Vp + cur - ra * op;
    if (reset == 1) return lam * Vp * (1.0f - op) + cur;
    return lam * Vp + cur;
}

/* F[t] = alpha F[t-1] + beta x[t] (in place) and the current I = F W^T + b; with p, also wp = p W^T (the a
 * trace's input with one alpha per layer, docs/model.md §2) in the same pass over W */
static void solsa_filter_current(const solsa_layer_desc* D, solsa_real* F, const solsa_real* x, solsa_real* cur,
                                 const solsa_real* p, solsa_real* wp) {
    const solsa_real* W = SOLSA_PAR(D->W);
    const solsa_real* b = SOLSA_PAR(D->b);
    const solsa_real* alpha = SOLSA_PAR(D->alpha);
    const solsa_real* beta = SOLSA_PAR(D->beta);
    int i;
    for (i = 0; i < D->n_in; ++i) F[i] = alpha[D->fpc ? i : 0] * F[i] + beta[D->fpc ? i : 0] * x[i];
    solsa_matvec(W, F, b, cur, p, wp, D->n_out, D->n_in);
}

#if SOLSA_LEARN
/* the mean of v[0..n-1], summed in order */
static solsa_real solsa_mean(const solsa_real* v, long n) {
    solsa_real t = 0.0f;
    long k;
    for (k = 0; k < n; ++k) t += v[k];
    return t / (solsa_real)n;
}

/* eps = surrogate derivative at u = V - th (solsa/surrogate.py): 0 gaussian, 1 fast_sigmoid, 2 atan, 3 triangle */
static solsa_real solsa_surrogate(int kind, solsa_real u, solsa_real w, solsa_real c) {
    solsa_real q;
    switch (kind) {
        case 0: q = u / w; return SOLSA_EXP(-0.5f * (q * q)) / c;
        case 1: q = 1.0f + (u < 0.0f ? -u : u) / w; return 1.0f / (2.0f * w * (q * q));
        case 2: q = c * u / (2.0f * w); return 1.0f / (2.0f * w * (1.0f + q * q));
        default: q = 1.0f - (u < 0.0f ? -u : u) / w; return (q > 0.0f ? q : 0.0f) / w;
    }
}

/* expm1 (float: without libm, a Taylor polynomial near 0, where expf(x) - 1 loses digits, expf(x) - 1 elsewhere;
 * double: C99's expm1) */
static solsa_real solsa_expm1(solsa_real x) {
#if SOLSA_DOUBLE
    return expm1(x);
#else
    if (x > -0.5f && x < 0.5f) {
        solsa_real p = 1.0f / 39916800.0f;
        p = p * x + 1.0f / 3628800.0f;
        p = p * x + 1.0f / 362880.0f;
        p = p * x + 1.0f / 40320.0f;
        p = p * x + 1.0f / 5040.0f;
        p = p * x + 1.0f / 720.0f;
        p = p * x + 1.0f / 120.0f;
        p = p * x + 1.0f / 24.0f;
        p = p * x + 1.0f / 6.0f;
        p = p * x + 0.5f;
        p = p * x + 1.0f;
        return p * x;
    }
    return SOLSA_EXP(x) - 1.0f;
#endif
}

/* after layer l has its d[t]: the neuron-level part of the credit of the layers below that runs through it
 * (their eps and 1 filtered for lagged_surrogate, the decay-kernel masses); the traces' credit stages are
 * advanced in the row pass (solsa_traces, runtime_traces.c) */
static void solsa_credit_neurons(solsa_state* s, int l) {
    const solsa_layer_desc* U = &SOLSA_LAYERS[l];
    const solsa_real* alpha = SOLSA_PAR(U->alpha);
    const solsa_real* dU = SOLSA_OFF(s, U->d);
    const solsa_real dbar = solsa_mean(dU, U->n_out);
    const solsa_layer_desc* K = &SOLSA_LAYERS[l - 1];
    const solsa_real* eps = SOLSA_OFF(s, K->eps);
    int j, x;
    if (K->depth < 1) return;
    if (K->eps_lag >= 0) { /* eps and 1 through the layer above, then lagged_surrogate */
        solsa_real *qE = SOLSA_OFF(s, K->qE), *uE = SOLSA_OFF(s, K->uE), *qN = SOLSA_OFF(s, K->qN);
        solsa_real *uN = SOLSA_OFF(s, K->uN), *el = SOLSA_OFF(s, K->eps_lag);
        for (j = 0; j < K->n_out; ++j) {
            const solsa_real al = alpha[U->fpc ? j : 0];
            solsa_real den;
            qE[j] = al * qE[j] + eps[j];
            qN[j] = al * qN[j] + 1.0f;
            uE[j] = dbar * uE[j] + qE[j];
            uN[j] = dbar * uN[j] + qN[j];
            den = uN[j] - 1.0f;
            el[j] = (den > SOLSA_R(1e-12) || den < -SOLSA_R(1e-12)) ? (uE[j] - eps[j]) / den : 0.0f;
        }
    }
    if (K->M >= 0) { /* decay_mass: M = d M + 1 per upper neuron, and with the mean d */
        solsa_real *M = SOLSA_OFF(s, K->M), *Mb = SOLSA_OFF(s, K->Mbar);
        for (x = 0; x < U->n_out; ++x) M[x] = dU[x] * M[x] + 1.0f;
        Mb[0] = dbar * Mb[0] + 1.0f;
    }
}

static void solsa_traces(solsa_state* s, int grad);
#endif

/* one layer, one step: the state (and with SOLSA_LEARN the traces) from the input x */
static void solsa_forward_layer(solsa_state* s, int l, const solsa_real* x) {
    const solsa_layer_desc* D = &SOLSA_LAYERS[l];
    const solsa_real* lam = SOLSA_PAR(D->lam);
    solsa_real *F = SOLSA_OFF(s, D->F), *V = SOLSA_OFF(s, D->V), *o = SOLSA_OFF(s, D->o);
    solsa_real* cur = SOLSA_OFF(s, D->cur);
    const int reset = D->spiking ? D->reset : 2;
    int j;
#if SOLSA_LEARN
    const solsa_real* alpha = SOLSA_PAR(D->alpha);
    solsa_real *eps = SOLSA_OFF(s, D->eps), *p = SOLSA_OFF(s, D->p), *m = SOLSA_OFF(s, D->m), *n = SOLSA_OFF(s, D->n);
    solsa_real* d = SOLSA_OFF(s, D->d);
    int i;
    /* d[t] = dV[t]/dV[t-1], the reset path included (docs/model.md §2), from the previous step's V, o, eps */
    for (j = 0; j < D->n_out; ++j) {
        const solsa_real lj = lam[D->lpn ? j : 0];
        if (reset == 2) d[j] = lj;
        else if (reset == 0) d[j] = SOLSA_RESET_FEEDBACK ? lj - D->ra * eps[j] : lj;
        else d[j] = SOLSA_RESET_FEEDBACK ? lj * (1.0f - o[j]) - lj * V[j] * eps[j] : lj * (1.0f - o[j]);
    }
    if (p) for (i = 0; i < D->n_in; ++i) p[i] = F[i] + alpha[D->fpc ? i : 0] * p[i]; /* p = F[t-1] + alpha p */
    if (m) for (j = 0; j < D->n_out; ++j) m[j] = (reset == 1 ? V[j] * (1.0f - o[j]) : V[j]) + d[j] * m[j];
    if (n) for (j = 0; j < D->n_out; ++j) n[j] = 1.0f + d[j] * n[j];
#endif
#if SOLSA_LEARN
    if (p && !D->fpc) { /* one alpha per layer: a_j = sum_i W_ji p_i + d_j a_j, its sum in the current's pass */
        solsa_real *a = SOLSA_OFF(s, D->a), *wp = SOLSA_OFF(s, SOLSA_SCRATCH); /* scratch: free until the errors */
        solsa_filter_current(D, F, x, cur, p, wp);
        for (j = 0; j < D->n_out; ++j) a[j] = wp[j] + d[j] * a[j];
    } else
#endif
        solsa_filter_current(D, F, x, cur, 0, 0); /* the traces e (a) and their credit: solsa_traces */
    for (j = 0; j < D->n_out; ++j) {
        V[j] = solsa_membrane(reset, lam[D->lpn ? j : 0], V[j], o[j], cur[j], D->ra);
        o[j] = D->spiking ? solsa_heaviside(V[j] - D->th) : V[j];
    }
#if SOLSA_LEARN
    if (l > 0 && SOLSA_CREDIT != 0) solsa_credit_neurons(s, l);
    for (j = 0; j < D->n_out; ++j)
        eps[j] = D->spiking ? solsa_surrogate(D->surrogate, V[j] - D->th, D->width, D->sur_c) : 1.0f;
#endif
}

#if SOLSA_N_DELAYS
/* the delay encoder (solsa.tasks.encoders.delay): channel c's sample x[c] is written into its ring of the last
 * SOLSA_DELAY_SPAN samples (zero before the sequence starts: solsa_reset clears the rings), and the network's
 * input c * SOLSA_N_DELAYS + m is the sample of solsa_delay_lag[m] steps ago: the PyTorch encoder's order.
 * ring_at, the slot of the current step, is a whole number kept as a solsa_real (exact below 2^24). */
static const solsa_real* solsa_encode(solsa_state* s, const solsa_real* x) {
    solsa_real* ring = SOLSA_OFF(s, SOLSA_RING);
    solsa_real* at = SOLSA_OFF(s, SOLSA_RING_AT);
    solsa_real* in = SOLSA_OFF(s, SOLSA_NET_IN);
    const int now = (int)at[0];
    int c, m;
    for (c = 0; c < SOLSA_N_INPUTS; ++c) {
        solsa_real* r = ring + (long)c * SOLSA_DELAY_SPAN;
        r[now] = x[c];
        for (m = 0; m < SOLSA_N_DELAYS; ++m) {
            const int k = now - solsa_delay_lag[m];
            in[c * SOLSA_N_DELAYS + m] = r[k < 0 ? k + SOLSA_DELAY_SPAN : k];
        }
    }
    at[0] = (solsa_real)(now + 1 < SOLSA_DELAY_SPAN ? now + 1 : 0);
    return in;
}
#else
static const solsa_real* solsa_encode(solsa_state* s, const solsa_real* x) {
    (void)s;
    return x; /* encoder direct: the sample is the network's input */
}
#endif

/* the neurons of every layer, one step (the synapse traces: solsa_traces) */
static void solsa_forward(solsa_state* s, const solsa_real* x) {
    const solsa_real* in = solsa_encode(s, x);
    int l;
    for (l = 0; l < SOLSA_N_LAYERS; ++l) {
        solsa_forward_layer(s, l, in);
        in = SOLSA_OFF(s, SOLSA_LAYERS[l].o);
    }
}

const solsa_real* solsa_output(const solsa_state* s) {
    return (const solsa_real*)(const void*)s + SOLSA_LAYERS[SOLSA_N_LAYERS - 1].o;
}

void solsa_step(solsa_state* s, const solsa_real* x, solsa_real* out) {
    const unsigned int mode = solsa_ftz_begin();
    int c;
    const solsa_real* y;
    solsa_forward(s, x);
#if SOLSA_LEARN
    solsa_traces(s, 0);
#endif
    y = solsa_output(s);
    if (out) for (c = 0; c < SOLSA_N_OUTPUTS; ++c) out[c] = y[c];
    solsa_ftz_end(mode);
}

void solsa_reset(solsa_state* s) {
    solsa_real* t = (solsa_real*)(void*)s;
    long k;
    for (k = 0; k < SOLSA_RESET_FLOATS; ++k) t[k] = 0.0f; /* the traces, then the encoder's state, come first */
}

#if SOLSA_LEARN
solsa_real* solsa_parameters(void) { return solsa_param; }
#else
const solsa_real* solsa_parameters(void) { return solsa_param; }
#endif

