// ALIF and recurrent layers in the fused SOLSA kernel: included by kernel.cpp (before credit.h).
//
// A layer with LayerDesc::alif set runs here instead of forward_layer (docs/memory.md §1-§2); the arithmetic
// is that of SOLSA._forward_layer (solsa/rules/solsa.py) with solsa/functional/neuron.py and traces.py, up to
// the order of floating-point summations; tests/test_fused_alif.py holds the two equal in float64.
//
//   recurrent:  I[t] = F[t] W^T + b + o[t-1] W_rec^T;  the W and W_rec traces are one e over [F[t], o[t-1]]
//               (rows of pre_width = n_in + n_out), d gains the own-spike path W_rec,jj eps[t-1]
//   ALIF:       b[t] = rho b[t-1] + o[t-1],  o[t] = H(V[t] - theta - beta_a b[t]); each trace z (of V - A)
//               has a partner w:  z[t] = pre + (d - beta_a eps[t-1]) z[t-1] + beta_a (d° - rho) w[t-1],
//               w[t] = eps[t-1] z[t-1] + rho w[t-1]   (d°: d without the paths through o[t-1])
//
// The weight gradient of such a layer is accumulated in backward (no deferral to the next step: settle skips
// it). W_rec is read from Plan::params[5 n_layers + l]; its gradient is flushed by solsa/fast/alif.py.
// ALIF partners are kept in T: a narrow trace storage with ALIF is refused in Python (solsa/fast/alif.py).
#pragma once

struct AlifDesc {
    int64_t adaptive;           // 1: ALIF
    int64_t recurrent;          // 1: W_rec [n_out, n_out]
    double adapt, rho;          // beta_a, rho (ALIF)
    void* b;                    // adaptation [B, n_out] (ALIF)
    void *we, *wa, *wm, *wn;    // ALIF partners of e, a, m, n (null where the trace is absent)
    void* gWrec;                // accumulator [n_out, n_out] (null: W_rec not learned)
    void *k, *h;                // scratch [B, n_out]: beta_a (d° - rho), V - A
    void* wrow;                 // scratch [n_out, pre_width]: one step's weight gradient rows
};

// the width of a row of e: n_in, or n_in + n_out for a recurrent layer ([F[t], o[t-1]])
static inline int64_t pre_width(const LayerDesc& L) {
    return L.n_in + (L.alif && L.alif->recurrent ? L.n_out : 0);
}

template <typename T>
static inline const T* rec_weight(const Plan* plan, int64_t l) {
    const LayerDesc& L = plan->layers[l];
    return L.alif && L.alif->recurrent ? (const T*)plan->params[5 * plan->n_layers + l] : nullptr;
}

// cur += o[t-1] W_rec^T (the order forward and predict share)
template <typename T>
static void add_recurrent(const T* Wrec, const T* o, T* cur, int64_t B, int64_t no) {
    if (!Wrec) return;
    for (int64_t b = 0; b < B; ++b) {
        const T* ob = o + b * no;
        for (int64_t j = 0; j < no; ++j) {
            const T* Wj = Wrec + j * no;
            T s = 0;
            for (int64_t k = 0; k < no; ++k) s += ob[k] * Wj[k];
            cur[b * no + j] += s;
        }
    }
}

// the firing threshold A = theta + beta_a b[t], b[t] = rho b[t-1] + o[t-1] (theta for a LIF layer)
template <typename T>
static inline T alif_threshold(const AlifDesc& A, T th, T b_prev, T o_prev, T* b_new) {
    if (!A.adaptive) return th;
    const T bn = (T)A.rho * b_prev + o_prev;
    *b_new = bn;
    return th + (T)A.adapt * bn;
}

// predict_layer for such a layer: the next step's F, V, o from the current state, nothing written
template <typename T>
static void alif_predict_layer(const Plan* plan, int64_t l, const T* x, T* Fn, T* Vn, T* on) {
    const LayerDesc& L = plan->layers[l];
    const AlifDesc& A = *L.alif;
    void* const* P = plan->params + 5 * l;
    const int64_t B = plan->batch, no = L.n_out;
    const T* V = (const T*)L.V; const T* o = (const T*)L.o; const T* bs = (const T*)A.b;
    filter_and_current<T>(L, P, B, x, (const T*)L.F, Fn, Vn);
    add_recurrent<T>(rec_weight<T>(plan, l), o, Vn, B, no);
    const T* lam = (const T*)P[4];
    const T th = (T)L.threshold, ra = (T)L.reset_amount;
    for (int64_t bj = 0; bj < B * no; ++bj) {
        const T v = membrane<T>(L.reset, L.lam_per_neuron ? lam[bj % no] : lam[0], V[bj], o[bj], Vn[bj], ra);
        T bn = 0;
        const T thr = alif_threshold<T>(A, th, bs ? bs[bj] : T(0), o[bj], &bn);
        Vn[bj] = v;
        on[bj] = v - thr > T(0) ? T(1) : T(0);
    }
}

