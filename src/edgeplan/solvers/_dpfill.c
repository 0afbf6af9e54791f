/* Native (C) back end of the banded DP fill and of the step replay, compiled ahead of time.

   A port of dp_numba.py (fill) and replay_numba.py (StepReplay of every step): same storage,
   same candidate order, the same float operations in the same order, the same tie rule, so the
   tables and the replayed peaks and costs are bit-identical to the reference kernel's
   (tests/test_dp_kernel.py, tests/test_optimal.py). The design notes (tile wavefront, the two
   phases of a tile, exact lower-bound pruning) are in dp_numba.py's docstring. One addition:
   where the visiting order decides every tie, the relaxation uses a cheaper test that stores
   only where it takes (UPDATE's modes; the 500-stage fill about 25% faster).

   Built when edgeplan is installed (hatch_build.py, via solvers/_native_build.py), loaded with
   ctypes by dp_native.py: no Python C API, so one library serves every Python version. Only
   additions and comparisons touch floats (no multiply: nothing for FMA contraction to fuse);
   it is compiled with -ffp-contract=off and without -ffast-math all the same.

   Types: the per-cell index is int32, run starts uint16, choices int16 (dp_kernel picks them
   for tables under 2^31 cells, 65535 slots and 32000 stages; dp_native refuses others). */

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef EDGEPLAN_DP_SOURCE_HASH
#define EDGEPLAN_DP_SOURCE_HASH "unknown"
#endif

#define LO 0
#define HV 1
#define OFF 2
#define ROFF 3
#define NRUN 4

typedef int32_t mi_t;   /* per-cell index */
typedef uint16_t rs_t;  /* run start */
typedef int16_t rc_t;   /* choice */

#define INF (__builtin_inf())

static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

const char *edgeplan_dp_source_hash(void) { return EDGEPLAN_DP_SOURCE_HASH; }

/* The x86-64 micro-architecture level this CPU runs (4: AVX-512, 3: AVX2 + FMA + BMI, 1: the
   baseline; 0 off x86-64). Called in the baseline build only, to pick the -march variant. */
int edgeplan_dp_cpu_level(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    const int v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                   __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
                   __builtin_cpu_supports("avx");
    const int v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                   __builtin_cpu_supports("avx512cd");
    return v4 ? 4 : v3 ? 3 : 1;
#else
    return 0;
#endif
}

typedef struct {
    int64_t B, L, M;
    const int64_t *x, *sv, *d, *f, *b;
    const double *tf, *tb, *TF;
    mi_t *meta, *metaT;     /* (L+2, L+2, 5) and its transpose */
    double *cend, *cendT;   /* (L+2, L+2): C(s, t, M) and its transpose */
    double *val;
    rs_t *rst;
    rc_t *rch;
} ctx_t;

#define META(c, s, t) ((c)->meta + ((int64_t)(s) * ((c)->L + 2) + (t)) * 5)
#define METAT(c, t, s) ((c)->metaT + ((int64_t)(t) * ((c)->L + 2) + (s)) * 5)
#define CEND(c, s, t) ((c)->cend[(int64_t)(s) * ((c)->L + 2) + (t)])
#define CENDT(c, t, s) ((c)->cendT[(int64_t)(t) * ((c)->L + 2) + (s)])

/* dp_numba._candidates: the feasible candidates of cell (s, t); ci[j*7 + 0..6] =
   (k, start, const_point, r_base, r_top, l_base, l_top), cf[j*2 + 0..1] = (bound, F). */
