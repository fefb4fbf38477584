/* ---- the SOLSA traces (solsa/export_c/runtime_traces.c, appended after runtime_rows.c with --learn) ----------
 *
 * solsa_traces: every synapse trace of a layer and the gradient from it in one pass over the layer, one row
 * (neuron j) at a time and, within a row, one block of SOLSA_LANES synapses at a time with all of a synapse's
 * traces in registers: e, a (docs/model.md §2), their credit stages q, u (docs/credit.md: the stage s filter
 * runs through layer k + s + 1) and the accumulated gradient (sum_s (P^s - P^{s+1}) u^s, or delta e without
 * credit); then the credit stages of the neuron traces (a with one alpha per layer, m, n), each across the
 * neurons. Each entry's arithmetic, and so its rounding, is that of the reference written trace by trace; the
 * neuron-level parts (d, p, m, n, a with one alpha per layer, eps, the credit's masses and lagged surrogate, the
 * errors) are computed before (solsa_forward, solsa_learn_step).
 */

#if SOLSA_LEARN
/* Layer k's traces for one step, row by row (with grad, the gradient of every learned parameter from them).
 * A neuron trace that pairs with the layer above neuron by neuron (h, neuron_membrane_credit of rules/credit.py)
 * is filtered per upper neuron x instead: h[x, j] = d_x h[x, j] + q_j, and its gradient is
 * beta^A_j sum_x delta^A_x W^A_xj h[x, j] (neuron_credit_pairing). */
SOLSA_NOINLINE static void solsa_layer_traces(solsa_state* s, int k, int grad) {
    const solsa_layer_desc* K = &SOLSA_LAYERS[k];
    const solsa_layer_desc* A = &SOLSA_LAYERS[k + 1 < SOLSA_N_LAYERS ? k + 1 : k];
    const solsa_real* W = SOLSA_PAR(K->W);
    const solsa_real *F = SOLSA_OFF(s, K->F), *p = SOLSA_OFF(s, K->p), *d = SOLSA_OFF(s, K->d);
    const solsa_real *eps = SOLSA_OFF(s, K->eps), *delta = SOLSA_OFF(s, K->delta), *P = SOLSA_OFF(s, K->P);
    solsa_real* tr[4];
    solsa_real* gr[4];
    solsa_real *q[4][SOLSA_MAX_DEPTH], *u[4][SOLSA_MAX_DEPTH];
    solsa_real amean[SOLSA_MAX_DEPTH] = {0.0f}, dbar[SOLSA_MAX_DEPTH] = {0.0f};
    solsa_real tot_a = 0.0f, tot_m = 0.0f;
    const long nk = K->n_out, ni = K->n_in, D = K->depth;
    solsa_stages st = {0, {0.0f}, {0.0f}, {0.0f}, {0.0f}};
    long j, x, m;
    int c, rows;
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
    rows = grad && ((D == 1 && !(tr[1] && K->fpc)) || D == 2); /* the rows' loops in one call per trace */
    if (rows && D == 1) /* the e trace alone, one stage */
        solsa_head_rows(tr[0], F, d, q[0][0], u[0][0] != q[0][0] ? u[0][0] : 0, SOLSA_PAR(A->alpha), A->fpc ? 1 : 0,
                        eps, dbar[0], P, gr[0], nk, ni);
#if SOLSA_MAX_DEPTH >= 2
    if (rows && D == 2) { /* e, and a with per-channel filters, two stages */
        st.al[1] = amean[1];
        st.sc[1] = 1.0f;
        st.db[0] = dbar[0];
        st.db[1] = dbar[1];
        for (c = 0; c < 2; ++c)
            if (c == 0 || (tr[1] && K->fpc))
                solsa_head2_rows(tr[c], c ? p : F, c ? W : 0, d, q[c][0], u[c][0] != q[c][0] ? u[c][0] : 0, q[c][1],
                                 u[c][1] != q[c][1] ? u[c][1] : 0, SOLSA_PAR(A->alpha), A->fpc ? 1 : 0, eps, P, &st,
                                 gr[c], c ? 0 : ni, nk, ni);
    }
#endif
    for (j = 0; j < nk && !rows; ++j) {
        const solsa_real* alA = SOLSA_PAR(A->alpha);
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
        } /* with one alpha per layer, a_j is up to date (solsa_forward_layer) */
    }
    for (c = 1; c < 4; ++c) { /* the neuron traces (a with one alpha per layer, m, n): each stage across the rows */
        const solsa_real* z = tr[c];
        if (!tr[c] || (c == 1 && K->fpc)) continue;
        for (m = 0; m < D && m < SOLSA_MAX_DEPTH; ++m) {
            solsa_neuron_stage(q[c][m], u[c][m] != q[c][m] ? u[c][m] : 0, z, m == 0 && A->fpc ? SOLSA_PAR(A->alpha) : 0,
                               m == 0 ? SOLSA_PAR(A->alpha)[0] : amean[m], m == 0 ? eps : 0, dbar[m], nk);
            z = u[c][m];
        }
        if (!grad || K->h[c] >= 0) continue; /* paired traces: their gradient below */
        for (j = 0; j < nk; ++j) { /* row by row, stage by stage, as the row pass would */
            solsa_real* acc = c == 1 ? &tot_a : (c == 2 && !K->lpn ? &tot_m : gr[c] + j);
            if (D == 0) *acc += delta[j] * tr[c][j];
            for (m = 0; m < D && m < SOLSA_MAX_DEPTH; ++m)
                *acc += (P[m * nk + j] - (m + 1 < D ? P[(m + 1) * nk + j] : 0.0f)) * u[c][m][j];
        }
    }
    for (c = 1; c < 4; ++c) { /* the traces paired per upper neuron x, row x of h at a time */
        solsa_real* h = SOLSA_OFF(s, K->h[c]);
        solsa_real* v = SOLSA_OFF(s, SOLSA_SCRATCH); /* free: the errors were sent down before */
        const solsa_real* dA = SOLSA_OFF(s, A->d);
        const solsa_real* deltaA = SOLSA_OFF(s, A->delta);
        const solsa_real* WA = SOLSA_PAR(A->W);
        if (!h || !tr[c]) continue;
        if (grad) for (j = 0; j < nk; ++j) v[j] = 0.0f;
        for (x = 0; x < A->n_out; ++x) /* row x of h, and with grad its term of v, in one pass */
            solsa_paired_row(h + x * nk, q[c][0], dA[x], grad ? v : 0, deltaA[x], WA + x * nk, nk);
        if (!grad) continue;
        for (j = 0; j < nk; ++j) {
            solsa_real* acc = c == 1 ? &tot_a : (c == 2 && !K->lpn ? &tot_m : gr[c] + j);
            *acc += v[j] * SOLSA_PAR(A->beta)[A->fpc ? j : 0];
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
