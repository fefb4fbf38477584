/* ---- the SOLSA traces (solsa/export_c/runtime_traces.c, appended after runtime_learn.c with --learn) ---------
 *
 * solsa_traces: every synapse trace of a layer and the gradient from it in one pass over the layer, one row
 * (neuron j) at a time and, within a row, one block of SOLSA_LANES synapses at a time with all of a synapse's
 * traces in registers: e, a (docs/model.md §2), their credit stages q, u (docs/credit.md: the stage s filter
 * runs through layer k + s + 1) and the accumulated gradient (sum_s (P^s - P^{s+1}) u^s, or delta e without
 * credit). Each entry's arithmetic, and so its rounding, is that of the reference written trace by trace; the
 * neuron-level parts (d, p, m, n, eps, the credit's masses and lagged surrogate, the errors) are computed
 * before (solsa_forward, solsa_learn_step).
 */

#if SOLSA_LEARN
/* The row loops, four entries per iteration so that compilers vectorise them at -O2 (each entry's arithmetic,
 * and so its rounding, is that of the plain loop). */

/* y = x + c y */
static void solsa_decay_add(float* restrict y, const float* restrict x, float c, long n) {
    long k = 0;
    for (; k + 4 <= n; k += 4) {
        y[k] = x[k] + c * y[k]; y[k + 1] = x[k + 1] + c * y[k + 1];
        y[k + 2] = x[k + 2] + c * y[k + 2]; y[k + 3] = x[k + 3] + c * y[k + 3];
    }
    for (; k < n; ++k) y[k] = x[k] + c * y[k];
}

/* y = c y + w p (the products w p and c y, then their sum, as written in the plain loop) */
static void solsa_decay_mul_add(float* restrict y, const float* restrict w, const float* restrict p, float c, long n) {
    long k = 0;
    for (; k + 4 <= n; k += 4) {
        y[k] = w[k] * p[k] + c * y[k]; y[k + 1] = w[k + 1] * p[k + 1] + c * y[k + 1];
        y[k + 2] = w[k + 2] * p[k + 2] + c * y[k + 2]; y[k + 3] = w[k + 3] * p[k + 3] + c * y[k + 3];
    }
    for (; k < n; ++k) y[k] = w[k] * p[k] + c * y[k];
}

/* q = al q + s z; u = db u + q, q and u distinct arrays (one pass over q and u) */
static void solsa_credit_pair(float* restrict q, float* restrict u, const float* restrict z, float al, float s,
                              float db, long n) {
    long k = 0;
    for (; k + 4 <= n; k += 4) {
        const float q0 = al * q[k] + s * z[k], q1 = al * q[k + 1] + s * z[k + 1];
        const float q2 = al * q[k + 2] + s * z[k + 2], q3 = al * q[k + 3] + s * z[k + 3];
        q[k] = q0; q[k + 1] = q1; q[k + 2] = q2; q[k + 3] = q3;
        u[k] = db * u[k] + q0; u[k + 1] = db * u[k + 1] + q1;
        u[k + 2] = db * u[k + 2] + q2; u[k + 3] = db * u[k + 3] + q3;
    }
    for (; k < n; ++k) {
        q[k] = al * q[k] + s * z[k];
        u[k] = db * u[k] + q[k];
    }
}

/* q = al q + s z: a stage through a layer that keeps nothing (d = 0), whose u is q */
static void solsa_credit_single(float* restrict q, const float* restrict z, float al, float s, long n) {
    long k = 0;
    for (; k + 4 <= n; k += 4) {
        q[k] = al * q[k] + s * z[k]; q[k + 1] = al * q[k + 1] + s * z[k + 1];
        q[k + 2] = al * q[k + 2] + s * z[k + 2]; q[k + 3] = al * q[k + 3] + s * z[k + 3];
    }
    for (; k < n; ++k) q[k] = al * q[k] + s * z[k];
}

/* the credit stages of one row: stage s filters with al (alpha of the layer above it, or their mean), sc
 * (eps of the row's neuron at stage 0, else 1) and db (the mean d of that layer); cf: the row's gradient
 * coefficient of stage s (without credit, cf[0] = delta) */