static int64_t candidates(const ctx_t *c, int64_t s, int64_t t, int64_t *ci, double *cf) {
    const int64_t *x = c->x, *sv = c->sv, *d = c->d, *f = c->f, *b = c->b;
    const int64_t M = c->M;
    int64_t n = 0;
    const int64_t dt = d[t];
    /* record stage s: C(s+1, t, m - s_s) + (tf_s + tb_s) */
    const int64_t thr = max64(dt + sv[s] + f[s], sv[s] + d[s] + d[s - 1] + b[s]);
    const mi_t *mr = METAT(c, t, s + 1);
    const int64_t a0 = max64(thr, (int64_t)mr[LO] + sv[s]);
    if (a0 <= M) {
        int64_t *r = ci + n * 7;
        r[0] = 0;
        r[1] = a0;
        r[2] = max64(thr, (int64_t)mr[HV] + sv[s]);
        r[3] = (int64_t)mr[OFF] - mr[LO] - sv[s];
        r[4] = (int64_t)mr[HV] + sv[s];
        r[5] = 0;
        r[6] = 0;
        cf[n * 2] = CENDT(c, t, s + 1) + (c->tf[s] + c->tb[s]);
        cf[n * 2 + 1] = c->tf[s] + c->tb[s];
        n++;
    }
    /* checkpoint a_{k-1}: (C(k, t, m - x_{k-1}) + C(s, k-1, m)) + (TF[k-1] - TF[s-1]);
       every Fn j (j = s..k-1) must fit: d_t + [j > s] x_{j-1} + x_j + f_j <= m */
    int64_t pm = x[s] + f[s];
    for (int64_t k = s + 1; k <= t; k++) {
        if (k - 1 > s) {
            const int64_t g = x[k - 2] + x[k - 1] + f[k - 1];
            if (g > pm) pm = g;
        }
        const int64_t xk = x[k - 1];
        mr = METAT(c, t, k);
        const mi_t *ml = META(c, s, k - 1);
        const int64_t a1 = max64(dt + pm, max64(ml[LO], (int64_t)mr[LO] + xk));
        if (a1 <= M) {
            int64_t *r = ci + n * 7;
            r[0] = k;
            r[1] = a1;
            r[2] = max64(a1, max64(ml[HV], (int64_t)mr[HV] + xk));
            r[3] = (int64_t)mr[OFF] - mr[LO] - xk;
            r[4] = (int64_t)mr[HV] + xk;
            r[5] = (int64_t)ml[OFF] - ml[LO];
            r[6] = ml[HV];
            const double F = c->TF[k - 1] - c->TF[s - 1];
            cf[n * 2] = (CENDT(c, t, k) + CEND(c, s, k - 1)) + F;
            cf[n * 2 + 1] = F;
            n++;
        }
    }
    return n;
}

/* One slot of a relaxation: keep v where it is strictly cheaper, or as cheap with a smaller k
   (the reference's tie rule; record is 0, -1 "nothing yet"). When the visiting order fixes
   the outcome of a tie, a cheaper test gives the same table:
   mode 1: every choice already in the cell has a smaller k (or is -1 at an infinite value):
           a tie keeps it, so only v < cur takes;
   mode 2: every choice already there has a larger k (or is -1): a tie takes, v <= cur;
   mode 0: mixed, the full rule. The cheaper tests store only where they take, so the choices
   are not read (masked stores when vectorised). */
#define UPDATE(tq, cq, i, v)                                                         \
    do {                                                                             \
        if (mode == 1) {                                                             \
            if ((v) < (tq)[i]) {                                                     \
                (tq)[i] = (v);                                                       \
                (cq)[i] = kk;                                                        \
            }                                                                        \
        } else if (mode == 2) {                                                      \
            if ((v) <= (tq)[i]) {                                                    \
                (tq)[i] = (v);                                                       \
                (cq)[i] = kk;                                                        \
            }                                                                        \
        } else {                                                                     \
            const double cur_ = (tq)[i];                                             \
            const rc_t cc_ = (cq)[i];                                                \
            const int take_ = ((v) < cur_) | (((v) == cur_) & (cc_ > kk));           \
            (tq)[i] = take_ ? (v) : cur_;                                            \
            (cq)[i] = take_ ? kk : cc_;                                              \
        }                                                                            \
    } while (0)

/* dp_numba._relax: relax one candidate on indices i0..i1 of the scratch tv/cb (offset o). R is
   src[r0 + i] up to i = iR and constant beyond; L (checkpoint only) src[l0 + i] up to iL.
   ``mode``: the tie test (UPDATE), a constant at every call, so each call site compiles its
   own loops. */
