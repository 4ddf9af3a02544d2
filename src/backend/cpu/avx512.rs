//! The AVX-512 block of the CPU backend's pass, written with intrinsics: the block
//! maximum (and per-lane top-2) and the block sums in **one** read of the block, the
//! `exp` ([`exp16`]) included.
//!
//! Every operation is the one the portable code ([`super::kernel`]) performs, in the same
//! order and on the same lanes — `max`/`min` as `x > a ? x : a` / `x < a ? x : a`
//! (`vmaxps`/`vminps` with the new value first), the exp's fused multiply-adds as
//! `vfmadd`/`vfnmadd`, the same `f32` sums of each pair of 16-id chunks, then `f32 → f64`
//! conversions and `f64` additions into the same 16 accumulators — so the results are
//! bit-identical to every other level (`tests/backend_cpu.rs` compares the levels,
//! `pass_tests.rs` each level with a scalar statement of the pass; the unit tests below
//! compare [`exp16`] with [`exp_nonpositive`](super::exp::exp_nonpositive) over a sweep of
//! the domain).
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m512, __m512d, __mmask16, _CMP_GE_OQ, _CMP_NLT_UQ, _mm512_add_epi32, _mm512_add_pd,
    _mm512_add_ps, _mm512_castps_si512, _mm512_castps512_ps256, _mm512_castsi512_ps,
    _mm512_cmp_ps_mask, _mm512_cvtps_pd, _mm512_extractf32x8_ps, _mm512_fmadd_ps, _mm512_fnmadd_ps,
    _mm512_loadu_ps, _mm512_mask_loadu_ps, _mm512_maskz_mov_ps, _mm512_max_ps, _mm512_min_ps,
    _mm512_mul_ps, _mm512_set1_epi32, _mm512_set1_ps, _mm512_setzero_pd, _mm512_slli_epi32,
    _mm512_storeu_pd, _mm512_storeu_ps, _mm512_sub_epi32, _mm512_sub_ps,
};

use super::exp::{C2, C3, C4, C5, C6, EXP_CUTOFF, LN2_HI, LN2_LO, LOG2_E, MAGIC};
use super::kernel::{BLOCK, LANES, sum_lanes};

/// [`exp_nonpositive`](super::exp::exp_nonpositive) on 16 lanes: the same IEEE
/// operations (each `mul_add` one fused multiply-add), so the same bits.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn exp16(y: __m512) -> __m512 {
    let t = _mm512_fmadd_ps(y, _mm512_set1_ps(LOG2_E), _mm512_set1_ps(MAGIC));
    let n = _mm512_sub_ps(t, _mm512_set1_ps(MAGIC));
    // fma(−n, c, a) = −(n·c) + a exactly: vfnmadd.
    let r = _mm512_fnmadd_ps(
        n,
        _mm512_set1_ps(LN2_LO),
        _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), y),
    );
    let mut q = _mm512_fmadd_ps(_mm512_set1_ps(C6), r, _mm512_set1_ps(C5));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(C4));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(C3));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(C2));
    let p = _mm512_add_ps(
        _mm512_fmadd_ps(q, _mm512_mul_ps(r, r), r),
        _mm512_set1_ps(1.0),
    );
    let biased = _mm512_add_epi32(
        _mm512_sub_epi32(
            _mm512_castps_si512(t),
            _mm512_set1_epi32(MAGIC.to_bits() as i32),
        ),
        _mm512_set1_epi32(127),
    );
    let v = _mm512_mul_ps(p, _mm512_castsi512_ps(_mm512_slli_epi32::<23>(biased)));
    // `!(y < cutoff)`: true for NaN, which keeps its NaN.
    let keep = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(y, _mm512_set1_ps(EXP_CUTOFF));
    _mm512_maskz_mov_ps(keep, v)
}

/// Sixteen `f64` accumulators as two registers of eight (lane `j` of `lo`/`hi` is lane
/// `j`/`8 + j` of the portable code's 16).
#[derive(Clone, Copy)]
struct Acc {
    lo: __m512d,
    hi: __m512d,
}

