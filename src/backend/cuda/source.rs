//! The CUDA C source of the backend's kernels, compiled at run time by NVRTC.
//!
//! The source is assembled from three pieces, each a plain C text that also compiles as
//! host C (the `#ifdef __CUDACC__` guards choose the qualifiers), so that a host C
//! compiler can check the arithmetic against the Rust code without a GPU
//! (`tests/backend_cuda.rs` compiles [`PHILOX_C`] and [`exp_c`] with `cc`):
//!
//! * [`PHILOX_C`]: Philox-4x32-10, `RngKey::for_stream` and the first uniform of a
//!   `CounterRng` — the same functions as [`crate::rng::philox`], word for word;
//! * [`exp_c`]: [`exp_nonpositive`](crate::backend::cpu::exp::exp_nonpositive), with the
//!   constants written as the exact `f32` bit patterns of the Rust constants;
//! * [`KERNEL_C`]: the row-summary kernel (see [`super`] for the algorithm).
//!
//! No header is included on the device side (NVRTC under dynamic loading has no toolkit
//! headers): the kernels use only built-in types and intrinsics.

use crate::backend::cpu::exp::{C2, C3, C4, C5, C6, EXP_CUTOFF, LN2_HI, LN2_LO, LOG2_E, MAGIC};

/// The common prelude: qualifiers and bit casts for device (NVRTC) and host (`cc`) builds.
pub const PRELUDE_C: &str = r#"
#ifdef __CUDACC__
#define DD_FN static __device__ __forceinline__
static __device__ __forceinline__ unsigned dd_f2u(float x) { return __float_as_uint(x); }
static __device__ __forceinline__ float dd_u2f(unsigned x) { return __uint_as_float(x); }
static __device__ __forceinline__ float dd_fma(float a, float b, float c) { return __fmaf_rn(a, b, c); }
#else
#include <math.h>
#include <string.h>
static inline float dd_fma(float a, float b, float c) { return fmaf(a, b, c); }
#define DD_FN static inline
static inline unsigned dd_f2u(float x) { unsigned u; memcpy(&u, &x, 4); return u; }
static inline float dd_u2f(unsigned u) { float x; memcpy(&x, &u, 4); return x; }
#endif
typedef unsigned int dd_u32;
typedef unsigned long long dd_u64;
"#;