static inline __attribute__((always_inline)) void relax(
        const double *restrict src, double *restrict tv, rc_t *restrict cb, int64_t o,
        int64_t i0, int64_t i1, int64_t k, int64_t r0, int64_t iR, int64_t l0, int64_t iL,
        double F, const int mode) {
    const rc_t kk = (rc_t)k;
    if (k == 0) iL = i1 + 1; /* no left part */
    double *restrict tvp = tv + o;
    rc_t *restrict cbp = cb + o;
    /* segment 1: both parts read from their bands */
    const int64_t e1 = min64(i1, min64(iR, iL));
    if (e1 >= i0) {
        const double *restrict R = src + (r0 + i0);
        double *restrict tq = tvp + i0;
        rc_t *restrict cq = cbp + i0;
        const int64_t n = e1 - i0 + 1;
        if (k == 0) {
            for (int64_t i = 0; i < n; i++) {
                const double v = R[i] + F;
                UPDATE(tq, cq, i, v);
            }
        } else {
            const double *restrict Lp = src + (l0 + i0);
            for (int64_t i = 0; i < n; i++) {
                const double v = (R[i] + Lp[i]) + F;
                UPDATE(tq, cq, i, v);
            }
        }
    }
    if (i1 <= e1) return;
    /* segment 2 (checkpoint): one part constant (R + L == L + R exactly) */
    const int64_t s2 = max64(e1 + 1, i0);
    int64_t e2 = e1;
    if (k != 0) {
        e2 = min64(i1, max64(iR, iL));
        if (e2 >= s2) {
            int64_t o2;
            double cst;
            if (iR > iL) {
                o2 = r0;
                cst = src[l0 + iL];
            } else {
                o2 = l0;
                cst = src[r0 + iR];
            }
            const double *restrict A = src + (o2 + s2);
            double *restrict tq = tvp + s2;
            rc_t *restrict cq = cbp + s2;
            const int64_t n = e2 - s2 + 1;
            for (int64_t i = 0; i < n; i++) {
                const double v = (A[i] + cst) + F;
                UPDATE(tq, cq, i, v);
            }
        }
    }
    /* segment 3: constant */
    const int64_t s3 = max64(max64(e1, e2) + 1, i0);
    if (i1 >= s3) {
        double v;
        if (k == 0)
            v = src[r0 + iR] + F;
        else
            v = (src[r0 + iR] + src[l0 + iL]) + F;
        double *restrict tq = tvp + s3;
        rc_t *restrict cq = cbp + s3;
        const int64_t n = i1 - s3 + 1;
        for (int64_t i = 0; i < n; i++) UPDATE(tq, cq, i, v);
    }
}

/* dp_numba._prefix_end: the last i in [u, last] with tv[o + i] >= LB (tv[o + u] >= LB; the
   running minimum is non-increasing). */
static inline int64_t prefix_end(const double *tv, int64_t o, int64_t u, int64_t last, double LB) {
    if (tv[o + last] >= LB) return last;
    int64_t p = u, hi = last;
    while (p < hi) {
        const int64_t mid = (p + hi + 1) >> 1;
        if (tv[o + mid] >= LB)
            p = mid;
        else
            hi = mid - 1;
    }
    return p;
}

static void set_meta(const ctx_t *c, int64_t s, int64_t t, int64_t lo, int64_t hv, int64_t off,
                     int64_t roff, int64_t nrun, double ce) {
    mi_t *m = META(c, s, t), *mt = METAT(c, t, s);
    m[LO] = mt[LO] = (mi_t)lo;
    m[HV] = mt[HV] = (mi_t)hv;
    m[OFF] = mt[OFF] = (mi_t)off;
    m[ROFF] = mt[ROFF] = (mi_t)roff;
    m[NRUN] = mt[NRUN] = (mi_t)nrun;
    CEND(c, s, t) = ce;
    CENDT(c, t, s) = ce;
}

