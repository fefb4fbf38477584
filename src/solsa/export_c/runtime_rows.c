/* ---- the SOLSA row loops (solsa/export_c/runtime_rows.c, appended after runtime_learn.c with --learn) --------
 *
 * The loops of the traces' pass (solsa_layer_traces, runtime_traces.c): the equations of a synapse's traces, the
 * loops over the entries of a row with every trace of a synapse updated while in registers, the loops over a
 * layer's rows, and the neuron-level stages and paired traces. Each entry's arithmetic, and so its rounding, is
 * that of the reference written trace by trace.
 */

#if SOLSA_LEARN
/* The equations of a synapse's traces, one entry each (docs/model.md §2, docs/credit.md) */

/* the trace: t = x + d t, or t = w x + d t for a (w != 0) */
static solsa_real solsa_trace_eq(const solsa_real* w, const solsa_real* x, long k, solsa_real d, solsa_real t) {
    return w ? w[k] * x[k] + d * t : x[k] + d * t;
}

/* a credit stage: q = al q + sc z (the filter of the layer above), then u = db u + q (its membrane) */
static solsa_real solsa_stage_q(solsa_real al, solsa_real q, solsa_real sc, solsa_real z) { return al * q + sc * z; }
static solsa_real solsa_stage_u(solsa_real db, solsa_real u, solsa_real q) { return db * u + q; }

/* one stage at entry k, in place: q[k] = al q[k] + sc z, then (has_u) u[k] = db u[k] + q[k]; returns u[k] (q[k]
 * without has_u) */
static inline solsa_real solsa_stage_at(solsa_real* q, solsa_real* u, long k, solsa_real al, solsa_real sc,
                                        solsa_real db, solsa_real z, int has_u) {
    solsa_real v = solsa_stage_q(al, q[k], sc, z);
    q[k] = v;
    if (has_u) {
        v = solsa_stage_u(db, u[k], v);
        u[k] = v;
    }
    return v;
}

/* AT(k) for k = 0, 1, ..., n - 1 (k, b: long variables of the caller): blocks of 8 entries, then one of 4, then the
 * rest one by one. Blocks of a fixed count become vector operations after unrolling, so that a row's last entries
 * (all 12 of an input layer's rows; 4 of a 100-input row) do not run one by one; each entry's arithmetic is AT's. */
#define SOLSA_FOR_ENTRIES(k, b, n, AT)                                                                                \
    do {                                                                                                               \
        for (k = 0; k + 8 <= (n); k += 8)                                                                              \
            for (b = 0; b < 8; ++b) AT(k + b);                                                                         \
        if (k + 4 <= (n)) {                                                                                            \
            for (b = 0; b < 4; ++b) AT(k + b);                                                                         \
            k += 4;                                                                                                    \
        }                                                                                                              \
        for (; k < (n); ++k) AT(k);                                                                                    \
    } while (0)

/* The row loops: every trace of a synapse updated in one iteration while in registers. Each loop is written
 * once with its options as arguments (has_w, has_u, has_g) and called with constants, so that after inlining
 * every version is a plain loop that compilers vectorise. */

/* over n entries: t = trace_eq (has_w: the a trace), its first stage q = al q + sc t, u = db u + q (without
 * has_u, u is q), and with has_g: g += cf u */
static inline void solsa_head_loop(solsa_real* restrict t, const solsa_real* restrict x, const solsa_real* restrict w,
                                   solsa_real d, solsa_real* restrict q, solsa_real* restrict u, solsa_real al,
                                   solsa_real sc, solsa_real db, solsa_real* restrict g, solsa_real cf, long n,
                                   int has_w, int has_u, int has_g) {
    long k, b;
#define SOLSA_HEAD_AT(k)                                                                                               \
    do {                                                                                                               \
        solsa_real v_ = solsa_trace_eq(has_w ? w : 0, x, k, d, t[k]);                                                  \
        t[k] = v_;                                                                                                     \
        v_ = solsa_stage_at(q, u, k, al, sc, db, v_, has_u);                                                           \
        if (has_g) g[k] += cf * v_;                                                                                    \
    } while (0)
    SOLSA_FOR_ENTRIES(k, b, n, SOLSA_HEAD_AT);
#undef SOLSA_HEAD_AT
}