/// Philox-4x32-10 (Salmon et al. 2011) and the crate's addressing, in C: identical to
/// [`philox4x32_10`](crate::rng::philox::philox4x32_10),
/// [`RngKey::for_stream`](crate::rng::RngKey::for_stream) and
/// `CounterRng::new(key, purpose, step, position).uniform()`.
pub const PHILOX_C: &str = r#"
/* Philox-4x32-10: ctr[4], key[2] -> out[4] (Random123 constants). */
DD_FN void dd_philox4x32_10(const dd_u32 ctr[4], const dd_u32 key[2], dd_u32 out[4]) {
    dd_u32 c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    dd_u32 k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; ++round) {
        dd_u64 p0 = (dd_u64)0xD2511F53u * (dd_u64)c0;
        dd_u64 p1 = (dd_u64)0xCD9E8D57u * (dd_u64)c2;
        dd_u32 hi0 = (dd_u32)(p0 >> 32), lo0 = (dd_u32)p0;
        dd_u32 hi1 = (dd_u32)(p1 >> 32), lo1 = (dd_u32)p1;
        dd_u32 n0 = hi1 ^ c1 ^ k0;
        dd_u32 n2 = hi0 ^ c3 ^ k1;
        c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
        if (round < 9) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* RngKey::for_stream(seed, stream). */
DD_FN void dd_key_for_stream(dd_u64 seed, dd_u64 stream, dd_u32 key[2]) {
    dd_u32 ctr[4] = { (dd_u32)stream, (dd_u32)(stream >> 32), 0u, 0x5EED0001u };
    dd_u32 k[2] = { (dd_u32)seed, (dd_u32)(seed >> 32) };
    dd_u32 b[4];
    dd_philox4x32_10(ctr, k, b);
    key[0] = b[0]; key[1] = b[1];
}

/* The first u64 of CounterRng::new(key, purpose, step, position). */
DD_FN dd_u64 dd_first_u64(const dd_u32 key[2], dd_u32 purpose, dd_u32 step, dd_u32 position) {
    dd_u32 ctr[4] = { 0u, position, step, purpose };
    dd_u32 b[4];
    dd_philox4x32_10(ctr, key, b);
    return ((dd_u64)b[1] << 32) | (dd_u64)b[0];
}

/* CounterRng::new(key, purpose, step, position).uniform(): (x >> 11) * 2^-53. */
DD_FN double dd_first_uniform(const dd_u32 key[2], dd_u32 purpose, dd_u32 step, dd_u32 position) {
    return (double)(dd_first_u64(key, purpose, step, position) >> 11) * (1.0 / 9007199254740992.0);
}
"#;

/// [`exp_nonpositive`](crate::backend::cpu::exp::exp_nonpositive) in C, the constants
/// written as the bit patterns of the Rust constants (so the two cannot drift apart).
///
/// Must be compiled without floating-point contraction (NVRTC `--fmad=false`, host
/// `-ffp-contract=off`) and without flush-to-zero: the Rust routine is specified as IEEE
/// multiplies, adds and explicit fused multiply-adds (`dd_fma`: `__fmaf_rn` on the device,
/// `fmaf` on the host, each one rounding), and contraction would fuse others.
pub fn exp_c() -> String {
    let b = |x: f32| format!("dd_u2f(0x{:08X}u)", x.to_bits());
    format!(
        r#"
/* exp(y) for y <= 0 in f32: Cody-Waite reduction, degree-4 correction polynomial, 2^n by
   exponent bits; exactly 0 below the cut-off, NaN for NaN. Same operations (fused
   multiply-adds where the Rust code has mul_add), same order as
   backend::cpu::exp::exp_nonpositive. */
DD_FN float dd_exp_nonpositive(float y) {{
    const float magic = {magic};
    float t = dd_fma(y, {log2e}, magic);
    float n = t - magic;
    float r = dd_fma(-n, {ln2lo}, dd_fma(-n, {ln2hi}, y));
    float q = dd_fma(dd_fma(dd_fma(dd_fma({c6}, r, {c5}), r, {c4}), r, {c3}), r, {c2});
    float p = dd_fma(q, r * r, r) + 1.0f;
    dd_u32 bits = ((dd_f2u(t) - 0x{magic_bits:08X}u) + 127u) << 23;
    float v = p * dd_u2f(bits);
    return !(y < {cutoff}) ? v : 0.0f;
}}

/* y, or 0 below the exp cut-off (the entropy term of a zero weight). */
DD_FN float dd_clamp_cut(float y) {{
    return y >= {cutoff} ? y : 0.0f;
}}
"#,
        magic = b(MAGIC),
        log2e = b(LOG2_E),
        ln2hi = b(LN2_HI),
        ln2lo = b(LN2_LO),
        c2 = b(C2),
        c3 = b(C3),
        c4 = b(C4),
        c5 = b(C5),
        c6 = b(C6),
        magic_bits = MAGIC.to_bits(),
        cutoff = b(EXP_CUTOFF),
    )
}

/// The row-summary kernel, instantiated for `f32` and `bf16` logits (see [`super`] for
/// the algorithm and the arguments).
pub const KERNEL_C: &str = r#"
#define DD_NEG_INF (__int_as_float(0xff800000))
#define DD_POS_INF (__int_as_float(0x7f800000))
#define DD_WARPS 8
#define DD_THREADS (32 * DD_WARPS)
#define DD_PER_LANE 8   /* 256 ids per CPU block / 32 lanes */
#define DD_FULL 0xffffffffu

#define DD_TEMPER 1
#define DD_ENTROPY 2
#define DD_TOP2 4
#define DD_DRAW 8

#define DD_OK 0u
#define DD_NON_FINITE 1u
#define DD_NO_MASS 2u

static __device__ __forceinline__ float dd_load_f32(const float* p, dd_u64 k) { return p[k]; }
static __device__ __forceinline__ float dd_load_bf16(const unsigned short* p, dd_u64 k) {
    return __uint_as_float(((unsigned)p[k]) << 16);
}
/* Finite (not NaN, not infinite) without a math header. */
static __device__ __forceinline__ int dd_isfinite(double x) { return x - x == 0.0; }
static __device__ __forceinline__ float dd_gt(float a, float b) { return a > b ? a : b; }
static __device__ __forceinline__ float dd_lt(float a, float b) { return a < b ? a : b; }

/* The weight of one logit against a block maximum: exp((x - m) * inv_tau) or exp(x - m). */
static __device__ __forceinline__ float dd_weight(float x, float m, float inv_tau, int temper) {
    float y = x - m;
    return temper ? dd_exp_nonpositive(y * inv_tau) : dd_exp_nonpositive(y);
}

/* Sum of 16 f64 lanes exactly as the CPU's `accumulate`: lane c (thread c < 16) takes
   the block's ids 32j + c (its own v[j]) and 32j + 16 + c (thread c + 16's v[j]) for
   j = 0, 1, ..., 7 in order, sums each pair in f32 (one rounding, the CPU's pair of
   16-id chunks; padding ids weigh 0) and adds it into its f64 accumulator, then the
   fixed pairwise tree w[j] += w[j + h], h = 8, 4, 2, 1. Every lane of the warp must call
   it; the result is valid in lane 0. */
static __device__ __forceinline__ double dd_lanes16(const float v[DD_PER_LANE], int lane) {
    double acc = 0.0;
    for (int j = 0; j < DD_PER_LANE; ++j) {
        float other = __shfl_down_sync(DD_FULL, v[j], 16);
        float pair = v[j] + other;
        acc = acc + (double)pair;
    }
    for (int h = 8; h > 0; h >>= 1) {
        double o = __shfl_down_sync(DD_FULL, acc, h);
        if (lane < h) acc = acc + o;
    }
    return acc;
}

#define DD_SUMMARIZE(NAME, T, LOAD)                                                          \
extern "C" __global__ void __launch_bounds__(DD_THREADS) NAME(                              \
    const T* __restrict__ logits, const dd_u64* __restrict__ data_rows,                     \
    const dd_u64* __restrict__ rows, dd_u32 n_rows,                                         \
    dd_u32 seq_len, dd_u32 vocab,                                                           \
    const dd_u32* __restrict__ blk_start, const dd_u32* __restrict__ blk_len, dd_u32 nblk,  \
    const dd_u32* __restrict__ excluded, dd_u32 n_excluded,                                 \
    const dd_u64* __restrict__ streams, dd_u64 seed, dd_u32 step, dd_u32 purpose,           \
    float inv_tau, int flags,                                                               \
    double* __restrict__ out_f64, float* __restrict__ out_max, dd_u32* __restrict__ out_u32) \
{                                                                                           \
    extern __shared__ double dd_smem[];                                                     \
    double* rec_s = dd_smem;                                                                \
    double* rec_st = rec_s + nblk;                                                          \
    double* rec_t = rec_st + nblk;                                                          \
    float* rec_m = (float*)(rec_t + nblk);                                                  \
    __shared__ float r_bm[DD_WARPS], r_m[DD_WARPS], r_t1[DD_WARPS], r_t2[DD_WARPS];         \
    __shared__ dd_u32 r_first[DD_WARPS];                                                    \
    __shared__ int r_bad[DD_WARPS];                                                         \
    __shared__ float run_m, top1, top2;                                                     \
    __shared__ dd_u32 run_arg;                                                              \
    __shared__ int any_bad;                                                                 \
    const int lane = threadIdx.x & 31;                                                      \
    const int warp = threadIdx.x >> 5;                                                      \
    const int temper = (flags & DD_TEMPER) != 0;                                            \
    const int entropy = (flags & DD_ENTROPY) != 0;                                          \
    for (dd_u32 sel = blockIdx.x; sel < n_rows; sel += gridDim.x) {                         \
        const dd_u64 flat = rows[sel];                                                      \
        const T* row = logits + data_rows[sel] * (dd_u64)vocab;                             \
        if (threadIdx.x == 0) {                                                             \
            run_m = DD_NEG_INF; run_arg = 0u; top1 = DD_NEG_INF; top2 = DD_NEG_INF;         \
            any_bad = 0;                                                                    \
        }                                                                                   \
        __syncthreads();                                                                    \
        for (dd_u32 base = 0; base < nblk; base += DD_WARPS) {                              \
            const dd_u32 k = base + (dd_u32)warp;                                           \
            float x[DD_PER_LANE];                                                           \
            dd_u32 len = 0, start = 0;                                                      \
            float bm = DD_NEG_INF, t1 = DD_NEG_INF, t2 = DD_NEG_INF;                        \
            dd_u32 first = 0xffffffffu;                                                     \
            int bad = 0;                                                                    \
            if (k < nblk) { start = blk_start[k]; len = blk_len[k]; }                       \
            for (int j = 0; j < DD_PER_LANE; ++j) {                                         \
                dd_u32 idx = (dd_u32)lane + 32u * (dd_u32)j;                                \
                x[j] = idx < len ? LOAD(row, (dd_u64)start + idx) : DD_NEG_INF;             \
                bad |= (x[j] != x[j]) || (x[j] == DD_POS_INF);                              \
                bm = dd_gt(x[j], bm);                                                       \
                t2 = dd_gt(dd_lt(x[j], t1), t2);                                            \
                t1 = dd_gt(x[j], t1);                                                       \
            }                                                                               \
            for (int h = 16; h > 0; h >>= 1) {                                              \
                float obm = __shfl_xor_sync(DD_FULL, bm, h);                                \
                float o1 = __shfl_xor_sync(DD_FULL, t1, h);                                 \
                float o2 = __shfl_xor_sync(DD_FULL, t2, h);                                 \
                bm = dd_gt(obm, bm);                                                        \
                float n1 = dd_gt(o1, t1);                                                   \
                t2 = dd_gt(dd_lt(o1, t1), dd_gt(o2, t2));                                   \
                t1 = n1;                                                                    \
            }                                                                               \
            for (int j = 0; j < DD_PER_LANE; ++j) {                                         \
                dd_u32 idx = (dd_u32)lane + 32u * (dd_u32)j;                                \
                if (idx < len && x[j] == bm && idx < first) first = idx;                    \
            }                                                                               \
            for (int h = 16; h > 0; h >>= 1) {                                              \
                dd_u32 o = __shfl_xor_sync(DD_FULL, first, h);                              \
                first = o < first ? o : first;                                              \
            }                                                                               \
            bad = __any_sync(DD_FULL, bad);                                                 \
            if (lane == 0) {                                                                \
                r_bm[warp] = bm; r_first[warp] = first; r_t1[warp] = t1; r_t2[warp] = t2;   \
                r_bad[warp] = bad;                                                          \
            }                                                                               \
            __syncthreads();                                                                \
            if (threadIdx.x == 0) {                                                         \
                for (int w = 0; w < DD_WARPS && base + (dd_u32)w < nblk; ++w) {             \
                    dd_u32 kk = base + (dd_u32)w;                                           \
                    float b = r_bm[w];                                                      \
                    if (b > run_m) { run_m = b; run_arg = blk_start[kk] + r_first[w]; }     \
                    r_m[w] = run_m;                                                         \
                    rec_m[kk] = b == DD_NEG_INF ? DD_NEG_INF : run_m;                       \
                    float n1 = dd_gt(r_t1[w], top1);                                        \
                    top2 = dd_gt(dd_lt(r_t1[w], top1), dd_gt(r_t2[w], top2));               \
                    top1 = n1;                                                              \
                    any_bad |= r_bad[w];                                                    \
                }                                                                           \
            }                                                                               \
            __syncthreads();                                                                \
            if (k < nblk && bm != DD_NEG_INF) {                                             \
                const float m = r_m[warp];                                                  \
                float e[DD_PER_LANE];                                                       \
                for (int j = 0; j < DD_PER_LANE; ++j) e[j] = dd_exp_nonpositive(x[j] - m);  \
                double s = dd_lanes16(e, lane);                                             \
                double t = 0.0, st = 0.0;                                                   \
                if (entropy) {                                                              \
                    float ey[DD_PER_LANE];                                                  \
                    for (int j = 0; j < DD_PER_LANE; ++j)                                   \
                        ey[j] = e[j] * dd_clamp_cut(x[j] - m);                              \
                    t = dd_lanes16(ey, lane);                                               \
                }                                                                           \
                if (temper) {                                                               \
                    float et[DD_PER_LANE];                                                  \
                    for (int j = 0; j < DD_PER_LANE; ++j)                                   \
                        et[j] = dd_exp_nonpositive((x[j] - m) * inv_tau);                   \
                    st = dd_lanes16(et, lane);                                              \
                }                                                                           \
                if (lane == 0) { rec_s[k] = s; rec_t[k] = t; rec_st[k] = st; }              \
            }                                                                               \
            __syncthreads();                                                                \
        }                                                                                   \
        if (threadIdx.x == 0) {                                                             \
            dd_summarize_tail_##NAME(row, sel, flat, seq_len, blk_start, blk_len, nblk,     \
                excluded, n_excluded, streams, seed, step, purpose, inv_tau, flags,         \
                rec_s, rec_st, rec_t, rec_m, run_m, run_arg, top2, any_bad,                 \
                out_f64, out_max, out_u32);                                                 \
        }                                                                                   \
        __syncthreads();                                                                    \
    }                                                                                       \
}

