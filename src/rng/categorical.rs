//! Categorical draws in `f64`: from logits by the exponential race or by inverse CDF, and
//! from unnormalised non-negative masses (DESIGN §3.6).
//!
//! | function | input | randomness | passes | per element |
//! |---|---|---|---|---|
//! | [`sample_logits`] | `f32`/`f64` logits | one 53-bit uniform **per element** ([`CounterRng`]) | 1 | 1 exp, ≤ 1 log |
//! | [`sample_logits_inverse_cdf`] | `f32`/`f64` logits | one uniform `u` **per row** | 2 | 2 exp |
//! | [`sample_masses`] | `f64` masses `≥ 0` | one uniform `u` per row | 2 | 1 add |
//! | [`sample_masses_race`] | `f64` masses `≥ 0` | one 53-bit uniform per element | 2 | 1 mul, ≤ 1 log |
//!
//! All of them return a [`Draw`]: the token and its exact log-probability under the
//! normalised input, computed in the same pass(es).
//!
//! # Precision policy
//!
//! **Every draw is decided in `f64` from 53-bit uniforms.** Logits may arrive as `f32`;
//! each one is widened to `f64` before it is exponentiated, and the normaliser is
//! accumulated in `f64` with Neumaier compensation (so `log_prob` is accurate to a few
//! ulps whatever `V`). The policy in full, with the evidence, is in `docs/rng.md`.
//!
//! *Why not `f32` Gumbel-max.* The common GPU recipe `argmax_i ℓ_i + g_i`,
//! `g_i = −ln(−ln u_i)` with `u_i` an `f32` uniform carrying 24 random bits, is exact only
//! in infinite precision. With 24 bits, `u ≤ 1 − 2⁻²⁴`, so `g ≤ −ln(−ln(1 − 2⁻²⁴)) ≈ 16.64`:
//! the Gumbel tail is **truncated**, and the exponential `E = −ln u` it stands for never
//! falls below `≈ 2⁻²⁴` (its small values are rounded to a `2⁻²⁴` grid). A token whose
//! probability is small compared with `2⁻²⁴` can then (almost) never win, and every token
//! loses up to `2⁻²⁴` of absolute probability to the rounding: over a vocabulary of
//! `V = 2¹⁸ = 262,144` tokens that is up to `V · 2⁻²⁴ = 1/64` of the mass, taken from the
//! tail and given to the head — an **effective temperature below 1**. Zheng et al. 2024,
//! *Masked diffusion models are secretly time-agnostic masked models and exploit
//! inaccurate categorical sampling* (arXiv:2409.02908), showed that this truncation is
//! what lowered the generative perplexity (and the token diversity) of masked diffusion
//! models sampled with many steps; they fixed it with 64-bit Gumbel noise. vLLM moved its
//! Gumbel / exponential-race sampler to `f64` noise for the same reason; its regression
//! test is a 262,144-way categorical whose tail tokens each sit `20.5` nats below the head:
//! in `10⁵` rows the tail is hit `≈ 32.8` times in expectation, `f32` noise hit it `0`
//! times, `f64` noise `32` times (vllm-project/vllm#43150). `tests/rng_categorical.rs`
//! runs a (conditioned, hence 100× cheaper) version of that experiment against this
//! module, with an `f32` Gumbel foil that provably fails it.
//!
//! *What `f64` with 53 bits buys.* The race uses `E = −ln U`, `U = (k + 1) · 2⁻⁵³ ∈ (0, 1]`
//! ([`CounterRng::exponential`]): its tail reaches `53 ln 2 ≈ 36.7` (probability `2⁻⁵³`
//! beyond) and its smallest positive value is `2⁻⁵³ ≈ 1.1·10⁻¹⁶`. The inverse-CDF draw with
//! a 53-bit `u` gives each token its probability to within `2⁻⁵³` absolute. Tokens are
//! therefore sampled correctly down to probabilities `~10⁻¹⁴` (relative error
//! `≈ 2⁻⁵³ / p`), and the whole tail of a `2¹⁸`-way row is biased by at most
//! `V · 2⁻⁵³ ≈ 3·10⁻¹¹` — nine orders of magnitude below the `f32` recipe. Weights
//! `exp(ℓ_i − m)` that underflow `f64` (logits more than ~745 nats below the maximum) are
//! treated as probability 0.
//!
//! # Cost and which method to use
//!
//! * [`sample_logits`] (exponential race) — **the default for drawing tokens from model
//!   logits** (ancestral / MDLM / MD4 / LLaDA / Dream / SEDD steps, DFM jumps, first-hitting
//!   draws). One pass, no cumulative sum, one random number per element, one `exp` per
//!   element (shared with the log-normaliser), and a `ln` only for elements that pass a
//!   cheap bound (`1 − U` already exceeds the winning threshold for nearly all losers).
//!   Element `i` always consumes the `i`-th number of the stream, even when its logit is
//!   `-inf`, so the noise attached to a token depends only on
//!   `(key, purpose, step, position, i)`: masking a losing token, top-k / top-p filtering
//!   that keeps the winner, or evaluating the same row on another thread or device leaves
//!   the draw unchanged (a coupling that makes A/B comparisons of logit transforms exact).
//! * [`sample_logits_inverse_cdf`] — one uniform per row, two passes over the logits (a row
//!   of 32k `f32` logits is 128 KB and stays in L2 for the second pass). Use it when the
//!   caller owns the uniform: antithetic or stratified draws, quasi-random sequences,
//!   monotone coupling of two rows through one `u`, or parity with a one-uniform-per-row
//!   GPU kernel.
//! * [`sample_masses`] — explicit `f64` weights that are already normalised or nearly so:
//!   posteriors `q(x_s | x_t, x̂₀)` built in `f64`, transition rows, τ-leaping jump targets.
//!   One uniform per row.
//! * [`sample_masses_race`] — the same weights, with the per-element coupling of the race.
//! * Binary decisions (MDLM "stay masked with probability `s/t`") are a single uniform
//!   compared with a probability — never a categorical draw and never a noise tensor.
//!
//! # Randomness contract
//!
//! The races draw `U_i = u64_to_open_unit_f64(next_u64())` from the [`CounterRng`] passed
//! in, one per element in index order; with a fresh `CounterRng::new(key, purpose, step,
//! position)`, element `i` uses `u64_at(key, purpose, step, position, i)`. On `Err` the
//! generator has advanced by an unspecified amount.

