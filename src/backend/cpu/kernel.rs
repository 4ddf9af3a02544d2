//! The hot loop of the CPU backend — one pass over a row in blocks — and its run-time
//! dispatch to SSE2 (portable), AVX2 + FMA or AVX-512 code (DESIGN §3.8).
//!
//! The row's allowed ids form segments (the complement of the excluded ids). Each segment
//! is cut into blocks of [`BLOCK`] logits; for each block:
//!
//! 1. the block maximum over [`LANES`] independent lanes (and, for the margin, per-lane
//!    top-2 values carried across the whole row);
//! 2. if it exceeds the running maximum `m`, `m` is raised and the argmax located in the
//!    block (the first occurrence: earlier blocks are strictly smaller);
//! 3. the block sums relative to the current `m`, in [`LANES`] `f64` accumulators:
//!    `s = Σ exp(x − m)`, `t = Σ exp(x − m)·(x − m)` (entropy; each product formed in
//!    `f32`) and `st = Σ exp((x − m)·τ⁻¹)` (tempered draws), reduced by a fixed pairwise
//!    tree.
//!
//! Steps 1 and 3 share **one read** of the block: once the row has a finite running
//! maximum, the pass speculates that the block will not raise it and computes the
//! maximum and the sums relative to the current `m` in the same loop ([`fused_block`]).
//! If the block does raise it (the first block of a row; about `ln(#blocks)` blocks per
//! row when the logits are exchangeable; every block of an increasing row, the worst
//! case, which costs a second look at each block), the sums are recomputed from the
//! block, still in L1. The kept sums are exactly those of steps 1–3 done one after the
//! other, so speculation changes no bit.
//!
//! Blocks keep their own `m` (a [`BlockRec`]); the caller rescales them to the final
//! maximum once per row — the "online rescaling" without a per-element rescale — and
//! walks them for the inverse-CDF draw. Memory traffic is one read of the row.
//!
//! All arithmetic is IEEE `f32`/`f64` `+ − ×`, plus the fused multiply-adds that the exp
//! specifies ([`super::exp`]), in a fixed order on explicit lane arrays (no other
//! `mul_add`, no reassociation), so every dispatch path returns identical bits; the
//! compiler auto-vectorises the lane loops to the width of the enabled instruction set
//! (portable, AVX2); the AVX-512 block is written with intrinsics (`super::avx512`: the
//! same operations on the same lanes) because LLVM kept the `f64` accumulation in 2-lane
//! registers.
#![allow(unsafe_code)]

use super::exp::{EXP_CUTOFF, exp_nonpositive};
pub(crate) use super::simd::Simd;

/// Independent accumulators per loop (one AVX-512 register of `f32`).
pub(crate) const LANES: usize = 16;
/// Logits per block (1 KiB: in L1 for the second look at it).
pub(crate) const BLOCK: usize = 256;

/// One block's sums relative to the running maximum `m` at the time it was read.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BlockRec {
    /// The running maximum the sums are relative to.
    pub m: f32,
    /// First id of the block.
    pub start: usize,
    /// Number of ids.
    pub len: usize,
    /// `Σ exp(x − m)`.
    pub s: f64,
    /// `Σ exp((x − m)·τ⁻¹)` (tempered mode only).
    pub st: f64,
    /// `Σ exp(x − m)·(x − m)` (entropy mode only).
    pub t: f64,
}

/// What the pass found besides the blocks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PassOut {
    /// The row maximum over allowed ids (`−∞` if none is finite; NaN ignored).
    pub m: f32,
    /// Its first index (meaningless when `m = −∞`).
    pub argmax: usize,
    /// The second-largest allowed logit, counting ties (margin mode only; else `−∞`).
    pub second: f32,
    /// A NaN was seen in a block whose other entries are all `−∞` (elsewhere NaN shows up
    /// as a NaN sum).
    pub nan: bool,
}