static void solsa_head_row(solsa_real* t, const solsa_real* x, const solsa_real* w, solsa_real d, solsa_real* q,
                           solsa_real* u, solsa_real al, solsa_real sc, solsa_real db, solsa_real* g, solsa_real cf,
                           long n) {
    if (w && u && g) solsa_head_loop(t, x, w, d, q, u, al, sc, db, g, cf, n, 1, 1, 1);
    else if (w && u) solsa_head_loop(t, x, w, d, q, u, al, sc, db, g, cf, n, 1, 1, 0);
    else if (w && g) solsa_head_loop(t, x, w, d, q, u, al, sc, db, g, cf, n, 1, 0, 1);
    else if (w) solsa_head_loop(t, x, w, d, q, u, al, sc, db, g, cf, n, 1, 0, 0);
    else if (u && g) solsa_head_loop(t, x, w, d, q, u, al, sc, db, g, cf, n, 0, 1, 1);
    else if (u) solsa_head_loop(t, x, w, d, q, u, al, sc, db, g, cf, n, 0, 1, 0);
    else if (g) solsa_head_loop(t, x, w, d, q, u, al, sc, db, g, cf, n, 0, 0, 1);
    else solsa_head_loop(t, x, w, d, q, u, al, sc, db, g, cf, n, 0, 0, 0);
}

/* a further stage over n entries: q = al q + sc z; u = db u + q (without has_u, u is q); with has_g: g += cf u */
static inline void solsa_stage_loop(solsa_real* restrict q, solsa_real* restrict u, const solsa_real* restrict z,
                                    solsa_real al, solsa_real sc, solsa_real db, solsa_real* restrict g,
                                    solsa_real cf, long n, int has_u, int has_g) {
    long k, b;
#define SOLSA_STAGE_AT(k)                                                                                              \
    do {                                                                                                               \
        const solsa_real v_ = solsa_stage_at(q, u, k, al, sc, db, z[k], has_u);                                        \
        if (has_g) g[k] += cf * v_;                                                                                    \
    } while (0)
    SOLSA_FOR_ENTRIES(k, b, n, SOLSA_STAGE_AT);
#undef SOLSA_STAGE_AT
}

static void solsa_stage_row(solsa_real* q, solsa_real* u, const solsa_real* z, solsa_real al, solsa_real sc,
                            solsa_real db, solsa_real* g, solsa_real cf, long n) {
    if (u && g) solsa_stage_loop(q, u, z, al, sc, db, g, cf, n, 1, 1);
    else if (u) solsa_stage_loop(q, u, z, al, sc, db, g, cf, n, 1, 0);
    else if (g) solsa_stage_loop(q, u, z, al, sc, db, g, cf, n, 0, 1);
    else solsa_stage_loop(q, u, z, al, sc, db, g, cf, n, 0, 0);
}

/* every row j of the e trace with one credit stage and the gradient, the rows' loop inside (one dispatch per layer):
 * as solsa_head_loop with the row's al = al[j as], sc = eps_j, cf = P_j (as solsa_layer_traces sets them) */
static inline void solsa_head_rows_loop(solsa_real* t, const solsa_real* x, const solsa_real* d, solsa_real* q,
                                        solsa_real* u, const solsa_real* al, long as, const solsa_real* eps,
                                        solsa_real db, const solsa_real* P, solsa_real* g, long nk, long ni,
                                        int has_u) {
    long j, r;
    for (j = 0, r = 0; j < nk; ++j, r += ni)
        solsa_head_loop(t + r, x, 0, d[j], q + r, has_u ? u + r : 0, al[j * as], eps[j], db, g + r, P[j] - 0.0f, ni, 0,
                        has_u, 1);
}

