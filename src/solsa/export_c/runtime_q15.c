/* ---- the fixed-point (q15) inference runtime (solsa/export_c/runtime_q15.c, appended to a q15 export) ------
 *
 * The network of docs/model.md §1 in integers: W as int16 (Q15, times 2^SHIFT per layer), b, alpha, beta, lam,
 * thresholds and the state F, V as int32 with 16 fractional bits (Q16.16). Products are formed in int64 and
 * rounded half away from zero. solsa_step takes and returns floats (one conversion per input and output);
 * inside, no floating point. The float export is the reference; docs/embedded.md gives the accuracy lost.
 */

/* v / 2^s rounded half away from zero (portable: no right shift of a negative number) */
static int32_t solsa_round_shift(int64_t v, int s) {
    const int64_t half = (int64_t)1 << (s - 1);
    int64_t r = v >= 0 ? (v + half) >> s : -((-v + half) >> s);
    if (r > 2147483647) r = 2147483647;
    if (r < -2147483647) r = -2147483647;
    return (int32_t)r;
}

static int32_t solsa_mul16(int32_t a, int32_t b) { return solsa_round_shift((int64_t)a * b, 16); }

static void solsa_forward_layer(solsa_state* s, int l, const int32_t* x) {
    const solsa_layer_desc* D = &SOLSA_LAYERS[l];
    const int16_t* W = solsa_wq + D->W;
    const int32_t* b = D->b < 0 ? (const int32_t*)0 : solsa_pq + D->b;
    const int32_t *alpha = solsa_pq + D->alpha, *beta = solsa_pq + D->beta, *lam = solsa_pq + D->lam;
    int32_t* st = (int32_t*)(void*)s;
    int32_t *F = st + D->F, *V = st + D->V, *o = st + D->o;
    const int reset = D->spiking ? D->reset : 2;
    int i, j;
    for (i = 0; i < D->n_in; ++i)
        F[i] = solsa_mul16(alpha[D->fpc ? i : 0], F[i]) + solsa_mul16(beta[D->fpc ? i : 0], x[i]);
    for (j = 0; j < D->n_out; ++j) {
        const int16_t* Wj = W + (long)j * D->n_in;
        const int32_t lj = lam[D->lpn ? j : 0];
        int64_t acc = 0;
        int32_t cur, v;
        for (i = 0; i < D->n_in; ++i) acc += (int64_t)F[i] * Wj[i]; /* Q16 x Q15 * 2^-shift */
        cur = solsa_round_shift(acc, 15 - D->shift);
        if (b) cur += b[j];
        if (reset == 0) v = solsa_mul16(lj, V[j]) + cur - (o[j] ? D->ra : 0);
        else if (reset == 1) v = (o[j] ? 0 : solsa_mul16(lj, V[j])) + cur;
        else v = solsa_mul16(lj, V[j]) + cur;
        V[j] = v;
        o[j] = D->spiking ? (v > D->th ? 65536 : 0) : v;
    }
}

const int32_t* solsa_output_q(const solsa_state* s) {
    return (const int32_t*)(const void*)s + SOLSA_LAYERS[SOLSA_N_LAYERS - 1].o;
}

void solsa_step(solsa_state* s, const float* x, float* out) {
    int32_t* xq = (int32_t*)(void*)s + SOLSA_XQ;
    const int32_t* in = xq;
    const int32_t* y;
    int l, c;
    for (c = 0; c < SOLSA_N_INPUTS; ++c) {
        const float v = x[c] * 65536.0f;
        xq[c] = v >= 2147483520.0f ? 2147483647 : (v <= -2147483520.0f ? -2147483647 : (int32_t)(v >= 0 ? v + 0.5f : v - 0.5f));
    }
    for (l = 0; l < SOLSA_N_LAYERS; ++l) {
        solsa_forward_layer(s, l, in);
        in = (const int32_t*)(void*)s + SOLSA_LAYERS[l].o;
    }
    y = solsa_output_q(s);
    if (out) for (c = 0; c < SOLSA_N_OUTPUTS; ++c) out[c] = (float)y[c] / 65536.0f;
}

void solsa_reset(solsa_state* s) {
    int32_t* t = (int32_t*)(void*)s;
    long k;
    for (k = 0; k < SOLSA_TRACE_FLOATS; ++k) t[k] = 0;
}