typedef struct {
    int depth;
    float al[SOLSA_MAX_DEPTH], sc[SOLSA_MAX_DEPTH], db[SOLSA_MAX_DEPTH], cf[SOLSA_MAX_DEPTH];
} solsa_stages;

/* One row trace over n synapses at offset r of its arrays (e; a with per-channel filters, w != 0):
 * t = x + d t (t = w x + d t), then q_s = al_s q_s + sc_s z_s, u_s = db_s u_s + q_s (z_0 = t, z_s = u_{s-1}; u_s is q_s where the layer above
 * keeps nothing), and with g: g += cf_s u_s in stage order (without credit g += cf_0 t). The row stays in the
 * cache from its first pass to its last. */
static void solsa_row_chain(float* t, const float* x, const float* w, float d, float* const* q, float* const* u,
                            const solsa_stages* st, float* g, long r, long n) {
    const float* z = t + r;
    int m;
    t += r;
    if (w) solsa_decay_mul_add(t, w, x, d, n);
    else solsa_decay_add(t, x, d, n);
    if (g && st->depth == 0) solsa_axpy(g, t, st->cf[0], n);
    for (m = 0; m < st->depth; ++m) {
        if (u[m] != q[m]) solsa_credit_pair(q[m] + r, u[m] + r, z, st->al[m], st->sc[m], st->db[m], n);
        else solsa_credit_single(q[m] + r, z, st->al[m], st->sc[m], n);
        z = u[m] + r;
        if (g) solsa_axpy(g, z, st->cf[m], n);
    }
}

/* One neuron trace (a without per-channel filters, m, n) of row j: its credit stages, as solsa_row_chain for
 * one entry, and with acc: *acc += cf_s u_s in stage order (without credit *acc += cf_0 t) */
static void solsa_neuron_chain(float t, float* const* q, float* const* u, const solsa_stages* st, long j,
                               float* acc) {
    float z = t;
    int m;
    if (acc && st->depth == 0) *acc += st->cf[0] * t;
    for (m = 0; m < st->depth; ++m) {
        q[m][j] = st->al[m] * q[m][j] + st->sc[m] * z;
        if (u[m] != q[m]) u[m][j] = st->db[m] * u[m][j] + q[m][j];
        z = u[m][j];
        if (acc) *acc += st->cf[m] * z;
    }
}

/* Layer k's traces for one step, row by row (with grad, the gradient of every learned parameter from them).
 * A neuron trace that pairs with the layer above neuron by neuron (h, neuron_membrane_credit of rules/credit.py)
 * is filtered per upper neuron x instead: h[x, j] = d_x h[x, j] + q_j, and its gradient is
 * beta^A_j sum_x delta^A_x W^A_xj h[x, j] (neuron_credit_pairing). */