static void solsa_head_rows(solsa_real* t, const solsa_real* x, const solsa_real* d, solsa_real* q, solsa_real* u,
                            const solsa_real* al, long as, const solsa_real* eps, solsa_real db, const solsa_real* P,
                            solsa_real* g, long nk, long ni) {
    if (u) solsa_head_rows_loop(t, x, d, q, u, al, as, eps, db, P, g, nk, ni, 1);
    else solsa_head_rows_loop(t, x, d, q, u, al, as, eps, db, P, g, nk, ni, 0);
}

/* the credit stages of one row: stage s filters with al (alpha of the layer above it, or their mean), sc
 * (eps of the row's neuron at stage 0, else 1) and db (the mean d of that layer); cf: the row's gradient
 * coefficient of stage s (without credit, cf[0] = delta) */
typedef struct {
    int depth;
    /* + 1: at least two, as solsa_head2_loop reads */
    solsa_real al[SOLSA_MAX_DEPTH + 1], sc[SOLSA_MAX_DEPTH + 1], db[SOLSA_MAX_DEPTH + 1], cf[SOLSA_MAX_DEPTH + 1];
} solsa_stages;

/* two stages in one pass over n entries, with the gradient: the trace t (as solsa_head_loop), stage 0 from it,
 * stage 1 from stage 0's u (without has_u0 / has_u1 a stage's u is its q); g += cf_0 u_0, then g += cf_1 u_1 */
static inline void solsa_head2_loop(solsa_real* restrict t, const solsa_real* restrict x,
                                    const solsa_real* restrict w, solsa_real d, solsa_real* restrict q0,
                                    solsa_real* restrict u0, solsa_real* restrict q1, solsa_real* restrict u1,
                                    const solsa_stages* st, solsa_real* restrict g, long n, int has_w, int has_u0,
                                    int has_u1) {
    const solsa_real al0 = st->al[0], sc0 = st->sc[0], db0 = st->db[0], cf0 = st->cf[0];
    const solsa_real al1 = st->al[1], sc1 = st->sc[1], db1 = st->db[1], cf1 = st->cf[1];
    long k = 0;
#if SOLSA_VECTOR_LANES
    /* SOLSA_LANES entries at a time, then 4, as vectors of the compilers' extension: each entry's arithmetic is that
     * of the plain version below (with the rows' loop around it, GCC 12 built that one's blocks of 4 from scalars) */
/* one credit stage of t_ at entry k in place: q = al q + sc t_, then (has_u) u = db u + q; t_ = u (or q) */
#define SOLSA_STAGE_VEC(T, q, u, al, sc, db, has_u, k)                                                                 \
    do {                                                                                                               \
        T z_;                                                                                                          \
        memcpy(&z_, q + (k), sizeof z_);                                                                               \
        t_ = al * z_ + sc * t_;                                                                                        \
        memcpy(q + (k), &t_, sizeof t_);                                                                               \
        if (has_u) {                                                                                                   \
            memcpy(&z_, u + (k), sizeof z_);                                                                           \
            t_ = db * z_ + t_;                                                                                         \
            memcpy(u + (k), &t_, sizeof t_);                                                                           \
        }                                                                                                              \
    } while (0)
#define SOLSA_HEAD2_VEC(T, k)                                                                                          \
    do {                                                                                                               \
        T t_, x_, w_, g_;                                                                                              \
        memcpy(&t_, t + (k), sizeof t_);                                                                               \
        memcpy(&x_, x + (k), sizeof x_);                                                                               \
        if (has_w) memcpy(&w_, w + (k), sizeof w_);                                                                    \
        t_ = has_w ? w_ * x_ + d * t_ : x_ + d * t_;                                                                   \
        memcpy(t + (k), &t_, sizeof t_);                                                                               \
        SOLSA_STAGE_VEC(T, q0, u0, al0, sc0, db0, has_u0, k);                                                          \
        memcpy(&g_, g + (k), sizeof g_);                                                                               \
        g_ = g_ + cf0 * t_;                                                                                            \
        SOLSA_STAGE_VEC(T, q1, u1, al1, sc1, db1, has_u1, k);                                                          \
        g_ = g_ + cf1 * t_;                                                                                            \
        memcpy(g + (k), &g_, sizeof g_);                                                                               \
    } while (0)
    for (; k + SOLSA_LANES <= n; k += SOLSA_LANES) SOLSA_HEAD2_VEC(solsa_lanes, k);
    for (; k + 4 <= n; k += 4) SOLSA_HEAD2_VEC(solsa_quad, k);
    for (; k < n; ++k) SOLSA_HEAD2_VEC(solsa_real, k);
#undef SOLSA_HEAD2_VEC
#undef SOLSA_STAGE_VEC
#else
    long b;
#define SOLSA_HEAD2_AT(k)                                                                                              \
    do {                                                                                                               \
        solsa_real v_ = solsa_trace_eq(has_w ? w : 0, x, k, d, t[k]), g_;                                              \
        t[k] = v_;                                                                                                     \
        v_ = solsa_stage_at(q0, u0, k, al0, sc0, db0, v_, has_u0);                                                     \
        g_ = g[k] + cf0 * v_;                                                                                          \
        v_ = solsa_stage_at(q1, u1, k, al1, sc1, db1, v_, has_u1);                                                     \
        g[k] = g_ + cf1 * v_;                                                                                          \
    } while (0)
    SOLSA_FOR_ENTRIES(k, b, n, SOLSA_HEAD2_AT);
#undef SOLSA_HEAD2_AT
#endif
}

