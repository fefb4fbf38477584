/* ---- the SOLSA learner (solsa/export_c/runtime_learn.c, appended after runtime.c with --learn) ---------------
 *
 * solsa_learn_step: the loss gradient at the output, then down the layers within the step: delta = g eps,
 * the gradient of each learned parameter accumulated from the traces (or their credit-filtered copies,
 * docs/credit.md), and the spatial error sent below (docs/model.md §3). solsa_apply: SGD and the clamps.
 */

#if SOLSA_LEARN
void solsa_init(solsa_state* s) {
    solsa_real* t = (solsa_real*)(void*)s;
    long k;
    for (k = 0; k < (long)(sizeof(solsa_state) / sizeof(solsa_real)); ++k) t[k] = 0.0f;
}

/* g = dl_t/dy of the per-step loss (solsa/losses.py, weight 1): 0 spike-MSE, 1 cross-entropy */
static void solsa_loss_grad(const solsa_real* y, int target, solsa_real* g) {
    int c;
    if (SOLSA_LOSS == 0) {
        for (c = 0; c < SOLSA_N_OUTPUTS; ++c)
            g[c] = (y[c] - (c == target ? 1.0f : 0.0f)) * (2.0f / (solsa_real)SOLSA_N_OUTPUTS);
    } else {
        solsa_real mx = y[0], se = 0.0f;
        for (c = 1; c < SOLSA_N_OUTPUTS; ++c) mx = y[c] > mx ? y[c] : mx;
        for (c = 0; c < SOLSA_N_OUTPUTS; ++c) { g[c] = SOLSA_EXP(y[c] - mx); se += g[c]; }
        for (c = 0; c < SOLSA_N_OUTPUTS; ++c) g[c] = g[c] / se - (c == target ? 1.0f : 0.0f);
    }
}

/* y_m = y_m + sum_x c_m[x] W_x for the count (1 to 3, a constant after inlining) outputs m, over the n rows W_x of
 * W (length ni), added row after row (x = 0, 1, ...): four rows per pass over the outputs, every output in the same
 * pass over W */
static inline void solsa_axpy_rows_loop(solsa_real* restrict y0, solsa_real* restrict y1, solsa_real* restrict y2,
                                        const solsa_real* restrict W, const solsa_real* const* c, long n, long ni,
                                        int count) {
    long x = 0, i;
    for (; x + 4 <= n; x += 4) {
        const solsa_real *w0 = W + x * ni, *w1 = w0 + ni, *w2 = w1 + ni, *w3 = w2 + ni;
        const solsa_real a0 = c[0][x], a1 = c[0][x + 1], a2 = c[0][x + 2], a3 = c[0][x + 3];
        const solsa_real b0 = count > 1 ? c[1][x] : 0.0f, b1 = count > 1 ? c[1][x + 1] : 0.0f;
        const solsa_real b2 = count > 1 ? c[1][x + 2] : 0.0f, b3 = count > 1 ? c[1][x + 3] : 0.0f;
        const solsa_real c0 = count > 2 ? c[2][x] : 0.0f, c1 = count > 2 ? c[2][x + 1] : 0.0f;
        const solsa_real c2 = count > 2 ? c[2][x + 2] : 0.0f, c3 = count > 2 ? c[2][x + 3] : 0.0f;
        for (i = 0; i < ni; ++i) {
            y0[i] = (((y0[i] + a0 * w0[i]) + a1 * w1[i]) + a2 * w2[i]) + a3 * w3[i];
            if (count > 1) y1[i] = (((y1[i] + b0 * w0[i]) + b1 * w1[i]) + b2 * w2[i]) + b3 * w3[i];
            if (count > 2) y2[i] = (((y2[i] + c0 * w0[i]) + c1 * w1[i]) + c2 * w2[i]) + c3 * w3[i];
        }
    }
    for (; x < n; ++x) {
        const solsa_real* w0 = W + x * ni;
        for (i = 0; i < ni; ++i) {
            y0[i] += c[0][x] * w0[i];
            if (count > 1) y1[i] += c[1][x] * w0[i];
            if (count > 2) y2[i] += c[2][x] * w0[i];
        }
    }
}

/* the count outputs y_m += sum_x c_m[x] W_x, three per pass over W */
static void solsa_axpy_rows(solsa_real* const* y, const solsa_real* W, const solsa_real* const* c, int count, long n,
                            long ni) {
    int m;
    for (m = 0; m < count; m += 3) {
        if (count - m == 1) solsa_axpy_rows_loop(y[m], 0, 0, W, c + m, n, ni, 1);
        else if (count - m == 2) solsa_axpy_rows_loop(y[m], y[m + 1], 0, W, c + m, n, ni, 2);
        else solsa_axpy_rows_loop(y[m], y[m + 1], y[m + 2], W, c + m, n, ni, 3);
    }
}