/* dp_numba._external: phase 1 of an off-diagonal tile, the checkpoints k in (s1, t0]. */
static void external(const ctx_t *c, int64_t s0, int64_t s1, int64_t t0, int64_t t1,
                     double *VB, rc_t *CB, int64_t *pm) {
    const int64_t *x = c->x, *d = c->d, *f = c->f;
    const int64_t B = c->B, M = c->M;
    for (int64_t s = s0; s <= s1; s++) {
        int64_t g = x[s] + f[s];
        for (int64_t j = s + 1; j <= s1; j++) g = max64(g, x[j - 1] + x[j] + f[j]);
        pm[s - s0] = g;
    }
    for (int64_t k = s1 + 1; k <= t0; k++) {
        const int64_t xk = x[k - 1];
        if (k - 1 > s1) {
            const int64_t gk = x[k - 2] + x[k - 1] + f[k - 1];
            for (int64_t s = s0; s <= s1; s++)
                if (gk > pm[s - s0]) pm[s - s0] = gk;
        }
        for (int64_t s = s0; s <= s1; s++) {
            const mi_t *ml = META(c, s, k - 1);
            if (ml[LO] > M) continue;
            const double F = c->TF[k - 1] - c->TF[s - 1];
            const double cl = CEND(c, s, k - 1);
            const int64_t l0 = (int64_t)ml[OFF] - ml[LO];
            const int64_t iL = ml[HV];
            for (int64_t t = t0; t <= t1; t++) {
                const mi_t *mr = METAT(c, t, k);
                const int64_t st = max64(d[t] + pm[s - s0], max64(ml[LO], (int64_t)mr[LO] + xk));
                if (st > M) continue;
                const double LB = (CENDT(c, t, k) + cl) + F;
                const int64_t cb_ = ((s - s0) * B + (t - t0)) * (M + 1);
                if (VB[cb_ + st] < LB) continue;
                const int64_t p = prefix_end(VB, cb_, st, M, LB);
                /* k ascends and the cells hold only smaller k so far: mode 1 */
                relax(c->val, VB, CB, cb_, st, p, k, (int64_t)mr[OFF] - mr[LO] - xk,
                      (int64_t)mr[HV] + xk, l0, iL, F, 1);
            }
        }
    }
}

/* dp_numba._cell: phase 2 for cell (s, t); returns the new ptr, rptr through pointers. */
static void cell(const ctx_t *c, int64_t s, int64_t t, int64_t *ptr, int64_t *rptr, double *VB,
                 rc_t *CB, int64_t cb_, int64_t klo, int64_t khi, int64_t *ci, double *cf) {
    const int64_t M = c->M;
    double *val = c->val;
    if (s == t) {
        const int64_t thr = c->d[s] + c->sv[s] + max64(c->f[s], c->d[s - 1] + c->b[s]);
        if (thr <= M) {
            val[*ptr] = c->tf[s] + c->tb[s];
            c->rst[*rptr] = 0;
            c->rch[*rptr] = 0;
            set_meta(c, s, t, thr, thr, *ptr, *rptr, 1, val[*ptr]);
            *ptr += 1;
            *rptr += 1;
            return;
        }
        set_meta(c, s, t, M + 1, M + 1, *ptr, *rptr, 0, INF);
        return;
    }
    const int64_t n = candidates(c, s, t, ci, cf);
    if (n == 0) {
        set_meta(c, s, t, M + 1, M + 1, *ptr, *rptr, 0, INF);
        return;
    }
    int64_t a = M + 1, e = 0;
    for (int64_t j = 0; j < n; j++) {
        a = min64(a, ci[j * 7 + 1]);
        e = max64(e, ci[j * 7 + 2]);
    }
    e = min64(e, M);
    for (int64_t j = 0; j < n; j++) {
        const int64_t *r = ci + j * 7;
        const int64_t k = r[0];
        if (klo < k && k <= khi) continue;
        const double LB = cf[j * 2];
        const int64_t u = r[1];
        if (VB[cb_ + u] < LB) continue;
        const int64_t p = prefix_end(VB, cb_, u, e, LB);
        /* the candidates come as record, then k ascending, around the external (klo, khi]
           done before: without them (klo = khi = 0) every earlier choice has a smaller k;
           with them, record meets only larger k, k <= klo both, k > khi only smaller */
        if (khi == 0 || k > khi)
            relax(val, VB, CB, cb_, u, p, k, r[3], r[4], r[5], r[6], cf[j * 2 + 1], 1);
        else if (k == 0)
            relax(val, VB, CB, cb_, u, p, k, r[3], r[4], r[5], r[6], cf[j * 2 + 1], 2);
        else
            relax(val, VB, CB, cb_, u, p, k, r[3], r[4], r[5], r[6], cf[j * 2 + 1], 0);
    }
    /* values: trim after the last change (constant beyond); choices: runs */
    const int64_t w = e - a + 1, o = cb_ + a, p0 = *ptr, r0 = *rptr;
    int64_t iv = 0, nr = 1;
    val[p0] = VB[o];
    c->rst[r0] = 0;
    c->rch[r0] = CB[o];
    for (int64_t i = 1; i < w; i++) {
        const double v = VB[o + i];
        val[p0 + i] = v;
        if (v != VB[o + i - 1]) iv = i;
        if (CB[o + i] != CB[o + i - 1]) {
            c->rst[r0 + nr] = (rs_t)i;
            c->rch[r0 + nr] = CB[o + i];
            nr++;
        }
    }
    set_meta(c, s, t, a, a + iv, p0, r0, nr, val[p0 + iv]);
    *ptr = p0 + iv + 1;
    *rptr = r0 + nr;
}