// z[t] = pre + d z[t-1] (+ k w[t-1], w[t] = eps z[t-1] + rho w[t-1] with a partner w) over n entries; z in S
template <typename T, typename S>
static inline void couple_row(S* z, T* w, const T* pre, const T* scale, int64_t n, T d, T k, T ep, T rho) {
    if (!w) {
        update_row<T, S>(z, n, [&](int64_t k0, int64_t m, T* v) {
            #pragma omp simd
            for (int64_t i = 0; i < m; ++i) v[i] = (scale ? scale[k0 + i] * pre[k0 + i] : pre[k0 + i]) + d * v[i];
        });
        return;
    }
    #pragma omp simd
    for (int64_t i = 0; i < n; ++i) {  // ALIF: S is T (alif.py)
        const T zp = load<T>(z[i]), wp = w[i];
        const T zn = (scale ? scale[i] * pre[i] : pre[i]) + d * zp;
        z[i] = store<S>(zn + k * wp);
        w[i] = rho * wp + ep * zp;
    }
}

template <typename T>
static inline void couple_one(T* z, T* w, T pre, T d, T k, T ep, T rho, int64_t bj) {
    const T zp = z[bj];
    z[bj] = pre + d * zp;
    if (w) { z[bj] += k * w[bj]; w[bj] = rho * w[bj] + ep * zp; }
}

// forward_layer for such a layer (docs/memory.md §1-§2); writes L.d = the decay of the traces (for credit.h)
template <typename T, typename S>
static void alif_forward_layer(const Plan* plan, int64_t l, const T* x, bool rf) {
    const LayerDesc& L = plan->layers[l];
    const AlifDesc& A = *L.alif;
    void* const* P = plan->params + 5 * l;
    const int64_t B = plan->batch, ni = L.n_in, no = L.n_out, np = pre_width(L);
    const T* W = (const T*)P[0];
    const T* alpha = (const T*)P[2];
    const T* lam = (const T*)P[4];
    const T* Wrec = rec_weight<T>(plan, l);
    T* F = (T*)L.F; T* V = (T*)L.V; T* o = (T*)L.o; T* eps = (T*)L.eps; T* bs = (T*)A.b;
    S* e = (S*)L.e; T* p = (T*)L.p; T* a = (T*)L.a; T* m = (T*)L.m; T* n = (T*)L.n;
    T* we = (T*)A.we; T* wa = (T*)A.wa; T* wm = (T*)A.wm; T* wn = (T*)A.wn;
    T* cur = (T*)L.cur; T* wp = (T*)L.wp; T* dd = (T*)L.d; T* kk = (T*)A.k; T* h = (T*)A.h;
    const bool fpc = L.filter_per_channel != 0, lpn = L.lam_per_neuron != 0;
    const T th = (T)L.threshold, ra = (T)L.reset_amount, ad = (T)A.adapt, rho = (T)A.rho;
    const int64_t reset = L.reset;

    if (p)
        for (int64_t b = 0; b < B; ++b)
            for (int64_t i = 0; i < ni; ++i) p[b * ni + i] = F[b * ni + i] + (fpc ? alpha[i] : alpha[0]) * p[b * ni + i];
    filter_and_current<T>(L, P, B, x, F, F, cur);
    add_recurrent<T>(Wrec, o, cur, B, no);
    if (a && !fpc)  // W p for one alpha per layer
        for (int64_t b = 0; b < B; ++b)
            for (int64_t j = 0; j < no; ++j) {
                T s = 0;
                for (int64_t i = 0; i < ni; ++i) s += p[b * ni + i] * W[j * ni + i];
                wp[b * no + j] = s;
            }
    // d (decay_factor, the own spike included), d° and, for ALIF, the coupling k and d - beta_a eps
    for (int64_t bj = 0; bj < B * no; ++bj) {
        const T lj = lpn ? lam[bj % no] : lam[0], ep = eps[bj];
        T d0 = lj, d = lj;
        if (reset == 0) d = rf ? lj - ra * ep : lj;
        else if (reset == 1) { d0 = lj * (T(1) - o[bj]); d = rf ? d0 - lj * V[bj] * ep : d0; }
        if (Wrec) d = d + Wrec[(bj % no) * no + bj % no] * ep;
        if (A.adaptive) { kk[bj] = ad * (d0 - rho); d = d - ad * ep; }
        dd[bj] = d;
    }
    auto update_neuron = [&](int64_t j) {
        for (int64_t b = 0; b < B; ++b) {
            const int64_t bj = b * no + j;
            const T d = dd[bj], k = A.adaptive ? kk[bj] : T(0), ep = eps[bj];
            S* ej = e + bj * np;
            T* wj = we ? we + bj * np : nullptr;
            couple_row<T, S>(ej, wj, F + b * ni, nullptr, ni, d, k, ep, rho);
            if (Wrec) couple_row<T, S>(ej + ni, wj ? wj + ni : nullptr, o + b * no, nullptr, no, d, k, ep, rho);
            if (a && fpc)
                couple_row<T, S>((S*)L.a + bj * ni, wa ? wa + bj * ni : nullptr, p + b * ni, W + j * ni, ni, d, k, ep,
                                 rho);
        }
    };
    for_each_neuron(no, B * no * np, plan->par_min, update_neuron);
    // the [B, n_out] traces, then the membrane, the adaptation and the spike
    for (int64_t bj = 0; bj < B * no; ++bj) {
        const T lj = lpn ? lam[bj % no] : lam[0];
        const T d = dd[bj], k = A.adaptive ? kk[bj] : T(0), ep = eps[bj], Vp = V[bj], op = o[bj];
        if (a && !fpc) couple_one<T>(a, wa, wp[bj], d, k, ep, rho, bj);
        if (m) couple_one<T>(m, wm, reset == 1 ? Vp * (T(1) - op) : Vp, d, k, ep, rho, bj);
        if (n) couple_one<T>(n, wn, T(1), d, k, ep, rho, bj);
        const T v = membrane<T>(reset, lj, Vp, op, cur[bj], ra);
        T bn = 0;
        const T thr = alif_threshold<T>(A, th, bs ? bs[bj] : T(0), op, &bn);
        if (bs) bs[bj] = bn;
        V[bj] = v;
        h[bj] = v - thr;
        o[bj] = h[bj] > T(0) ? T(1) : T(0);
    }
    surrogate_row<T>(h, eps, B * no, T(0), L.surrogate, (T)L.width);
}