use num_traits::Float;

use crate::error::{Error, Result};
use crate::math::CompensatedSum;
use crate::rng::philox::{CounterRng, u64_to_open_unit_f64};
use crate::validate;

/// One categorical draw: the token and its log-probability under the normalised input.
///
/// For logits, `log_prob = ℓ_token − logsumexp(ℓ)`; for masses,
/// `log_prob = ln w_token − ln Σ_i w_i`. Always finite (a zero-probability state is never
/// drawn).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Draw {
    /// Index of the drawn state, `0..V`.
    pub token: u32,
    /// Natural log of the drawn state's probability, `≤ 0`.
    pub log_prob: f64,
}

#[inline(always)]
fn f64_of<F: Float>(x: F) -> f64 {
    x.to_f64().unwrap_or(f64::NAN)
}

fn check_len(arg: &'static str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::invalid(
            arg,
            "empty: a categorical distribution needs at least one state",
        ));
    }
    if n > u32::MAX as usize {
        return Err(Error::invalid(
            arg,
            format!("{n} states exceed u32 token ids"),
        ));
    }
    Ok(())
}

fn check_u(u: f64) -> Result<f64> {
    if !(0.0..1.0).contains(&u) {
        return Err(Error::invalid(
            "u",
            format!("{u} is not a uniform in [0, 1)"),
        ));
    }
    Ok(u)
}

fn non_finite(arg: &'static str, index: usize, value: f64) -> Error {
    Error::NonFinite { arg, index, value }
}

fn all_impossible(arg: &'static str, n: usize) -> Error {
    Error::invalid(
        arg,
        format!("all {n} entries are -inf: no state has positive probability"),
    )
}