/* The scalar end of a row (thread 0): rescale the block sums to the row maximum in block
   order, the summaries, and the inverse-CDF draw — the CPU's `summarize_row` and `draw`. */
#define DD_TAIL(NAME, T, LOAD)                                                               \
static __device__ __noinline__ dd_u32 dd_walk_##NAME(const T* row, dd_u32 start, dd_u32 len, \
    float mk, float inv_tau, int temper, double rem)                                        \
{                                                                                           \
    double c = 0.0;                                                                         \
    dd_u32 last = start;                                                                    \
    for (dd_u32 j = 0; j < len; ++j) {                                                      \
        float w = dd_weight(LOAD(row, (dd_u64)start + j), mk, inv_tau, temper);             \
        if (w > 0.0f) {                                                                     \
            last = start + j;                                                               \
            c = c + (double)w;                                                              \
            if (c > rem) return last;                                                       \
        }                                                                                   \
    }                                                                                       \
    return last;                                                                            \
}                                                                                           \
static __device__ __noinline__ void dd_summarize_tail_##NAME(const T* row, dd_u32 sel,      \
    dd_u64 flat, dd_u32 seq_len, const dd_u32* blk_start, const dd_u32* blk_len,            \
    dd_u32 nblk, const dd_u32* excluded, dd_u32 n_excluded, const dd_u64* streams,          \
    dd_u64 seed, dd_u32 step, dd_u32 purpose, float inv_tau, int flags,                     \
    const double* rec_s, const double* rec_st, const double* rec_t, const float* rec_m,     \
    float m32, dd_u32 argmax, float second, int bad,                                        \
    double* out_f64, float* out_max, dd_u32* out_u32)                                       \
{                                                                                           \
    const int temper = (flags & DD_TEMPER) != 0;                                            \
    const int entropy = (flags & DD_ENTROPY) != 0;                                          \
    for (dd_u32 q = 0; q < n_excluded; ++q) {                                               \
        float xe = LOAD(row, (dd_u64)excluded[q]);                                          \
        bad |= (xe != xe) || (xe == DD_POS_INF);                                            \
    }                                                                                       \
    const double m = (double)m32;                                                           \
    const double inv = (double)inv_tau;                                                     \
    double s = 0.0, st = 0.0, t = 0.0;                                                      \
    int have = 0; float last = 0.0f; double f = 1.0, ft = 1.0, d = 0.0;                     \
    for (dd_u32 k = 0; k < nblk; ++k) {                                                     \
        float mk = rec_m[k];                                                                \
        if (mk == DD_NEG_INF) continue;                                                     \
        if (!have || mk != last) {                                                          \
            have = 1; last = mk; d = (double)mk - m; f = exp(d);                            \
            ft = temper ? exp(d * inv) : f;                                                 \
        }                                                                                   \
        s = s + f * rec_s[k];                                                               \
        if (entropy) t = t + f * (rec_t[k] + d * rec_s[k]);                                 \
        if (temper) st = st + ft * rec_st[k];                                               \
    }                                                                                       \
    dd_u32 status = DD_OK;                                                                  \
    if (bad || m32 == DD_POS_INF || !dd_isfinite(s) || !dd_isfinite(st)) status = DD_NON_FINITE;  \
    else if (m32 == DD_NEG_INF) status = DD_NO_MASS;                                        \
    double* o = out_f64 + (dd_u64)sel * 4u;                                                 \
    dd_u32* ou = out_u32 + (dd_u64)sel * 3u;                                                \
    ou[2] = status;                                                                         \
    if (status != DD_OK) return;                                                            \
    const double ln_s = log(s);                                                             \
    const double lse = m + ln_s;                                                            \
    double margin = 0.0, ent = 0.0;                                                         \
    if (flags & DD_TOP2) margin = (1.0 - exp((double)second - m)) / s;                      \
    if (entropy) { ent = ln_s - t / s; ent = ent > 0.0 ? ent : 0.0; }                                             \
    dd_u32 token = argmax;                                                                  \
    if (flags & DD_DRAW) {                                                                  \
        dd_u32 key[2];                                                                      \
        const dd_u64 b = flat / (dd_u64)seq_len;                                            \
        const dd_u32 i = (dd_u32)(flat % (dd_u64)seq_len);                                  \
        dd_key_for_stream(seed, streams[b], key);                                           \
        const double u = dd_first_uniform(key, purpose, step, i);                           \
        const double target = u * (temper ? st : s);                                        \
        double cum = 0.0;                                                                   \
        long long last_pos = -1;                                                            \
        int found = 0;                                                                      \
        have = 0;                                                                           \
        for (dd_u32 k = 0; k < nblk; ++k) {                                                 \
            float mk = rec_m[k];                                                            \
            if (mk == DD_NEG_INF) continue;                                                 \
            if (!have || mk != last) {                                                      \
                have = 1; last = mk; d = (double)mk - m; f = exp(d);                        \
                ft = temper ? exp(d * inv) : f;                                             \
            }                                                                               \
            double fk = temper ? ft : f;                                                    \
            double w = temper ? ft * rec_st[k] : f * rec_s[k];                              \
            if (w > 0.0) {                                                                  \
                last_pos = (long long)k;                                                    \
                double next = cum + w;                                                      \
                if (next > target) {                                                        \
                    token = dd_walk_##NAME(row, blk_start[k], blk_len[k], mk, inv_tau,      \
                                           temper, (target - cum) / fk);                    \
                    found = 1;                                                              \
                    break;                                                                  \
                }                                                                           \
                cum = next;                                                                 \
            }                                                                               \
        }                                                                                   \
        if (!found && last_pos >= 0) {                                                      \
            dd_u32 kk = (dd_u32)last_pos;                                                   \
            token = dd_walk_##NAME(row, blk_start[kk], blk_len[kk], rec_m[kk], inv_tau,     \
                                   temper, DD_POS_INF);                                     \
        }                                                                                   \
    }                                                                                       \
    o[0] = lse;                                                                             \
    o[1] = margin;                                                                          \
    o[2] = ent;                                                                             \
    o[3] = (double)LOAD(row, (dd_u64)token) - lse;                                          \
    out_max[sel] = m32;                                                                     \
    ou[0] = argmax;                                                                         \
    ou[1] = token;                                                                          \
}