static void solsa_head2_row(solsa_real* t, const solsa_real* x, const solsa_real* w, solsa_real d, solsa_real* q0,
                            solsa_real* u0, solsa_real* q1, solsa_real* u1, const solsa_stages* st, solsa_real* g,
                            long n) {
    if (w && u0 && u1) solsa_head2_loop(t, x, w, d, q0, u0, q1, u1, st, g, n, 1, 1, 1);
    else if (w && u0) solsa_head2_loop(t, x, w, d, q0, u0, q1, u1, st, g, n, 1, 1, 0);
    else if (w && u1) solsa_head2_loop(t, x, w, d, q0, u0, q1, u1, st, g, n, 1, 0, 1);
    else if (w) solsa_head2_loop(t, x, w, d, q0, u0, q1, u1, st, g, n, 1, 0, 0);
    else if (u0 && u1) solsa_head2_loop(t, x, w, d, q0, u0, q1, u1, st, g, n, 0, 1, 1);
    else if (u0) solsa_head2_loop(t, x, w, d, q0, u0, q1, u1, st, g, n, 0, 1, 0);
    else if (u1) solsa_head2_loop(t, x, w, d, q0, u0, q1, u1, st, g, n, 0, 0, 1);
    else solsa_head2_loop(t, x, w, d, q0, u0, q1, u1, st, g, n, 0, 0, 0);
}

#if SOLSA_MAX_DEPTH >= 2
/* every row j of one synapse trace with two credit stages and the gradient, the rows' loop inside: e (w = 0, the
 * gradient row g + j gs with gs = ni) or a (w = W, the shared gradient g, gs = 0), each row as solsa_head2_loop with
 * al_0 = al[j as], sc_0 = eps_j, cf_0 = P^0_j - P^1_j, cf_1 = P^1_j (as solsa_layer_traces sets them row by row) */