static void tile_range(int64_t I, int64_t J, int64_t B, int64_t L, int64_t *s0, int64_t *s1,
                       int64_t *t0, int64_t *t1) {
    *s0 = I * B + 1;
    *s1 = min64((I + 1) * B, L);
    *t0 = J * B + 1;
    *t1 = min64((J + 1) * B, L);
}

static int64_t tile_pairs(int64_t I, int64_t J, int64_t B, int64_t L) {
    int64_t s0, s1, t0, t1, n = 0;
    tile_range(I, J, B, L, &s0, &s1, &t0, &t1);
    for (int64_t t = t0; t <= t1; t++) n += max64(0, min64(s1, t) - s0 + 1);
    return n;
}

typedef struct {
    const ctx_t *c;
    int64_t dg, n, first, stride;
    const int64_t *base, *rbase;
    int failed;
} work_t;

/* The tiles first, first + stride, ... of diagonal dg (one thread). */
static void *run_tiles(void *arg) {
    work_t *w = (work_t *)arg;
    const ctx_t *c = w->c;
    const int64_t B = c->B, L = c->L, M = c->M, W = M + 1;
    int64_t *ci = malloc(sizeof(int64_t) * 7 * (size_t)(L + 1));
    double *cf = malloc(sizeof(double) * 2 * (size_t)(L + 1));
    double *VB = malloc(sizeof(double) * (size_t)(B * B * W));
    rc_t *CB = malloc(sizeof(rc_t) * (size_t)(B * B * W));
    int64_t *pm = malloc(sizeof(int64_t) * (size_t)B);
    if (!ci || !cf || !VB || !CB || !pm) {
        w->failed = 1;
        free(ci); free(cf); free(VB); free(CB); free(pm);
        return NULL;
    }
    for (int64_t i = w->first; i < w->n; i += w->stride) {
        int64_t s0, s1, t0, t1;
        tile_range(i, i + w->dg, B, L, &s0, &s1, &t0, &t1);
        for (int64_t s = s0; s <= s1; s++)
            for (int64_t t = max64(s, t0); t <= t1; t++) {
                const int64_t cb_ = ((s - s0) * B + (t - t0)) * W;
                for (int64_t m = 0; m < W; m++) {
                    VB[cb_ + m] = INF;
                    CB[cb_ + m] = -1;
                }
            }
        int64_t klo = 0, khi = 0;
        if (w->dg > 0) {
            klo = s1;
            khi = t0;
            external(c, s0, s1, t0, t1, VB, CB, pm);
        }
        int64_t ptr = w->base[i], rptr = w->rbase[i];
        for (int64_t s = s1; s >= s0; s--)
            for (int64_t t = max64(s, t0); t <= t1; t++) {
                const int64_t cb_ = ((s - s0) * B + (t - t0)) * W;
                cell(c, s, t, &ptr, &rptr, VB, CB, cb_, klo, khi, ci, cf);
            }
    }
    free(ci); free(cf); free(VB); free(CB); free(pm);
    return NULL;
}