static void solsa_layer_traces(solsa_state* s, int k, int grad) {
    const solsa_layer_desc* K = &SOLSA_LAYERS[k];
    const solsa_layer_desc* A = &SOLSA_LAYERS[k + 1 < SOLSA_N_LAYERS ? k + 1 : k];
    const float* W = SOLSA_PAR(K->W);
    const float *F = SOLSA_OFF(s, K->F), *p = SOLSA_OFF(s, K->p), *d = SOLSA_OFF(s, K->d);
    const float *eps = SOLSA_OFF(s, K->eps), *delta = SOLSA_OFF(s, K->delta), *P = SOLSA_OFF(s, K->P);
    float* tr[4];
    float* gr[4];
    float *q[4][SOLSA_MAX_DEPTH], *u[4][SOLSA_MAX_DEPTH];
    float amean[SOLSA_MAX_DEPTH] = {0.0f}, dbar[SOLSA_MAX_DEPTH] = {0.0f};
    float tot_a = 0.0f, tot_m = 0.0f;
    const long nk = K->n_out, ni = K->n_in, D = K->depth;
    solsa_stages st;
    long j, x, m;
    int c;
    tr[0] = SOLSA_OFF(s, K->e); tr[1] = SOLSA_OFF(s, K->a); tr[2] = SOLSA_OFF(s, K->m); tr[3] = SOLSA_OFF(s, K->n);
    gr[0] = SOLSA_OFF(s, K->gW); gr[1] = SOLSA_OFF(s, K->galpha); gr[2] = SOLSA_OFF(s, K->glam);
    gr[3] = SOLSA_OFF(s, K->gb);
    st.depth = (int)D;
    for (m = 0; m < D && m < SOLSA_MAX_DEPTH; ++m) {
        const solsa_layer_desc* U = &SOLSA_LAYERS[k + m + 1];
        dbar[m] = solsa_mean(SOLSA_OFF(s, U->d), U->n_out);
        amean[m] = U->fpc ? solsa_mean(SOLSA_PAR(U->alpha), U->n_in) : SOLSA_PAR(U->alpha)[0];
        for (c = 0; c < 4; ++c) {
            q[c][m] = SOLSA_OFF(s, K->cq[m][c]);
            u[c][m] = SOLSA_OFF(s, K->cu[m][c]);
        }
    }
    for (j = 0; j < nk; ++j) {
        const float* alA = SOLSA_PAR(A->alpha);
        for (m = 0; m < D && m < SOLSA_MAX_DEPTH; ++m) {
            st.al[m] = m == 0 ? alA[A->fpc ? j : 0] : amean[m];
            st.sc[m] = m == 0 ? eps[j] : 1.0f;
            st.db[m] = dbar[m];
            st.cf[m] = grad ? P[m * nk + j] - (m + 1 < D ? P[(m + 1) * nk + j] : 0.0f) : 0.0f;
        }
        if (D == 0) st.cf[0] = grad ? delta[j] : 0.0f;
        solsa_row_chain(tr[0], F, 0, d[j], q[0], u[0], &st, grad ? gr[0] + j * ni : 0, j * ni, ni); /* e */
        if (tr[1] && K->fpc) {
            solsa_row_chain(tr[1], p, W + j * ni, d[j], q[1], u[1], &st, grad ? gr[1] : 0, j * ni, ni); /* a */
        } else if (tr[1]) { /* a_j = sum_i W_ji p_i + d_j a_j */
            const float* Wj = W + j * ni;
            float wp = 0.0f;
            long i;
            for (i = 0; i < ni; ++i) wp += p[i] * Wj[i];
            tr[1][j] = wp + d[j] * tr[1][j];
        }
        for (c = 1; c < 4; ++c) {
            float* h = SOLSA_OFF(s, K->h[c]);
            float* acc;
            if (!tr[c] || (c == 1 && K->fpc)) continue;
            acc = c == 1 ? &tot_a : (c == 2 && !K->lpn ? &tot_m : gr[c] + j);
            solsa_neuron_chain(tr[c][j], q[c], u[c], &st, j, grad && !h ? acc : 0);
            if (h) { /* per upper neuron x (stage 0 through layer A), and the pairing */
                const float* dA = SOLSA_OFF(s, A->d);
                const float* deltaA = SOLSA_OFF(s, A->delta);
                const float* WA = SOLSA_PAR(A->W);
                float v = 0.0f;
                for (x = 0; x < A->n_out; ++x) h[x * nk + j] = dA[x] * h[x * nk + j] + q[c][0][j];
                if (!grad) continue;
                for (x = 0; x < A->n_out; ++x) v += deltaA[x] * WA[x * nk + j] * h[x * nk + j];
                *acc += v * SOLSA_PAR(A->beta)[A->fpc ? j : 0];
            }
        }
    }
    if (grad && tr[1] && !K->fpc) gr[1][0] += tot_a;
    if (grad && tr[2] && !K->lpn) gr[2][0] += tot_m;
}

static void solsa_traces(solsa_state* s, int grad) {
    int k;
    for (k = 0; k < SOLSA_N_LAYERS; ++k) solsa_layer_traces(s, k, grad);
}
#endif
