//! A vectorisable `exp` for the non-positive `f32` arguments of a shifted softmax.
//!
//! Every exponential the CPU backend evaluates has the form `exp(y)` with `y = ℓ − m ≤ 0`
//! (or `(ℓ − m)/τ`), so one branch-free routine serves all of them:
//!
//! 1. **Range reduction** (Cody–Waite): `n = round(y·log₂e)` by the magic-number trick
//!    (`fma(y, log₂e, 1.5·2²³) − 1.5·2²³` rounds to the nearest integer in `f32`), then
//!    `r = fma(−n, c₂, fma(−n, c₁, y))` with `c₁ = 0.693359375` (9 significant bits, so
//!    `n·c₁` is exact for `|n| ≤ 2¹⁵`) and `c₂ = ln 2 − c₁`; `|r| ≤ ln2/2` up to rounding.
//! 2. **Polynomial**: `exp(r) ≈ 1 + r + r²·q(r)` with `q` of degree 4 interpolating
//!    `(eʳ − 1 − r)/r²` at the 5 Chebyshev nodes of `[−a, a]`, `a = 1.002·ln2/2`
//!    (near-minimax; coefficients rounded to `f32`, `q(0) = 1/2` exactly): approximation
//!    error `≤ 1.03·10⁻⁸` relative, below the `f32` rounding. Horner's scheme in fused
//!    multiply-adds, then `p = fma(q, r·r, r) + 1`.
//! 3. **Scaling** by `2ⁿ`, built from the exponent bits (`n ∈ [−126, 0]`, a normal number,
//!    so the product is exact).
//!
//! **Fused multiply-adds are part of the contract.** Every `fma` above is one IEEE
//! fused multiply-add (a single rounding: [`f32::mul_add`]) and every other operation a
//! plain IEEE `+`, `−` or `×`, so the result is defined bit for bit: the AVX2 and AVX-512
//! builds compile each `mul_add` to one `vfmadd` instruction, the CUDA kernel calls
//! `fmaf` (also a single rounding), and the portable build computes the same fused result
//! (in hardware where the target has FMA, e.g. aarch64; otherwise in `libm`'s `fmaf`,
//! exact but slow — every `x86_64` CPU since 2013 takes the AVX2 path instead). Fusing
//! moves the additions off the floating-point adder ports, which the separate-operation
//! version saturated: the backend's pass runs about 25 % faster (`docs/performance.md`).
//!
//! Arguments below [`EXP_CUTOFF`] (`−87`, where `exp` leaves the normal `f32` range),
//! `−∞` included, give exactly `0`: their true values are below `1.7·10⁻³⁸`, invisible in
//! a sum whose largest term is `exp(0) = 1`, and an impossible token keeps probability
//! exactly 0. A NaN argument gives NaN (the backend relies on this to detect NaN logits).
//! `exp(0) = 1` exactly.
//!
//! **Accuracy**: the relative error against the `f64` `exp` of the same `f32` argument is
//! at most `8.95·10⁻⁸` (`1.5·2⁻²⁴`, one and a half `f32` ulps of the result at most) over
//! **every** `f32` of the domain `[−87, 0]` (an exhaustive run over all 1,118,699,521 of
//! them, worst at `y = −16.288475`); [`EXP_MAX_REL_ERROR`] `= 9·10⁻⁸` is the bound the
//! backend's tolerances use, and `tests/backend_cpu.rs` re-measures it on every 37th `f32`
//! of the domain plus the edges.
//!
//! Only IEEE `+ − ×`, fused multiply-adds, integer adds and shifts and a compare-select
//! are used: the scalar function and its compiled copies (portable, AVX2, AVX-512) return
//! identical bits.
//!
//! [`sum_exp_below`] sums the exponentials of a slice with this routine on the fastest
//! instruction set of the machine: `examples/roofline.rs` times it as the machine's exp
//! throughput (the compute half of the roofline of `docs/performance.md`).
#![allow(unsafe_code)]

use super::kernel::Simd;
use crate::error::{Error, Result};

/// Arguments below this give `exp = 0` exactly (see the module docs).
pub const EXP_CUTOFF: f32 = -87.0;

/// A bound on the relative error of [`exp_nonpositive`] against the `f64` `exp` on
/// `[EXP_CUTOFF, 0]`: the exhaustive maximum over all `f32` arguments is `8.95·10⁻⁸`.
pub const EXP_MAX_REL_ERROR: f64 = 9.0e-8;