static inline void solsa_head2_rows_loop(solsa_real* t, const solsa_real* x, const solsa_real* w, const solsa_real* d,
                                         solsa_real* q0, solsa_real* u0, solsa_real* q1, solsa_real* u1,
                                         const solsa_real* al, long as, const solsa_real* eps, const solsa_real* P,
                                         const solsa_stages* st1, solsa_real* g, long gs, long nk, long ni, int has_w,
                                         int has_u0, int has_u1) {
    solsa_stages st = *st1;
    long j, r;
    for (j = 0, r = 0; j < nk; ++j, r += ni) {
        st.al[0] = al[j * as];
        st.sc[0] = eps[j];
        st.cf[0] = P[j] - P[nk + j];
        st.cf[1] = P[nk + j] - 0.0f;
        solsa_head2_loop(t + r, x, has_w ? w + r : 0, d[j], q0 + r, has_u0 ? u0 + r : 0, q1 + r, has_u1 ? u1 + r : 0,
                         &st, g + j * gs, ni, has_w, has_u0, has_u1);
    }
}

static void solsa_head2_rows(solsa_real* t, const solsa_real* x, const solsa_real* w, const solsa_real* d,
                             solsa_real* q0, solsa_real* u0, solsa_real* q1, solsa_real* u1, const solsa_real* al,
                             long as, const solsa_real* eps, const solsa_real* P, const solsa_stages* st,
                             solsa_real* g, long gs, long nk, long ni) {
    if (w && u0 && u1) solsa_head2_rows_loop(t, x, w, d, q0, u0, q1, u1, al, as, eps, P, st, g, gs, nk, ni, 1, 1, 1);
    else if (w && u0) solsa_head2_rows_loop(t, x, w, d, q0, u0, q1, u1, al, as, eps, P, st, g, gs, nk, ni, 1, 1, 0);
    else if (w && u1) solsa_head2_rows_loop(t, x, w, d, q0, u0, q1, u1, al, as, eps, P, st, g, gs, nk, ni, 1, 0, 1);
    else if (w) solsa_head2_rows_loop(t, x, w, d, q0, u0, q1, u1, al, as, eps, P, st, g, gs, nk, ni, 1, 0, 0);
    else if (u0 && u1) solsa_head2_rows_loop(t, x, w, d, q0, u0, q1, u1, al, as, eps, P, st, g, gs, nk, ni, 0, 1, 1);
    else if (u0) solsa_head2_rows_loop(t, x, w, d, q0, u0, q1, u1, al, as, eps, P, st, g, gs, nk, ni, 0, 1, 0);
    else if (u1) solsa_head2_rows_loop(t, x, w, d, q0, u0, q1, u1, al, as, eps, P, st, g, gs, nk, ni, 0, 0, 1);
    else solsa_head2_rows_loop(t, x, w, d, q0, u0, q1, u1, al, as, eps, P, st, g, gs, nk, ni, 0, 0, 0);
}
#endif

/* One synapse trace of row j (at offset r of its arrays, n entries: e, and a with per-channel filters): the
 * trace (x, w: as solsa_head_row), its credit stages (z_0 = t, z_s = u_{s-1}) and with g the gradient, in stage
 * order (the neuron traces a, m, n: solsa_neuron_stage). */
static inline void solsa_row_chain(solsa_real* t, const solsa_real* x, const solsa_real* w, solsa_real d,
                            solsa_real* const* q, solsa_real* const* u, const solsa_stages* st, solsa_real* g, long r,
                            long n) {
    const solsa_real* z;
    int m = 0;
    if (st->depth == 2 && g) { /* the trace, both stages and the gradient in one pass */
        solsa_head2_row(t + r, x, w, d, q[0] + r, u[0] != q[0] ? u[0] + r : 0, q[1] + r,
                        u[1] != q[1] ? u[1] + r : 0, st, g, n);
        return;
    }
    if (st->depth > 0) { /* the trace and its first stage in one pass */
        solsa_head_row(t + r, x, w, d, q[0] + r, u[0] != q[0] ? u[0] + r : 0, st->al[0], st->sc[0], st->db[0], g,
                       st->cf[0], n);
        m = 1;
    } else { /* no credit stage: the trace, then the gradient */
        long k;
        for (k = 0; k < n; ++k) t[r + k] = solsa_trace_eq(w, x, k, d, t[r + k]);
    }
    if (st->depth == 0 && g) solsa_axpy(g, t + r, st->cf[0], n);
    z = m == 0 ? t + r : u[0] + r;
    for (; m < st->depth; ++m) {
        solsa_stage_row(q[m] + r, u[m] != q[m] ? u[m] + r : 0, z, st->al[m], st->sc[m], st->db[m], g, st->cf[m], n);
        z = u[m] + r;
    }
}