/* The errors layer l sends down, in one pass over its W (each out_i = beta_i sum_x v_x W_xi, x in order):
 * g^{l-1} = beta (delta W) (docs/model.md §3) and, when layer l-1 filters its traces through layer l, its signals
 * P^1 = beta ((delta M / Mbar) W) (mass_corrected_error; P^1 = g^{l-1} without masses) and
 * P^{s+1} = beta ((eps_lag P^s_l) W) (descend_signals). */
static void solsa_send_down(solsa_state* s, int l) {
    const solsa_layer_desc* A = &SOLSA_LAYERS[l];
    const solsa_layer_desc* K = &SOLSA_LAYERS[l - 1];
    const solsa_real* W = SOLSA_PAR(A->W);
    const solsa_real* beta = SOLSA_PAR(A->beta);
    const solsa_real* delta = SOLSA_OFF(s, A->delta);
    solsa_real* tmp = SOLSA_OFF(s, SOLSA_SCRATCH); /* [SOLSA_MAX_DEPTH + 1][SOLSA_SCRATCH_ROW] */
    const solsa_real* vs[SOLSA_MAX_DEPTH + 3]; /* + 3: solsa_axpy_rows takes three at a time */
    solsa_real* outs[SOLSA_MAX_DEPTH + 3];
    solsa_real* P = SOLSA_OFF(s, K->P);
    const long ni = A->n_in;
    int count = 1, m;
    long x, i, st;
    vs[0] = delta;
    outs[0] = SOLSA_OFF(s, A->gbelow);
    if (K->depth > 0 && K->M >= 0) {
        const solsa_real *M = SOLSA_OFF(s, K->M), *Mb = SOLSA_OFF(s, K->Mbar);
        solsa_real* v = tmp + (long)count * SOLSA_SCRATCH_ROW;
        for (x = 0; x < A->n_out; ++x) v[x] = delta[x] * (M[x] / Mb[0]);
        vs[count] = v;
        outs[count++] = P;
    }
    for (st = 1; st < K->depth; ++st) {
        const solsa_real* PA = SOLSA_OFF(s, A->P) + (st - 1) * A->n_out;
        const solsa_real* el = SOLSA_OFF(s, A->eps_lag);
        solsa_real* v = tmp + (long)count * SOLSA_SCRATCH_ROW;
        for (x = 0; x < A->n_out; ++x) v[x] = el[x] * PA[x];
        vs[count] = v;
        outs[count++] = P + st * K->n_out;
    }
    for (m = 0; m < count; ++m)
        for (i = 0; i < ni; ++i) outs[m][i] = 0.0f;
    solsa_axpy_rows(outs, W, vs, count, A->n_out, ni); /* every output in one pass over W */
    for (m = 0; m < count; ++m)
        for (i = 0; i < ni; ++i) outs[m][i] *= beta[A->fpc ? i : 0];
    if (K->depth > 0 && K->M < 0)
        for (i = 0; i < ni; ++i) P[i] = outs[0][i];
}

int solsa_learn_step(solsa_state* s, const solsa_real* x, int target) {
    unsigned int mode;
    solsa_real* g;
    int l, j;
    if (target >= SOLSA_N_OUTPUTS) return -1;
    mode = solsa_ftz_begin();
    solsa_forward(s, x);
    if (target >= 0) { /* the errors, from the output down within the step (docs/model.md §3) */
        g = SOLSA_OFF(s, SOLSA_GOUT);
        solsa_loss_grad(solsa_output(s), target, g);
        for (l = SOLSA_N_LAYERS - 1; l >= 0; --l) {
            const solsa_layer_desc* D = &SOLSA_LAYERS[l];
            const solsa_real* eps = SOLSA_OFF(s, D->eps);
            solsa_real* delta = SOLSA_OFF(s, D->delta);
            for (j = 0; j < D->n_out; ++j) delta[j] = g[j] * eps[j];
            if (l > 0) { /* g^{l-1} = beta (delta W): the same-step spatial error, and the credit signals */
                solsa_send_down(s, l);
                g = SOLSA_OFF(s, D->gbelow);
            }
        }
    }
    solsa_traces(s, target >= 0); /* the traces, and with a label the gradient from them */
    solsa_ftz_end(mode);
    return 0;
}