pub(crate) const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// `1.5·2²³`: adding and subtracting it rounds an `f32` of magnitude `< 2²²` to an integer.
pub(crate) const MAGIC: f32 = 12_582_912.0;
/// The high part of `ln 2` (9 significant bits).
pub(crate) const LN2_HI: f32 = 0.693_359_4;
/// `ln 2 − LN2_HI`.
pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
/// `q(r) = C2 + C3·r + C4·r² + C5·r³ + C6·r⁴` (see the module docs).
pub(crate) const C2: f32 = 0.5;
pub(crate) const C3: f32 = 0.166_665_76;
pub(crate) const C4: f32 = 0.041_666_553;
pub(crate) const C5: f32 = 0.008_363_293;
pub(crate) const C6: f32 = 0.001_392_632_6;

/// `exp(y)` for `y ≤ 0` in `f32`, branch-free and vectorisable (see the module docs):
/// relative error `≤` [`EXP_MAX_REL_ERROR`] on `[EXP_CUTOFF, 0]`, exactly `0` below
/// [`EXP_CUTOFF`] (and for `−∞`), NaN for NaN. Positive arguments are outside the
/// contract (the result is then meaningless but never UB).
///
/// ```
/// use discrete_diffusion::backend::cpu::exp::{exp_nonpositive, EXP_MAX_REL_ERROR};
/// assert_eq!(exp_nonpositive(0.0), 1.0);
/// assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
/// let y = -3.25f32;
/// let rel = (exp_nonpositive(y) as f64 / (y as f64).exp() - 1.0).abs();
/// assert!(rel <= EXP_MAX_REL_ERROR);
/// ```
#[inline(always)]
#[allow(clippy::neg_cmp_op_on_partial_ord)] // `!(y < c)` is meant: true for NaN
pub fn exp_nonpositive(y: f32) -> f32 {
    let t = y.mul_add(LOG2_E, MAGIC);
    let n = t - MAGIC;
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, y));
    let q = C6
        .mul_add(r, C5)
        .mul_add(r, C4)
        .mul_add(r, C3)
        .mul_add(r, C2);
    let p = q.mul_add(r * r, r) + 1.0;
    // The integer n sits in the low mantissa bits of t; 2^n has biased exponent n + 127.
    let bits = t
        .to_bits()
        .wrapping_sub(MAGIC.to_bits())
        .wrapping_add(127)
        .wrapping_shl(23);
    let v = p * f32::from_bits(bits);
    // `!(y < cutoff)` keeps NaN (one unordered compare).
    if !(y < EXP_CUTOFF) { v } else { 0.0 }
}

/// Ids per block of [`sum_exp_below`]: `f32` lane sums of a block are added in `f64`.
const SUM_BLOCK: usize = 256;