impl Acc {
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn zero() -> Self {
        Acc {
            lo: _mm512_setzero_pd(),
            hi: _mm512_setzero_pd(),
        }
    }

    /// Adds the 16 `f32` of `e`, converted exactly, lane by lane.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn add(&mut self, e: __m512) {
        self.lo = _mm512_add_pd(self.lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        self.hi = _mm512_add_pd(self.hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps::<1>(e)));
    }

    /// The fixed pairwise tree over the 16 lanes ([`sum_lanes`]).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn total(self) -> f64 {
        let mut a = [0f64; LANES];
        // SAFETY: `a` holds 16 `f64`: two unaligned 512-bit stores of 8 each.
        unsafe {
            _mm512_storeu_pd(a.as_mut_ptr(), self.lo);
            _mm512_storeu_pd(a.as_mut_ptr().add(LANES / 2), self.hi);
        }
        sum_lanes(&a)
    }
}

/// What one read of a block produced.
pub(crate) struct Fused {
    /// The block maximum (`−∞` if the block has no value above `−∞`; NaN ignored).
    pub bm: f32,
    /// `(s, st, t)` relative to the `m` passed in (see [`block`]).
    pub sums: (f64, f64, f64),
}

/// One read of a block `xb` (`≤` [`BLOCK`] logits): if `MAX`, the block maximum over 16
/// lanes (and, if `TOP2`, the per-lane top-2 `t1 ≥ t2` carried across the row); and
/// the block sums relative to `m` — `Σ exp(x − m)`, `Σ exp((x − m)·inv_tau)` (if
/// `TEMPER`), `Σ exp(x − m)·clamp(x − m)` (if `ENT`) — exactly as
/// `kernel::block_sums` computes them. The caller passes the running maximum as `m`
/// and discards the sums (recomputing them with `MAX = false`) when the block maximum
/// exceeds it: below the maximum the sums are meaningless (the `exp` is only defined
/// for non-positive arguments) but harmless.
///
/// The ids past the block's last 16-multiple are read with a masked load as `−∞`, which
/// changes no maximum and adds `exp(−∞) = 0`, as the portable code's padding does.
#[inline]
#[target_feature(enable = "avx2,fma,avx512f,avx512dq,avx512vl,avx512bw")]
pub(crate) fn block<const MAX: bool, const TOP2: bool, const TEMPER: bool, const ENT: bool>(
    xb: &[f32],
    m: f32,
    inv_tau: f32,
    t1: &mut [f32; LANES],
    t2: &mut [f32; LANES],
) -> Fused {
    debug_assert!(xb.len() <= BLOCK);
    let neg_inf = _mm512_set1_ps(f32::NEG_INFINITY);
    let mv = _mm512_set1_ps(m);
    let it = _mm512_set1_ps(inv_tau);
    let cut = _mm512_set1_ps(super::exp::EXP_CUTOFF);
    let mut lm = neg_inf;
    // SAFETY (both loads): `t1`, `t2` hold 16 `f32`.
    let mut v1 = unsafe { _mm512_loadu_ps(t1.as_ptr()) };
    let mut v2 = unsafe { _mm512_loadu_ps(t2.as_ptr()) };
    let mut s = Acc::zero();
    let mut st = Acc::zero();
    let mut t = Acc::zero();
    // The chunks of 16 ids, the last one completed with `−∞` by a masked load.
    let n = xb.len();
    let chunks = n.div_ceil(LANES);
    macro_rules! load {
        ($k:expr) => {{
            let k: usize = $k;
            let have = n - k * LANES;
            if have >= LANES {
                // SAFETY: ids `16k .. 16k + 16` exist: one unaligned 512-bit load.
                unsafe { _mm512_loadu_ps(xb.as_ptr().add(k * LANES)) }
            } else {
                let mask: __mmask16 = (1u16 << have) - 1;
                // SAFETY: the mask enables only the `have < 16` lanes that exist;
                // masked-off lanes are not read and take `−∞`.
                unsafe { _mm512_mask_loadu_ps(neg_inf, mask, xb.as_ptr().add(k * LANES)) }
            }
        }};
    }
    // One chunk: the maximum lanes (if `MAX`) and the weights `(e, e·clamp(y), e_τ)`.
    // A macro rather than a closure, so that the code is compiled with this function's
    // target features for certain.
    macro_rules! weights {
        ($x:expr) => {{
            let x: __m512 = $x;
            if MAX {
                lm = _mm512_max_ps(x, lm);
                if TOP2 {
                    v2 = _mm512_max_ps(_mm512_min_ps(x, v1), v2);
                    v1 = _mm512_max_ps(x, v1);
                }
            }
            let y = _mm512_sub_ps(x, mv);
            let e = exp16(y);
            // e·clamp(y): y below the cut-off (−∞ included) counts as 0; NaN too (its
            // weight is NaN already).
            let ey = if ENT {
                let keep = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(y, cut);
                _mm512_mul_ps(e, _mm512_maskz_mov_ps(keep, y))
            } else {
                e
            };
            let et = if TEMPER {
                exp16(_mm512_mul_ps(y, it))
            } else {
                e
            };
            (e, ey, et)
        }};
    }
    // Chunks in pairs: each pair's weights summed in `f32`, then into the `f64` lanes.
    let mut k = 0;
    while k + 1 < chunks {
        let (e0, ey0, et0) = weights!(load!(k));
        let (e1, ey1, et1) = weights!(load!(k + 1));
        s.add(_mm512_add_ps(e0, e1));
        if ENT {
            t.add(_mm512_add_ps(ey0, ey1));
        }
        if TEMPER {
            st.add(_mm512_add_ps(et0, et1));
        }
        k += 2;
    }
    if k < chunks {
        let (e, ey, et) = weights!(load!(k));
        s.add(e);
        if ENT {
            t.add(ey);
        }
        if TEMPER {
            st.add(et);
        }
    }
    if TOP2 {
        // SAFETY (both stores): `t1`, `t2` hold 16 `f32`.
        unsafe {
            _mm512_storeu_ps(t1.as_mut_ptr(), v1);
            _mm512_storeu_ps(t2.as_mut_ptr(), v2);
        }
    }
    let bm = if MAX {
        let mut l = [0f32; LANES];
        // SAFETY: `l` holds 16 `f32`.
        unsafe { _mm512_storeu_ps(l.as_mut_ptr(), lm) };
        super::kernel::reduce_max(&l)
    } else {
        f32::NEG_INFINITY
    };
    Fused {
        bm,
        sums: (
            s.total(),
            if TEMPER { st.total() } else { 0.0 },
            if ENT { t.total() } else { 0.0 },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::exp::exp_nonpositive;
    use crate::backend::cpu::kernel::Simd;

    /// `exp16` returns `exp_nonpositive`'s bits on a sweep of the non-positive `f32`
    /// (every 61st bit pattern from `−0` to `−∞`), specials and NaN.
    #[test]
    fn exp16_matches_the_scalar_exp() {
        if !Simd::Avx512.is_available() {
            return;
        }
        let mut ys: Vec<f32> = (0x8000_0000u32..=0xff80_0000)
            .step_by(61)
            .map(f32::from_bits)
            .collect();
        ys.extend([
            0.0,
            -0.0,
            EXP_CUTOFF,
            -87.000_01,
            f32::NEG_INFINITY,
            f32::NAN,
            -1e-45,
        ]);
        while !ys.len().is_multiple_of(16) {
            ys.push(-1.0);
        }
        let mut out = [0f32; 16];
        for c in ys.chunks_exact(16) {
            // SAFETY: AVX-512 was checked above; `c` and `out` hold 16 `f32`.
            unsafe {
                let e = exp16(_mm512_loadu_ps(c.as_ptr()));
                _mm512_storeu_ps(out.as_mut_ptr(), e);
            }
            for (&y, &o) in c.iter().zip(&out) {
                let want = exp_nonpositive(y);
                assert!(
                    want.to_bits() == o.to_bits() || (want.is_nan() && o.is_nan()),
                    "exp16({y:e}) = {o:e}, scalar {want:e}"
                );
            }
        }
    }
}