/// Which optional accumulators a pass needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mode {
    /// Tempered sums `st` (temperature not in {0, 1}).
    pub temper: bool,
    /// Entropy sums `t`.
    pub entropy: bool,
    /// Per-lane top-2 for the margin.
    pub top2: bool,
}

/// Runs the pass on `level` (falling back to the portable code if the level is not
/// available — results are identical anyway).
pub(crate) fn pass(
    level: Simd,
    mode: Mode,
    row: &[f32],
    segs: &[(usize, usize)],
    inv_tau: f32,
    blocks: &mut Vec<BlockRec>,
) -> PassOut {
    match level {
        #[cfg(target_arch = "x86_64")]
        Simd::Avx512 if Simd::Avx512.is_available() => {
            // SAFETY: `pass_avx512` only requires the target features it enables, and
            // `Simd::Avx512.is_available()` has just checked each of them at run time.
            unsafe { pass_avx512(mode, row, segs, inv_tau, blocks) }
        }
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 | Simd::Avx512 if Simd::Avx2.is_available() => {
            // SAFETY: `pass_avx2` only requires AVX2 and FMA, which
            // `Simd::Avx2.is_available()` has just checked at run time.
            unsafe { pass_avx2(mode, row, segs, inv_tau, blocks) }
        }
        _ => pass_portable(mode, row, segs, inv_tau, blocks),
    }
}

/// Expands to the monomorphised pass for `mode` (8 variants).
macro_rules! dispatch_mode {
    ($wide:literal, $mode:expr, $($arg:expr),*) => {
        match ($mode.temper, $mode.entropy, $mode.top2) {
            (false, false, false) => pass_impl::<false, false, false, $wide>($($arg),*),
            (false, false, true) => pass_impl::<false, false, true, $wide>($($arg),*),
            (false, true, false) => pass_impl::<false, true, false, $wide>($($arg),*),
            (false, true, true) => pass_impl::<false, true, true, $wide>($($arg),*),
            (true, false, false) => pass_impl::<true, false, false, $wide>($($arg),*),
            (true, false, true) => pass_impl::<true, false, true, $wide>($($arg),*),
            (true, true, false) => pass_impl::<true, true, false, $wide>($($arg),*),
            (true, true, true) => pass_impl::<true, true, true, $wide>($($arg),*),
        }
    };
}