/// `Σ_k exp(x_k − m)` for an upper bound `m ≥ max_k x_k`: the normaliser of a softmax whose
/// maximum (or any upper bound of it) is known, in one read of `xs`, with
/// [`exp_nonpositive`] on the fastest instruction set of the machine ([`Simd::best`]).
///
/// Sixteen `f32` lanes accumulate the weights of each block of 256 (16 per lane), and the
/// lane sums are added in `f64`. Each weight carries the exp's error and the `f32`
/// rounding of its shift `x − m`, and each lane sum 15 roundings, so the relative error is
/// at most `EXP_MAX_REL_ERROR + 2⁻²⁴·max_k |x_k − m| + 15·2⁻²⁴` to first order (worst
/// case `≈ 10⁻⁶` for `|x − m| ≤ 1`; typically `~10⁻⁷`). Cost: one `exp` per element, no
/// second pass — it is the kernel `examples/roofline.rs` times as the machine's exp
/// throughput.
///
/// # Errors
///
/// `m` not finite (`−∞` included: use `0` for an empty sum), or an `x_k > m`, or a NaN
/// `x_k` (the upper bound is checked in the same pass).
///
/// ```
/// use discrete_diffusion::backend::cpu::exp::sum_exp_below;
/// let xs = [0.0f32, -1.0, -2.0, f32::NEG_INFINITY];
/// let want = 1.0 + (-1.0f64).exp() + (-2.0f64).exp();
/// assert!((sum_exp_below(&xs, 0.0)? - want).abs() < 1e-6);
/// assert!(sum_exp_below(&xs, -0.5).is_err()); // 0 > −0.5 is not below the bound
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
pub fn sum_exp_below(xs: &[f32], m: f32) -> Result<f64> {
    if !m.is_finite() {
        return Err(Error::invalid(
            "m",
            format!("the upper bound must be finite, got {m}"),
        ));
    }
    let (sum, max) = match Simd::best() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Simd::best()` returns `Avx512` only when every feature
        // `sum_exp_avx512` enables was detected at run time.
        Simd::Avx512 => unsafe { sum_exp_avx512(xs, m) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, for AVX2 and FMA.
        Simd::Avx2 => unsafe { sum_exp_avx2(xs, m) },
        _ => sum_exp_impl(xs, m),
    };
    // A NaN element makes the sum NaN (its weight is NaN); nothing else can.
    if max > m || sum.is_nan() {
        let (k, x) = xs
            .iter()
            .enumerate()
            .find(|&(_, &x)| x > m || x.is_nan())
            .map_or((0, f32::NAN), |(k, &x)| (k, x));
        return Err(Error::invalid(
            "xs",
            format!("element {k} = {x} is not ≤ the upper bound m = {m}"),
        ));
    }
    Ok(sum)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn sum_exp_avx2(xs: &[f32], m: f32) -> (f64, f32) {
    sum_exp_impl(xs, m)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512dq,avx512vl,avx512bw")]
fn sum_exp_avx512(xs: &[f32], m: f32) -> (f64, f32) {
    sum_exp_impl(xs, m)
}

/// The sum and the maximum of `xs` (NaN ignored by the maximum; it makes the sum NaN).
#[inline(always)]
fn sum_exp_impl(xs: &[f32], m: f32) -> (f64, f32) {
    const L: usize = 16;
    let mut total = 0f64;
    let mut mx = [f32::NEG_INFINITY; L];
    for block in xs.chunks(SUM_BLOCK) {
        let mut acc = [0f32; L];
        let mut chunks = block.chunks_exact(L);
        for c in &mut chunks {
            for j in 0..L {
                mx[j] = if c[j] > mx[j] { c[j] } else { mx[j] };
                acc[j] += exp_nonpositive(c[j] - m);
            }
        }
        for (j, &x) in chunks.remainder().iter().enumerate() {
            mx[j] = if x > mx[j] { x } else { mx[j] };
            acc[j] += exp_nonpositive(x - m);
        }
        total += acc.iter().map(|&a| a as f64).sum::<f64>();
    }
    (total, mx.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_exp_below_matches_f64_and_rejects_bad_input() {
        let xs: Vec<f32> = (0..1000).map(|k| -((k * 37 % 101) as f32) * 0.05).collect();
        let want: f64 = xs.iter().map(|&x| (x as f64 - 0.5).exp()).sum();
        let got = sum_exp_below(&xs, 0.5).unwrap();
        // The documented bound (first order; 1 % slack for the second-order terms).
        let u = 2f64.powi(-24);
        let spread = xs
            .iter()
            .map(|&x| (x as f64 - 0.5).abs())
            .fold(0.0, f64::max);
        let bound = 1.01 * (EXP_MAX_REL_ERROR + u * spread + 15.0 * u);
        assert!(
            (got / want - 1.0).abs() <= bound,
            "{got} vs {want}, bound {bound:e}"
        );
        assert_eq!(sum_exp_below(&[], 0.0).unwrap(), 0.0);
        assert_eq!(sum_exp_below(&[f32::NEG_INFINITY], 0.0).unwrap(), 0.0);
        assert!(sum_exp_below(&xs, -0.01).is_err());
        assert!(sum_exp_below(&xs, f32::INFINITY).is_err());
        assert!(sum_exp_below(&xs, f32::NAN).is_err());
        let mut bad = xs.clone();
        bad[777] = f32::NAN;
        let e = sum_exp_below(&bad, 0.5).unwrap_err().to_string();
        assert!(e.contains("777"), "{e}");
        let mut above = xs.clone();
        above[301] = 0.75;
        let e = sum_exp_below(&above, 0.5).unwrap_err().to_string();
        assert!(e.contains("301") && e.contains("0.75"), "{e}");
        // Any upper bound will do, not only the maximum: here every weight is below e^-40.
        assert!(sum_exp_below(&xs, 40.0).unwrap() < 1e-10);
    }

    #[test]
    fn special_values() {
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-0.0), 1.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpositive(-87.000_01), 0.0);
        assert_eq!(exp_nonpositive(-1e30), 0.0);
        assert!(exp_nonpositive(f32::NAN).is_nan());
        assert!(exp_nonpositive(EXP_CUTOFF) > 0.0);
        assert!((LN2_HI as f64 + LN2_LO as f64 - std::f64::consts::LN_2).abs() < 1e-11);
        assert_eq!(LN2_HI as f64, 355.0 / 512.0);
    }

    #[test]
    fn accurate_on_a_grid() {
        let mut worst = 0f64;
        for k in 0..87_000 {
            let y = -(k as f32) * 1e-3;
            let rel = (exp_nonpositive(y) as f64 / (y as f64).exp() - 1.0).abs();
            worst = worst.max(rel);
        }
        assert!(worst <= EXP_MAX_REL_ERROR, "worst {worst:e}");
    }
}