/// `e · exp(d)` with `0 · exp(+∞) = 0` (an arrival at time 0 stays at time 0).
#[inline(always)]
fn rescale(e: f64, d: f64) -> f64 {
    if e == 0.0 { 0.0 } else { e * d.exp() }
}

/// Validated total of unnormalised masses: finite, non-negative, positive and finite sum.
fn masses_total(masses: &[f64]) -> Result<f64> {
    check_len("masses", masses.len())?;
    let total = validate::masses("masses", masses)?;
    if !total.is_finite() {
        return Err(Error::invalid(
            "masses",
            "total mass overflows f64; rescale the masses",
        ));
    }
    Ok(total)
}

/// Draws a token from `softmax(logits)` by the **exponential race** (Gumbel-max) in `f64`.
///
/// With `E_i ~ Exp(1)` i.i.d., the winner
/// `argmin_i E_i / exp(ℓ_i − m) = argmax_i (ℓ_i − ln E_i)` is distributed as
/// `softmax(ℓ)` (the first arrival of independent Poisson clocks with rates
/// `exp(ℓ_i)`; equivalently Gumbel-max, since `−ln E` is standard Gumbel — Yellott 1977;
/// Maddison, Tarlow & Minka 2014). `E_i = −ln U_i` with `U_i` the `i`-th 53-bit uniform in
/// `(0, 1]` of `rng` (see the module's randomness contract).
///
/// The same single pass keeps an online max `m` and rescaled normaliser
/// `s = Σ_j exp(ℓ_j − m)` (rescaled by `exp(m_old − m_new)` when the max moves), so the
/// result carries `log_prob = (ℓ_token − m) − ln s = ℓ_token − logsumexp(ℓ)`.
///
/// `-inf` logits are never chosen (their number is still consumed). Ties in arrival time
/// (probability `~2⁻⁵³`) go to the lower index. Cost: one random number and one `exp` per
/// element, a `ln` only when the bound `E_i ≥ 1 − U_i` cannot reject the element. See the
/// module docs for the precision policy.
///
/// # Errors
/// [`Error::InvalidArgument`] for empty logits, more than `u32::MAX` of them, or all
/// `-inf`; [`Error::NonFinite`] naming the first `NaN` / `+inf` entry.
///
/// ```
/// use discrete_diffusion::rng::{CounterRng, Purpose, RngKey};
/// use discrete_diffusion::rng::categorical::sample_logits;
///
/// let logits = [0.5_f32, f32::NEG_INFINITY, 2.0, -1.0];
/// let key = RngKey::for_stream(7, 0);
/// let mut rng = CounterRng::new(key, Purpose::CATEGORICAL, /*step*/ 3, /*position*/ 12);
/// let d = sample_logits(&logits, &mut rng).unwrap();
/// assert_ne!(d.token, 1); // -inf is impossible
/// let lse = discrete_diffusion::math::logsumexp(&logits).unwrap();
/// assert!((d.log_prob - (logits[d.token as usize] as f64 - lse)).abs() < 1e-12);
/// // Same address, same draw.
/// let mut again = CounterRng::new(key, Purpose::CATEGORICAL, 3, 12);
/// assert_eq!(sample_logits(&logits, &mut again).unwrap(), d);
/// ```
pub fn sample_logits<F: Float>(logits: &[F], rng: &mut CounterRng) -> Result<Draw> {
    check_len("logits", logits.len())?;
    let mut m = f64::NEG_INFINITY; // running max of the finite logits
    let mut s = CompensatedSum::default(); // Σ_j exp(ℓ_j − m) over the elements seen so far
    let mut best = usize::MAX;
    let mut best_l = f64::NEG_INFINITY; // ℓ of the current winner
    let mut best_e = f64::INFINITY; // its E (no winner yet: arrives never)
    let mut t_best = f64::INFINITY; // its arrival time in the scale of m: E_b · exp(m − ℓ_b)
    for (i, &l) in logits.iter().enumerate() {
        let x = f64_of(l);
        let bits = rng.next_u64();
        if x == f64::NEG_INFINITY {
            continue;
        }
        if x.is_nan() || x == f64::INFINITY {
            return Err(non_finite("logits", i, x));
        }
        let u = u64_to_open_unit_f64(bits);
        if x > m {
            // New maximum: rescale the normaliser, and race the new element (weight 1 in
            // the new scale, arrival E_i) against the old winner's rescaled arrival.
            s.scale((m - x).exp());
            s.add(1.0);
            let e = -u.ln();
            let t_old = rescale(best_e, x - best_l);
            if e < t_old {
                best = i;
                best_l = x;
                best_e = e;
                t_best = e;
            } else {
                t_best = t_old;
            }
            m = x;
        } else {
            let w = (x - m).exp();
            s.add(w);
            // Element i wins iff E_i < t_best · w. Since E_i = −ln U_i ≥ 1 − U_i (exactly
            // representable), `1 − U_i ≥ threshold` rejects without a logarithm.
            let threshold = t_best * w;
            if 1.0 - u < threshold {
                let e = -u.ln();
                if e < threshold {
                    best = i;
                    best_l = x;
                    best_e = e;
                    t_best = rescale(e, m - x);
                }
            }
        }
    }
    if best == usize::MAX {
        return Err(all_impossible("logits", logits.len()));
    }
    Ok(Draw {
        token: best as u32,
        log_prob: (best_l - m) - s.value().ln(),
    })
}