DD_TAIL(dd_summarize_f32, float, dd_load_f32)
DD_TAIL(dd_summarize_bf16, unsigned short, dd_load_bf16)
DD_SUMMARIZE(dd_summarize_f32, float, dd_load_f32)
DD_SUMMARIZE(dd_summarize_bf16, unsigned short, dd_load_bf16)
"#;

/// The names of the kernels [`KERNEL_C`] defines (`f32` and `bf16` logits).
pub const KERNEL_NAMES: [&str; 2] = ["dd_summarize_f32", "dd_summarize_bf16"];

/// The complete NVRTC source: prelude, Philox, `exp`, kernels.
pub fn kernel_source() -> String {
    let mut s = String::with_capacity(PRELUDE_C.len() + PHILOX_C.len() + KERNEL_C.len() + 2048);
    s.push_str("/* discrete-diffusion CUDA backend: generated by backend::cuda::source. */\n");
    s.push_str(PRELUDE_C);
    s.push_str(PHILOX_C);
    s.push_str(&exp_c());
    s.push_str(KERNEL_C);
    s
}

/// The host-C part (prelude, Philox, `exp`) that `tests/backend_cuda.rs` compiles with `cc`
/// to check the kernel's arithmetic against the Rust functions without a GPU.
pub fn host_checkable_source() -> String {
    let mut s = String::new();
    s.push_str(PRELUDE_C);
    s.push_str(PHILOX_C);
    s.push_str(&exp_c());
    s
}