// s [pre_width] (one step's gradient of row j over [F, o[t-1]]) into gW row j and gW_rec row j;
// returns sum |s| over the W part when `track`
template <typename T>
static double add_pre_row(const LayerDesc& L, int64_t j, const T* s, bool track) {
    const int64_t ni = L.n_in, no = L.n_out;
    T* gWj = (T*)L.gW + j * ni;
    double mag = 0.0;
    for (int64_t i = 0; i < ni; ++i) gWj[i] += s[i];
    if (track)
        for (int64_t i = 0; i < ni; ++i) mag += std::fabs((double)s[i]);
    if (pre_width(L) != ni && L.alif->gWrec) {
        T* gRj = (T*)L.alif->gWrec + j * no;
        for (int64_t i = 0; i < no; ++i) gRj[i] += s[ni + i];
    }
    return mag;
}

// One step's weight gradient sum_b delta e of a layer without credit stages, added to gW (and gW_rec): every
// step for a layer of this file, at a step whose magnitude is wanted for the others (backward_layer).
// Returns sum |dl_t/dW| when `track`.
template <typename T, typename S>
static double step_weight_grad(const Plan* plan, int64_t l, bool track) {
    const LayerDesc& L = plan->layers[l];
    const int64_t B = plan->batch, no = L.n_out, np = pre_width(L);
    const S* e = (const S*)L.e;
    const T* delta = (const T*)L.delta;
    T* rows = L.alif ? (T*)L.alif->wrow : (T*)L.wtmp;
    auto grad_row = [&](int64_t j) -> double {
        T* s = rows + j * np;
        for (int64_t i = 0; i < np; ++i) s[i] = 0;
        for (int64_t b = 0; b < B; ++b) {
            const T dj = delta[b * no + j];
            if (dj == T(0)) continue;
            read_row<T, S>(e + (b * no + j) * np, np, [&](int64_t k0, int64_t m, const T* v) {
                T* sk = s + k0;
                #pragma omp simd
                for (int64_t i = 0; i < m; ++i) sk[i] += dj * v[i];
            });
        }
        return add_pre_row<T>(L, j, s, track);
    };
    double mag = 0.0;
    if (n_threads(B * no * np, plan->par_min) > 1) {
        #pragma omp parallel num_threads(n_threads(B * no * np, plan->par_min))
        {
            FlushDenormals ftz;
            #pragma omp for schedule(static) reduction(+:mag)
            for (int64_t j = 0; j < no; ++j) mag += grad_row(j);
        }
    } else {
        for (int64_t j = 0; j < no; ++j) mag += grad_row(j);
    }
    return mag;
}

// zero the adaptation state and partners (a new sequence)
template <typename T>
static void alif_zero(const LayerDesc& L, int64_t B) {
    if (!L.alif) return;
    const AlifDesc& A = *L.alif;
    const int64_t no = L.n_out, bn = (int64_t)sizeof(T) * B * no;
    void* ptrs[5] = {A.b, A.we, A.wa, A.wm, A.wn};
    const int64_t bytes[5] = {bn, bn * pre_width(L), L.filter_per_channel ? bn * L.n_in : bn, bn, bn};
    for (int k = 0; k < 5; ++k)
        if (ptrs[k]) std::memset(ptrs[k], 0, bytes[k]);
}