/* a credit stage of a neuron trace across its n neurons: q_j = al_j q_j + sc_j z_j (al_j = al[j], or al0
 * without al; sc_j = sc[j], or 1 without sc), then u_j = db u_j + q_j (without u, u is q). The options are
 * constants in each call of the loop (has_al, has_sc, has_u), so that every version is a plain loop: with the
 * choices inside the loop, GCC 12 at -O3 built masked loads and blends that took ~2,000 cycles per 100 neurons. */
static inline void solsa_neuron_loop(solsa_real* restrict q, solsa_real* restrict u, const solsa_real* restrict z,
                                     const solsa_real* restrict al, solsa_real al0, const solsa_real* restrict sc,
                                     solsa_real db, long n, int has_al, int has_sc, int has_u) {
    long j;
    for (j = 0; j < n; ++j) {
        const solsa_real v = solsa_stage_q(has_al ? al[j] : al0, q[j], has_sc ? sc[j] : 1.0f, z[j]);
        q[j] = v;
        if (has_u) u[j] = solsa_stage_u(db, u[j], v);
    }
}

static void solsa_neuron_stage(solsa_real* q, solsa_real* u, const solsa_real* z, const solsa_real* al,
                               solsa_real al0, const solsa_real* sc, solsa_real db, long n) {
    if (al && sc && u) solsa_neuron_loop(q, u, z, al, al0, sc, db, n, 1, 1, 1);
    else if (al && sc) solsa_neuron_loop(q, u, z, al, al0, sc, db, n, 1, 1, 0);
    else if (al && u) solsa_neuron_loop(q, u, z, al, al0, sc, db, n, 1, 0, 1);
    else if (al) solsa_neuron_loop(q, u, z, al, al0, sc, db, n, 1, 0, 0);
    else if (sc && u) solsa_neuron_loop(q, u, z, al, al0, sc, db, n, 0, 1, 1);
    else if (sc) solsa_neuron_loop(q, u, z, al, al0, sc, db, n, 0, 1, 0);
    else if (u) solsa_neuron_loop(q, u, z, al, al0, sc, db, n, 0, 0, 1);
    else solsa_neuron_loop(q, u, z, al, al0, sc, db, n, 0, 0, 0);
}

/* one row of a paired trace: h_j = dh h_j + q_j and, with v, v_j += (dv w_j) h_j */
static inline void solsa_paired_loop(solsa_real* restrict h, const solsa_real* restrict q, solsa_real dh,
                                     solsa_real* restrict v, solsa_real dv, const solsa_real* restrict w, long n,
                                     int has_v) {
    long k, b;
#define SOLSA_PAIRED_AT(k)                                                                                             \
    do {                                                                                                               \
        const solsa_real h_ = dh * h[k] + q[k];                                                                        \
        h[k] = h_;                                                                                                     \
        if (has_v) v[k] += dv * w[k] * h_;                                                                             \
    } while (0)
    SOLSA_FOR_ENTRIES(k, b, n, SOLSA_PAIRED_AT);
#undef SOLSA_PAIRED_AT
}

static void solsa_paired_row(solsa_real* h, const solsa_real* q, solsa_real dh, solsa_real* v, solsa_real dv,
                             const solsa_real* w, long n) {
    if (v) solsa_paired_loop(h, q, dh, v, dv, w, n, 1);
    else solsa_paired_loop(h, q, dh, v, dv, w, n, 0);
}
#endif