/* v = mu v + g; the step in the parameter's coordinates (0 linear, 1 log-timescale, 2 log) */
static void solsa_sgd(solsa_real* w, solsa_real* v, const solsa_real* g, long count, solsa_real lr, int coords) {
    long k;
    if (coords == 0 && !v) { /* plain SGD: w + (-lr) g, the same bits as w - lr g */
        solsa_axpy(w, g, -lr, count);
        return;
    }
    for (k = 0; k < count; ++k) {
        solsa_real gk = g[k];
        if (coords == 1) gk = gk * (1.0f - w[k]);
        else if (coords == 2) gk = gk * w[k];
        if (v) { v[k] = SOLSA_MOMENTUM * v[k] + gk; gk = v[k]; }
        if (coords == 0) w[k] = w[k] - lr * gk;
        else if (coords == 1) w[k] = w[k] - (1.0f - w[k]) * solsa_expm1(lr * gk); /* phi = -ln(1 - w) */
        else w[k] = w[k] * SOLSA_EXP(-lr * gk); /* ln w */
    }
}

static void solsa_clamp(solsa_real* w, long count, solsa_real lo, solsa_real hi) {
    long k;
    for (k = 0; k < count; ++k) w[k] = w[k] < lo ? lo : (w[k] > hi ? hi : w[k]);
}

void solsa_apply(solsa_state* s, solsa_real lr) {
    const solsa_real lr_dyn = lr * SOLSA_FILTER_LR_SCALE;
    int l;
    long k, i, j;
    const unsigned int mode = solsa_ftz_begin();
    for (l = 0; l < SOLSA_N_LAYERS; ++l) {
        const solsa_layer_desc* D = &SOLSA_LAYERS[l];
        solsa_real *W = solsa_param + D->W, *alpha = SOLSA_PAR(D->alpha), *beta = SOLSA_PAR(D->beta);
        solsa_real* lam = SOLSA_PAR(D->lam);
        solsa_real *gW = SOLSA_OFF(s, D->gW), *gbeta = SOLSA_OFF(s, D->gbeta);
        const long ni = D->n_in, nb = D->fpc ? ni : 1, nl = D->lpn ? D->n_out : 1;
        if (gbeta) { /* dl/dbeta_i = sum_j W_ji dl/dW_ji / beta_i, from this update's weight gradient */
            for (i = 0; i < nb; ++i) gbeta[i] = 0.0f;
            for (j = 0; j < D->n_out; ++j)
                for (i = 0; i < ni; ++i) gbeta[D->fpc ? i : 0] += W[j * ni + i] * gW[j * ni + i];
            for (i = 0; i < nb; ++i) gbeta[i] /= beta[i];
        }
        solsa_sgd(W, SOLSA_OFF(s, D->vW), gW, D->n_out * ni, lr, 0);
        if (D->gb >= 0) solsa_sgd(solsa_param + D->b, SOLSA_OFF(s, D->vb), SOLSA_OFF(s, D->gb), D->n_out, lr, 0);
        if (D->galpha >= 0)
            solsa_sgd(alpha, SOLSA_OFF(s, D->valpha), SOLSA_OFF(s, D->galpha), nb, lr_dyn, SOLSA_DECAY_COORDS);
        if (gbeta) solsa_sgd(beta, SOLSA_OFF(s, D->vbeta), gbeta, nb, lr_dyn, SOLSA_GAIN_COORDS);
        if (D->glam >= 0)
            solsa_sgd(lam, SOLSA_OFF(s, D->vlam), SOLSA_OFF(s, D->glam), nl, lr_dyn, SOLSA_DECAY_COORDS);
        /* zero the accumulators; clamp as net.clamp_(): alpha, lam in [0, ALPHA_MAX], beta >= BETA_MIN */
        for (k = 0; k < D->n_out * ni; ++k) gW[k] = 0.0f;
        if (D->gb >= 0) for (k = 0; k < D->n_out; ++k) SOLSA_OFF(s, D->gb)[k] = 0.0f;
        if (D->galpha >= 0) for (k = 0; k < nb; ++k) SOLSA_OFF(s, D->galpha)[k] = 0.0f;
        if (D->glam >= 0) for (k = 0; k < nl; ++k) SOLSA_OFF(s, D->glam)[k] = 0.0f;
        solsa_clamp(alpha, nb, 0.0f, SOLSA_ALPHA_MAX);
        solsa_clamp(lam, nl, 0.0f, SOLSA_ALPHA_MAX);
        solsa_clamp(beta, nb, SOLSA_BETA_MIN, 3.0e38f);
    }
    solsa_ftz_end(mode);
}
#endif