fn pass_portable(
    mode: Mode,
    row: &[f32],
    segs: &[(usize, usize)],
    inv_tau: f32,
    blocks: &mut Vec<BlockRec>,
) -> PassOut {
    dispatch_mode!(false, mode, row, segs, inv_tau, blocks)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn pass_avx2(
    mode: Mode,
    row: &[f32],
    segs: &[(usize, usize)],
    inv_tau: f32,
    blocks: &mut Vec<BlockRec>,
) -> PassOut {
    dispatch_mode!(false, mode, row, segs, inv_tau, blocks)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512dq,avx512vl,avx512bw")]
fn pass_avx512(
    mode: Mode,
    row: &[f32],
    segs: &[(usize, usize)],
    inv_tau: f32,
    blocks: &mut Vec<BlockRec>,
) -> PassOut {
    dispatch_mode!(true, mode, row, segs, inv_tau, blocks)
}

#[inline(always)]
fn fmax(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

#[inline(always)]
fn fmin(a: f32, b: f32) -> f32 {
    if a < b { a } else { b }
}

/// The pass over the allowed segments of `row` (see the module docs).
#[inline(always)]
fn pass_impl<const TEMPER: bool, const ENT: bool, const TOP2: bool, const WIDE: bool>(
    row: &[f32],
    segs: &[(usize, usize)],
    inv_tau: f32,
    blocks: &mut Vec<BlockRec>,
) -> PassOut {
    blocks.clear();
    let mut m = f32::NEG_INFINITY;
    let mut argmax = 0usize;
    let mut nan = false;
    let mut t1 = [f32::NEG_INFINITY; LANES];
    let mut t2 = [f32::NEG_INFINITY; LANES];
    let mut bufs = Bufs {
        e: [0.0; BLOCK],
        ey: [0.0; BLOCK],
        et: [0.0; BLOCK],
    };
    for &(a, b) in segs {
        let mut start = a;
        while start < b {
            let end = (start + BLOCK).min(b);
            let xb = &row[start..end];
            // Speculate that the block does not raise the running maximum: one read gives
            // the block maximum and the sums relative to `m`, which are kept if it holds
            // (they are then exactly what the sums after the maximum would be) and
            // recomputed from the block, still in L1, if it does not (the first block,
            // and about ln(#blocks) more per row for exchangeable logits).
            let (bm, mut sums) = if m == f32::NEG_INFINITY {
                (block_max::<TOP2>(xb, &mut t1, &mut t2), None)
            } else {
                let (bm, sums) = fused_block::<TOP2, TEMPER, ENT, WIDE>(
                    xb, m, inv_tau, &mut t1, &mut t2, &mut bufs,
                );
                (bm, Some(sums))
            };
            if bm > m {
                m = bm;
                argmax = start + first_equal(xb, bm);
                sums = None;
            }
            if bm == f32::NEG_INFINITY {
                // Every entry is −∞ (weight 0) or NaN: nothing to sum, but report a NaN.
                nan |= xb.iter().any(|x| x.is_nan());
            } else {
                let (s, st, t) = match sums {
                    Some(sums) => sums,
                    None => block_sums::<TEMPER, ENT, WIDE>(xb, m, inv_tau, &mut bufs),
                };
                blocks.push(BlockRec {
                    m,
                    start,
                    len: end - start,
                    s,
                    st,
                    t,
                });
            }
            start = end;
        }
    }
    let second = if TOP2 {
        second_largest(&t1, &t2)
    } else {
        f32::NEG_INFINITY
    };
    PassOut {
        m,
        argmax,
        second,
        nan,
    }
}

/// The first index of `bm` in `xb` (0 if absent, which the caller rules out): a
/// branch-free compare over each [`LANES`]-chunk finds the chunk, a scalar scan the index.
#[inline(always)]
fn first_equal(xb: &[f32], bm: f32) -> usize {
    let mut chunks = xb.chunks_exact(LANES);
    let mut base = 0;
    for c in &mut chunks {
        let c: &[f32; LANES] = c.try_into().expect("chunks_exact yields LANES");
        let mut hit = false;
        for &x in c {
            hit |= x == bm;
        }
        if hit {
            break;
        }
        base += LANES;
    }
    xb[base..]
        .iter()
        .position(|&x| x == bm)
        .map_or(0, |k| base + k)
}

/// The second largest of the union of the lanes' top-2 pairs, counting ties.
#[inline(always)]
fn second_largest(t1: &[f32; LANES], t2: &[f32; LANES]) -> f32 {
    let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &x in t1.iter().chain(t2.iter()) {
        if x > a {
            b = a;
            a = x;
        } else if x > b {
            b = x;
        }
    }
    b
}

/// Maximum of a block; in `TOP2` mode also updates the per-lane top-2 `(t1 ≥ t2)`.
///
/// The tail of the block (fewer than [`LANES`] ids) is padded with `−∞`, which changes no
/// lane; the lane arrays are only ever indexed by constants, so they stay in registers
/// (indexed by the remainder's position, they were split into 2-lane pieces).
#[inline(always)]
fn block_max<const TOP2: bool>(xb: &[f32], t1: &mut [f32; LANES], t2: &mut [f32; LANES]) -> f32 {
    let mut lm = [f32::NEG_INFINITY; LANES];
    let mut chunks = xb.chunks_exact(LANES);
    for c in &mut chunks {
        let c: &[f32; LANES] = c.try_into().expect("chunks_exact yields LANES");
        max_lanes::<TOP2>(c, &mut lm, t1, t2);
    }
    let rem = chunks.remainder();
    if !rem.is_empty() {
        let mut c = [f32::NEG_INFINITY; LANES];
        c[..rem.len()].copy_from_slice(rem);
        max_lanes::<TOP2>(&c, &mut lm, t1, t2);
    }
    reduce_max(&lm)
}

/// Maximum of the lanes by a fixed tree.
#[inline(always)]
pub(crate) fn reduce_max(lm: &[f32; LANES]) -> f32 {
    let mut w = *lm;
    let mut half = LANES / 2;
    while half > 0 {
        for j in 0..half {
            w[j] = fmax(w[j], w[j + half]);
        }
        half /= 2;
    }
    w[0]
}

#[inline(always)]
fn max_lanes<const TOP2: bool>(
    c: &[f32; LANES],
    lm: &mut [f32; LANES],
    t1: &mut [f32; LANES],
    t2: &mut [f32; LANES],
) {
    for j in 0..LANES {
        max_lane::<TOP2>(c[j], &mut lm[j], &mut t1[j], &mut t2[j]);
    }
}

#[inline(always)]
fn max_lane<const TOP2: bool>(x: f32, lm: &mut f32, t1: &mut f32, t2: &mut f32) {
    *lm = fmax(x, *lm);
    if TOP2 {
        *t2 = fmax(fmin(x, *t1), *t2);
        *t1 = fmax(x, *t1);
    }
}

/// The block maximum ([`block_max`], updating the per-lane top-2 in `TOP2` mode) and the
/// block sums relative to `m` ([`block_sums`]) in one read of the block. The sums are
/// only meaningful if the maximum does not exceed `m` (the caller checks and discards
/// them otherwise); every operation is [`block_max`]'s and [`block_sums`]'s, in their
/// order, so the results are theirs bit for bit.
#[inline(always)]
fn fused_block<const TOP2: bool, const TEMPER: bool, const ENT: bool, const WIDE: bool>(
    xb: &[f32],
    m: f32,
    inv_tau: f32,
    t1: &mut [f32; LANES],
    t2: &mut [f32; LANES],
    bufs: &mut Bufs,
) -> (f32, (f64, f64, f64)) {
    #[cfg(target_arch = "x86_64")]
    if WIDE {
        // SAFETY: `WIDE` is only instantiated by `pass_avx512`, whose caller has checked
        // the AVX-512 features `avx512::block` enables at run time.
        let f = unsafe { super::avx512::block::<true, TOP2, TEMPER, ENT>(xb, m, inv_tau, t1, t2) };
        return (f.bm, f.sums);
    }
    let n = xb.len();
    debug_assert!(n <= BLOCK);
    let Bufs { e, ey, et } = bufs;
    let mut lm = [f32::NEG_INFINITY; LANES];
    let mut chunks = xb.chunks_exact(LANES);
    let mut k = 0;
    for c in &mut chunks {
        let c = c.try_into().expect("chunks_exact yields LANES");
        chunk_weights::<TOP2, TEMPER, ENT>(c, k, m, inv_tau, &mut lm, t1, t2, e, ey, et);
        k += LANES;
    }
    let rem = chunks.remainder();
    if !rem.is_empty() {
        // Padding with −∞ changes no lane maximum and gives weight exp(−∞ − m) = 0, the
        // zero padding of `block_sums`.
        let mut c = [f32::NEG_INFINITY; LANES];
        c[..rem.len()].copy_from_slice(rem);
        chunk_weights::<TOP2, TEMPER, ENT>(&c, k, m, inv_tau, &mut lm, t1, t2, e, ey, et);
        k += LANES;
    }
    let s = accumulate(&e[..k]);
    let t = if ENT { accumulate(&ey[..k]) } else { 0.0 };
    let st = if TEMPER { accumulate(&et[..k]) } else { 0.0 };
    (reduce_max(&lm), (s, st, t))
}

/// One chunk of [`fused_block`]: the lane maxima (and top-2) and the weights of ids
/// `k .. k + LANES` into the buffers. A function with `#[inline(always)]`, not a closure:
/// a closure is not guaranteed to be compiled with the target features of the pass that
/// calls it, and without FMA each `mul_add` of the exp becomes a `libm` call.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn chunk_weights<const TOP2: bool, const TEMPER: bool, const ENT: bool>(
    c: &[f32; LANES],
    k: usize,
    m: f32,
    inv_tau: f32,
    lm: &mut [f32; LANES],
    t1: &mut [f32; LANES],
    t2: &mut [f32; LANES],
    e: &mut [f32; BLOCK],
    ey: &mut [f32; BLOCK],
    et: &mut [f32; BLOCK],
) {
    max_lanes::<TOP2>(c, lm, t1, t2);
    // Fixed-size views (one bounds check each), so that the lane loops vectorise.
    let e = lanes_at(e, k);
    for j in 0..LANES {
        e[j] = exp_nonpositive(c[j] - m);
    }
    if ENT {
        let ey = lanes_at(ey, k);
        for j in 0..LANES {
            ey[j] = e[j] * clamp_cut(c[j] - m);
        }
    }
    if TEMPER {
        let et = lanes_at(et, k);
        for j in 0..LANES {
            et[j] = exp_nonpositive((c[j] - m) * inv_tau);
        }
    }
}

/// `b[k .. k + LANES]` as an array.
#[inline(always)]
fn lanes_at(b: &mut [f32; BLOCK], k: usize) -> &mut [f32; LANES] {
    (&mut b[k..k + LANES])
        .try_into()
        .expect("k + LANES ≤ BLOCK")
}

/// `(Σ exp(x − m), Σ exp((x − m)·inv_tau), Σ exp(x − m)·(x − m))` over a block, the last
/// two only in their modes (else 0).
///
/// Element-wise loops fill `f32` buffers (vectorised at the full register width; the
/// buffers live in L1), then the buffers are added into [`LANES`] `f64` accumulators,
/// id `k` into lane `k mod LANES`; the zero padding past the block's end adds exact zeros.
#[inline(always)]
fn block_sums<const TEMPER: bool, const ENT: bool, const WIDE: bool>(
    xb: &[f32],
    m: f32,
    inv_tau: f32,
    bufs: &mut Bufs,
) -> (f64, f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if WIDE {
        let (mut t1, mut t2) = ([f32::NEG_INFINITY; LANES], [f32::NEG_INFINITY; LANES]);
        // SAFETY: as in `fused_block`.
        let f = unsafe {
            super::avx512::block::<false, false, TEMPER, ENT>(xb, m, inv_tau, &mut t1, &mut t2)
        };
        return f.sums;
    }
    let n = xb.len();
    debug_assert!(n <= BLOCK);
    let full = n.div_ceil(LANES) * LANES;
    let Bufs { e, ey, et } = bufs;
    e[n..full].fill(0.0);
    if ENT {
        ey[n..full].fill(0.0);
    }
    if TEMPER {
        et[n..full].fill(0.0);
    }
    for (o, &x) in e[..n].iter_mut().zip(xb) {
        *o = exp_nonpositive(x - m);
    }
    if ENT {
        // e·(x − m) in `f32` (one more rounding, relative 2⁻²⁴ per term), summed in `f64`.
        for ((o, &x), &w) in ey[..n].iter_mut().zip(xb).zip(&e[..n]) {
            *o = w * clamp_cut(x - m);
        }
    }
    if TEMPER {
        for (o, &x) in et[..n].iter_mut().zip(xb) {
            *o = exp_nonpositive((x - m) * inv_tau);
        }
    }
    let mut st = 0.0;
    let mut t = 0.0;
    let s = accumulate(&e[..full]);
    if ENT {
        t = accumulate(&ey[..full]);
    }
    if TEMPER {
        st = accumulate(&et[..full]);
    }
    (s, st, t)
}

/// The per-pass scratch buffers of [`block_sums`] (allocated once per row, not per block;
/// only the padding `[n, full)` of a short block is zeroed).
struct Bufs {
    /// `exp(x − m)`.
    e: [f32; BLOCK],
    /// `exp(x − m)·(x − m)`.
    ey: [f32; BLOCK],
    /// `exp((x − m)·τ⁻¹)`.
    et: [f32; BLOCK],
}

/// `Σ x` over `xs` (a multiple of [`LANES`] long) by the block summation rule: the
/// chunks of [`LANES`] ids are taken in pairs `(2q, 2q + 1)`, each pair's lane `j` summed
/// in `f32` (`x[32q + j] + x[32q + 16 + j]`, one rounding) and added into `f64` lane `j`;
/// an odd last chunk is added alone (as if paired with zeros, which changes no bit); then
/// [`sum_lanes`]. Pairing halves the `f32 → f64` conversions, the costliest part of the
/// accumulation, for one extra `f32` rounding per pair (relative `2⁻²⁴`, see the
/// numerics in `backend::cpu`). The lanes are held as two halves of `LANES / 2` (written
/// as one 16-lane loop, LLVM's SLP vectoriser split it into 2-lane pieces; same
/// additions, same order, either way). The AVX-512 level does the same additions in
/// `super::avx512`.
#[inline(always)]
fn accumulate(xs: &[f32]) -> f64 {
    const H: usize = LANES / 2;
    let mut lo = [0f64; H];
    let mut hi = [0f64; H];
    let mut pairs = xs.chunks_exact(2 * LANES);
    for c in &mut pairs {
        let (a, b) = c.split_at(LANES);
        let a: &[f32; LANES] = a.try_into().expect("LANES");
        let b: &[f32; LANES] = b.try_into().expect("LANES");
        for j in 0..H {
            lo[j] += (a[j] + b[j]) as f64;
        }
        for j in 0..H {
            hi[j] += (a[H + j] + b[H + j]) as f64;
        }
    }
    let last = pairs.remainder();
    if !last.is_empty() {
        let c: &[f32; LANES] = last.try_into().expect("a multiple of LANES");
        for j in 0..H {
            lo[j] += c[j] as f64;
        }
        for j in 0..H {
            hi[j] += c[H + j] as f64;
        }
    }
    let mut acc = [0f64; LANES];
    acc[..H].copy_from_slice(&lo);
    acc[H..].copy_from_slice(&hi);
    sum_lanes(&acc)
}

/// `y`, or 0 below the `exp` cut-off: `y = −∞` has weight 0 and must add `0·0` to the
/// entropy sum, not `0·∞` (a NaN `y` still makes the sum NaN through its weight).
#[inline(always)]
fn clamp_cut(y: f32) -> f32 {
    if y >= EXP_CUTOFF { y } else { 0.0 }
}

/// Sum of the lanes by a fixed pairwise tree.
#[inline(always)]
pub(crate) fn sum_lanes(a: &[f64; LANES]) -> f64 {
    let mut w = *a;
    let mut half = LANES / 2;
    while half > 0 {
        for j in 0..half {
            w[j] += w[j + half];
        }
        half /= 2;
    }
    w[0]
}

/// The weight `exp((x − m)·inv_tau)` (tempered) or `exp(x − m)` of one logit, with the
/// same operations as the pass.
#[inline(always)]
pub(crate) fn weight(x: f32, m: f32, inv_tau: f32, temper: bool) -> f32 {
    let y = x - m;
    if temper {
        exp_nonpositive(y * inv_tau)
    } else {
        exp_nonpositive(y)
    }
}