/// Draws a token from `softmax(logits)` by inverse CDF with one caller-supplied uniform
/// `u ∈ [0, 1)`, in `f64`.
///
/// Pass 1 computes `m = max ℓ` and `s = Σ_i exp(ℓ_i − m)` online; pass 2 walks the
/// cumulative sums `c_k = Σ_{i ≤ k} exp(ℓ_i − m)` (both compensated) and returns the first `k` with
/// `c_k > u · s`, so `P(k) = exp(ℓ_k − m) / s = softmax(ℓ)_k` (to within the `2⁻⁵³`
/// resolution of a 53-bit `u`). Only positive weights advance the walk, so a `-inf`
/// (or underflowing) logit is never returned; if rounding leaves `u · s` at or beyond the
/// recomputed total (possible only as `u → 1`), the last positive-probability index is
/// returned. `log_prob = (ℓ_token − m) − ln s`.
///
/// The draw is monotone in `u` (a larger `u` never gives a smaller index), which is what
/// antithetic (`u`, `1 − u`) and stratified (`(k + v)/n`) schemes rely on.
///
/// # Errors
/// As [`sample_logits`]; [`Error::InvalidArgument`] naming `u` if `u ∉ [0, 1)` (or NaN).
///
/// ```
/// use discrete_diffusion::rng::categorical::sample_logits_inverse_cdf;
/// let logits = [0.0_f64, 3f64.ln()]; // p = [1/4, 3/4]
/// assert_eq!(sample_logits_inverse_cdf(&logits, 0.2).unwrap().token, 0);
/// assert_eq!(sample_logits_inverse_cdf(&logits, 0.3).unwrap().token, 1);
/// let d = sample_logits_inverse_cdf(&logits, 0.999).unwrap();
/// assert!((d.log_prob - 0.75f64.ln()).abs() < 1e-15);
/// ```
pub fn sample_logits_inverse_cdf<F: Float>(logits: &[F], u: f64) -> Result<Draw> {
    check_u(u)?;
    check_len("logits", logits.len())?;
    let mut m = f64::NEG_INFINITY;
    let mut acc = CompensatedSum::default();
    for (i, &l) in logits.iter().enumerate() {
        let x = f64_of(l);
        if x.is_nan() || x == f64::INFINITY {
            return Err(non_finite("logits", i, x));
        }
        if x > m {
            acc.scale((m - x).exp());
            acc.add(1.0);
            m = x;
        } else if x > f64::NEG_INFINITY {
            acc.add((x - m).exp());
        }
    }
    let s = acc.value();
    if m == f64::NEG_INFINITY {
        return Err(all_impossible("logits", logits.len()));
    }
    let ln_s = s.ln();
    let target = u * s;
    let mut c = CompensatedSum::default();
    let mut last = 0usize; // some positive-weight index always exists (the max)
    let mut last_l = m;
    for (i, &l) in logits.iter().enumerate() {
        let x = f64_of(l);
        let w = (x - m).exp();
        if w > 0.0 {
            c.add(w);
            last = i;
            last_l = x;
            if c.value() > target {
                break;
            }
        }
    }
    Ok(Draw {
        token: last as u32,
        log_prob: (last_l - m) - ln_s,
    })
}