/* dp_numba.fill_step: the tiles (I, I + dg) on nthreads threads, then packed. Returns 0, or -1
   when memory or a thread could not be had (the table is then unusable). out[0..1]: the new
   used sizes of val and of rst/rch. */
int edgeplan_fill_step(int64_t dg, int64_t B, int64_t L, int64_t M, const int64_t *x,
                       const int64_t *sv, const int64_t *d, const int64_t *f, const int64_t *b,
                       const double *tf, const double *tb, const double *TF, mi_t *meta,
                       mi_t *metaT, double *cend, double *cendT, double *val, rs_t *rst,
                       rc_t *rch, int64_t used, int64_t rused, int64_t nthreads, int64_t *out) {
    ctx_t c = {B, L, M, x, sv, d, f, b, tf, tb, TF, meta, metaT, cend, cendT, val, rst, rch};
    const int64_t nb = (L + B - 1) / B, n = nb - dg;
    int64_t *base = malloc(sizeof(int64_t) * (size_t)(2 * (n + 1)));
    if (!base) return -1;
    int64_t *rbase = base + n + 1;
    base[0] = used;
    for (int64_t i = 0; i < n; i++) base[i + 1] = base[i] + tile_pairs(i, i + dg, B, L) * (M + 1);
    for (int64_t i = 0; i <= n; i++) rbase[i] = base[i] - used + rused;
    if (nthreads < 1) nthreads = 1;
    if (nthreads > n) nthreads = n > 0 ? n : 1;
    work_t *ws = calloc((size_t)nthreads, sizeof(work_t));
    pthread_t *th = calloc((size_t)nthreads, sizeof(pthread_t));
    int *started = calloc((size_t)nthreads, sizeof(int));
    int rc = 0;
    if (!ws || !th || !started) {
        free(base); free(ws); free(th); free(started);
        return -1;
    }
    for (int64_t t = 0; t < nthreads; t++) {
        ws[t] = (work_t){&c, dg, n, t, nthreads, base, rbase, 0};
        if (t > 0) started[t] = pthread_create(&th[t], NULL, run_tiles, &ws[t]) == 0;
    }
    /* the calling thread takes share 0, and the share of any thread that did not start */
    run_tiles(&ws[0]);
    for (int64_t t = 1; t < nthreads; t++) {
        if (started[t])
            pthread_join(th[t], NULL);
        else
            run_tiles(&ws[t]);
    }
    for (int64_t t = 0; t < nthreads; t++) rc |= ws[t].failed;
    free(ws); free(th); free(started);
    if (rc) {
        free(base);
        return -1;
    }
    int64_t pos = used, rpos = rused;
    for (int64_t i = 0; i < n; i++) {
        int64_t s0, s1, t0, t1;
        tile_range(i, i + dg, B, L, &s0, &s1, &t0, &t1);
        for (int64_t s = s1; s >= s0; s--)
            for (int64_t t = max64(s, t0); t <= t1; t++) {
                mi_t *m = META(&c, s, t), *mt = METAT(&c, t, s);
                const int64_t src = m[OFF], rsrc = m[ROFF];
                m[OFF] = mt[OFF] = (mi_t)pos;
                m[ROFF] = mt[ROFF] = (mi_t)rpos;
                if (m[LO] <= M) {
                    const int64_t wv = (int64_t)m[HV] - m[LO] + 1;
                    if (src != pos) memmove(val + pos, val + src, sizeof(double) * (size_t)wv);
                    pos += wv;
                    const int64_t nr = m[NRUN];
                    if (rsrc != rpos) {
                        memmove(rst + rpos, rst + rsrc, sizeof(rs_t) * (size_t)nr);
                        memmove(rch + rpos, rch + rsrc, sizeof(rc_t) * (size_t)nr);
                    }
                    rpos += nr;
                }
            }
    }
    free(base);
    out[0] = pos;
    out[1] = rpos;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
   replay_numba.replay_steps: (peak above x_0, cost) of the schedule of C(1, L, m) for each m. */

static int64_t choice(const mi_t *meta, const rs_t *rst, const rc_t *rch, int64_t L, int64_t M,
                      int64_t s, int64_t t, int64_t m) {
    if (m > M) m = M;
    const mi_t *e = meta + (s * (L + 2) + t) * 5;
    const int64_t lo = e[LO];
    if (m < lo || lo > M) return -1;
    const int64_t key = m - lo;
    int64_t a = e[ROFF], hi = (int64_t)e[ROFF] + e[NRUN];
    while (a < hi) { /* bisect_right(rst, key, roff, roff + nrun) - 1 */
        const int64_t mid = (a + hi) / 2;
        if (key < rst[mid])
            hi = mid;
        else
            a = mid + 1;
    }
    return rch[a - 1];
}

typedef struct {
    int64_t *keys, *vals; /* open addressing, linear probing; -1: empty */
    int64_t cap;
} memo_t;

static int64_t find(const memo_t *h, int64_t key) {
    const int64_t mask = h->cap - 1;
    /* Fibonacci hashing, as replay_numba (unsigned: the product wraps) */
    int64_t i = (int64_t)(((uint64_t)key * 11400714819323198485ull) & (uint64_t)mask);
    while (h->keys[i] != -1 && h->keys[i] != key) i = (i + 1) & mask;
    return i;
}

static int64_t get(const memo_t *h, int64_t key) {
    const int64_t i = find(h, key);
    return h->keys[i] == key ? h->vals[i] : -1;
}

static int grow(memo_t *h) {
    memo_t g = {malloc(sizeof(int64_t) * (size_t)(2 * h->cap)),
                malloc(sizeof(int64_t) * (size_t)(2 * h->cap)), 2 * h->cap};
    if (!g.keys || !g.vals) {
        free(g.keys); free(g.vals);
        return -1;
    }
    for (int64_t i = 0; i < g.cap; i++) g.keys[i] = -1;
    for (int64_t i = 0; i < h->cap; i++)
        if (h->keys[i] != -1) {
            const int64_t j = find(&g, h->keys[i]);
            g.keys[j] = h->keys[i];
            g.vals[j] = h->vals[i];
        }
    free(h->keys); free(h->vals);
    *h = g;
    return 0;
}

/* Returns 0, or -1 when out of memory. ok[i] = 0 where a choice on the way is infeasible. */
int edgeplan_replay_steps(const int64_t *ms, int64_t n, int64_t L, int64_t M, const mi_t *meta,
                          const rs_t *rst, const rc_t *rch, const int64_t *slot_s,
                          const int64_t *slot_x, const int64_t *x, const int64_t *sv,
                          const int64_t *f, const int64_t *b, const int64_t *d, const double *tf,
                          const double *tb, int64_t *peaks, double *costs, uint8_t *ok) {
    const int64_t W = M + 1;
    memo_t h = {malloc(sizeof(int64_t) * 4096), malloc(sizeof(int64_t) * 4096), 4096};
    int64_t mcap = 1024, used = 0;
    int64_t *mp = malloc(sizeof(int64_t) * (size_t)mcap);
    double *mc = malloc(sizeof(double) * (size_t)mcap);
    /* every child is a strictly shorter sub-chain and a cell pushes at most two */
    int64_t *st = malloc(sizeof(int64_t) * 3 * (size_t)(2 * L + 4));
    int rc = 0;
    if (!h.keys || !h.vals || !mp || !mc || !st) {
        rc = -1;
        goto done;
    }
    for (int64_t i = 0; i < h.cap; i++) h.keys[i] = -1;
    for (int64_t i = 0; i < n; i++) {
        peaks[i] = 0;
        costs[i] = 0.0;
        ok[i] = 1;
        const int64_t root_m = min64(ms[i], M);
        st[0] = 1; st[1] = L; st[2] = root_m;
        int64_t top = 1;
        int bad = 0;
        while (top > 0) {
            const int64_t s = st[3 * (top - 1)], t = st[3 * (top - 1) + 1], mm = st[3 * (top - 1) + 2];
            const int64_t key = (s * (L + 2) + t) * W + mm;
            if (get(&h, key) >= 0) {
                top--;
                continue;
            }
            const int64_t c = choice(meta, rst, rch, L, M, s, t, mm);
            if (c < 0) {
                bad = 1;
                break;
            }
            int64_t k1s = -1, k1t = -1, k1m = -1, k2s = -1, k2t = -1, k2m = -1, nk = 0;
            if (s != t) {
                if (c == 0) {
                    k1s = s + 1; k1t = t; k1m = min64(mm - slot_s[s], M);
                    nk = 1;
                } else {
                    k1s = c; k1t = t; k1m = min64(mm - slot_x[c - 1], M);
                    k2s = s; k2t = c - 1; k2m = min64(mm, M);
                    nk = 2;
                }
            }
            int pending = 0;
            if (nk >= 1 && get(&h, (k1s * (L + 2) + k1t) * W + k1m) < 0) {
                pending = 1;
                st[3 * top] = k1s; st[3 * top + 1] = k1t; st[3 * top + 2] = k1m;
                top++;
            }
            if (nk == 2 && get(&h, (k2s * (L + 2) + k2t) * W + k2m) < 0) {
                pending = 1;
                st[3 * top] = k2s; st[3 * top + 1] = k2t; st[3 * top + 2] = k2m;
                top++;
            }
            if (pending) continue;
            top--;
            /* the cell, as StepReplay._cell (same integer and float operations, same order) */
            int64_t peak;
            double cost;
            if (s == t) {
                peak = max64(sv[s] + f[s], sv[s] + d[s - 1] + b[s]);
                cost = tf[s] + tb[s];
            } else if (c == 0) {
                const int64_t j1 = get(&h, (k1s * (L + 2) + k1t) * W + k1m);
                const int64_t pc = mp[j1];
                const double tc = mc[j1];
                peak = max64(max64(sv[s] + f[s], sv[s] + pc), sv[s] - d[t] + d[s] + d[s - 1] + b[s]);
                cost = tf[s] + tc + tb[s];
            } else {
                const int64_t j1 = get(&h, (k1s * (L + 2) + k1t) * W + k1m);
                const int64_t j2 = get(&h, (k2s * (L + 2) + k2t) * W + k2m);
                const int64_t pr = mp[j1], pl = mp[j2];
                const double tr = mc[j1], tl = mc[j2];
                int64_t sweep = x[s] + f[s];
                for (int64_t j = s + 1; j < c; j++) sweep = max64(sweep, x[j - 1] + x[j] + f[j]);
                peak = max64(max64(sweep, x[c - 1] + pr), d[c - 1] - d[t] + pl);
                double acc = 0.0;
                for (int64_t j = s; j < c; j++) acc += tf[j];
                cost = acc + tr + tl;
            }
            if (used >= mcap) {
                int64_t *np_ = realloc(mp, sizeof(int64_t) * (size_t)(2 * mcap));
                if (!np_) { rc = -1; goto done; }
                mp = np_;
                double *nc = realloc(mc, sizeof(double) * (size_t)(2 * mcap));
                if (!nc) { rc = -1; goto done; }
                mc = nc;
                mcap *= 2;
            }
            mp[used] = peak;
            mc[used] = cost;
            if (2 * (used + 1) > h.cap && grow(&h) != 0) {
                rc = -1;
                goto done;
            }
            const int64_t hi = find(&h, key);
            h.keys[hi] = key;
            h.vals[hi] = used;
            used++;
        }
        if (bad) {
            ok[i] = 0;
            continue;
        }
        const int64_t j = get(&h, (1 * (L + 2) + L) * W + root_m);
        peaks[i] = mp[j];
        costs[i] = mc[j];
    }
done:
    free(h.keys); free(h.vals); free(mp); free(mc); free(st);
    return rc;
}