/// Draws an index with probability `w_i / Σ_j w_j` from unnormalised non-negative
/// `f64` masses, by inverse CDF with one caller-supplied uniform `u ∈ [0, 1)`.
///
/// Returns the first `k` with `Σ_{i ≤ k} w_i > u · Σ_j w_j` (walking positive masses only,
/// so a zero mass is never returned; the rounding edge `u → 1` falls back to the last
/// positive mass). `log_prob = ln w_k − ln Σ_j w_j`. The total is computed with the same
/// left-to-right `f64` sum as the walk, so the walk's final cumulative sum equals it
/// exactly.
///
/// # Errors
/// [`Error::InvalidArgument`] for `u ∉ [0, 1)`, empty `masses`, more than `u32::MAX`
/// masses or a total that overflows; [`Error::NonFinite`] / [`Error::NotADistribution`]
/// for a non-finite or negative mass or a zero total.
///
/// ```
/// use discrete_diffusion::rng::categorical::sample_masses;
/// let w = [2.0, 0.0, 6.0]; // p = [1/4, 0, 3/4]
/// assert_eq!(sample_masses(&w, 0.24).unwrap().token, 0);
/// assert_eq!(sample_masses(&w, 0.26).unwrap().token, 2);
/// assert!((sample_masses(&w, 0.5).unwrap().log_prob - 0.75f64.ln()).abs() < 1e-15);
/// ```
pub fn sample_masses(masses: &[f64], u: f64) -> Result<Draw> {
    check_u(u)?;
    let total = masses_total(masses)?;
    let target = u * total;
    let mut c = 0.0;
    let mut last = 0usize;
    for (i, &w) in masses.iter().enumerate() {
        if w > 0.0 {
            c += w;
            last = i;
            if c > target {
                break;
            }
        }
    }
    Ok(Draw {
        token: last as u32,
        log_prob: masses[last].ln() - total.ln(),
    })
}

/// Draws an index with probability `w_i / Σ_j w_j` from unnormalised non-negative
/// `f64` masses by the **exponential race**: `argmin_i E_i / w_i`, `E_i ~ Exp(1)`.
///
/// Same randomness contract as [`sample_logits`] (element `i` consumes the `i`-th 53-bit
/// uniform of `rng`, zero masses included, and is never chosen when its mass is 0). The
/// first pass validates and totals the masses; the race runs on `w_i / Σ w` so that
/// arrival times neither overflow nor underflow for masses of any scale.
/// `log_prob = ln w_k − ln Σ_j w_j`.
///
/// # Errors
/// As [`sample_masses`] (without `u`).
///
/// ```
/// use discrete_diffusion::rng::{CounterRng, Purpose, RngKey};
/// use discrete_diffusion::rng::categorical::sample_masses_race;
/// let mut rng = CounterRng::new(RngKey::for_stream(1, 2), Purpose::CATEGORICAL, 0, 0);
/// let d = sample_masses_race(&[0.0, 1e-300, 3e-300], &mut rng).unwrap();
/// assert!(d.token == 1 || d.token == 2);
/// ```
pub fn sample_masses_race(masses: &[f64], rng: &mut CounterRng) -> Result<Draw> {
    let total = masses_total(masses)?;
    let inv_total = 1.0 / total;
    let mut best = usize::MAX;
    let mut t_best = f64::INFINITY; // E_b / p_b
    for (i, &mass) in masses.iter().enumerate() {
        let bits = rng.next_u64();
        if mass == 0.0 {
            continue;
        }
        let p = mass * inv_total;
        let threshold = t_best * p; // i wins iff E_i < E_b · p_i / p_b
        let u = u64_to_open_unit_f64(bits);
        if 1.0 - u < threshold {
            let e = -u.ln();
            if e < threshold {
                best = i;
                t_best = e / p;
            }
        }
    }
    if best == usize::MAX {
        // Unreachable: the largest mass has p ≥ 1/V > 0 and beats the initial t_best = ∞.
        return Err(Error::Numerical {
            what: "sample_masses_race",
            reason: "no positive mass survived normalisation".into(),
        });
    }
    Ok(Draw {
        token: best as u32,
        log_prob: masses[best].ln() - total.ln(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::philox::{Purpose, RngKey, u64_at};

    fn rng(pos: u32) -> CounterRng {
        CounterRng::new(RngKey::for_stream(11, 3), Purpose::CATEGORICAL, 5, pos)
    }

    /// The race written the slow, obvious way: argmax ℓ_i − ln E_i from the stateless stream.
    fn reference_race(logits: &[f64], pos: u32) -> usize {
        let key = RngKey::for_stream(11, 3);
        let mut best = (usize::MAX, f64::NEG_INFINITY);
        for (i, &l) in logits.iter().enumerate() {
            let e = -u64_to_open_unit_f64(u64_at(key, Purpose::CATEGORICAL, 5, pos, i as u64)).ln();
            let key_i = l - e.ln();
            if key_i > best.1 {
                best = (i, key_i);
            }
        }
        best.0
    }

    #[test]
    fn race_matches_gumbel_max_reference() {
        let rows: [&[f64]; 4] = [
            &[0.1, -0.3, 2.0, 1.9, -5.0],
            &[-5.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0], // increasing: max moves every step
            &[3.0, 3.0, 3.0, f64::NEG_INFINITY, 3.0],
            &[1e4, 1e4 - 1.0, -1e4, 1e4 - 0.5],
        ];
        for row in rows {
            for pos in 0..2000 {
                let d = sample_logits(row, &mut rng(pos)).unwrap();
                assert_eq!(
                    d.token as usize,
                    reference_race(row, pos),
                    "{row:?} pos {pos}"
                );
            }
        }
    }

    #[test]
    fn single_state_and_log_prob() {
        let d = sample_logits(&[f32::NEG_INFINITY, -7.0], &mut rng(0)).unwrap();
        assert_eq!(
            d,
            Draw {
                token: 1,
                log_prob: 0.0
            }
        );
        let d = sample_logits_inverse_cdf(&[-7.0_f32], 0.9).unwrap();
        assert_eq!(
            d,
            Draw {
                token: 0,
                log_prob: 0.0
            }
        );
        let d = sample_masses(&[0.0, 0.0, 5.0], 0.0).unwrap();
        assert_eq!(
            d,
            Draw {
                token: 2,
                log_prob: 0.0
            }
        );
        let d = sample_masses_race(&[0.0, 5.0], &mut rng(0)).unwrap();
        assert_eq!(
            d,
            Draw {
                token: 1,
                log_prob: 0.0
            }
        );
    }

    #[test]
    fn inverse_cdf_edges_never_return_zero_probability() {
        let below_one = 1.0 - f64::EPSILON / 2.0; // largest f64 below 1
        let l = [0.0_f64, 0.0, f64::NEG_INFINITY, f64::NEG_INFINITY];
        assert_eq!(sample_logits_inverse_cdf(&l, below_one).unwrap().token, 1);
        assert_eq!(sample_logits_inverse_cdf(&l, 0.0).unwrap().token, 0);
        let w = [0.0, 1.0, 1.0, 0.0];
        assert_eq!(sample_masses(&w, below_one).unwrap().token, 2);
        assert_eq!(sample_masses(&w, 0.0).unwrap().token, 1);
        // Weights so small relative to the head that they underflow count as zero.
        let l = [0.0_f64, -800.0];
        assert_eq!(sample_logits_inverse_cdf(&l, below_one).unwrap().token, 0);
    }
}
