//! Reparameterized discrete diffusion (RDM; Zheng, Yuan, Yu & Kong 2023, "A Reparameterized
//! Discrete Diffusion Model for Text Generation", §3–4; code HKUNLP/reparam-discrete-diffusion).
//!
//! # Mixture kernels
//!
//! RDM covers forward kernels that mix towards a fixed noise law `π` (`q_noise`):
//! `q(x_t | x_{t−1}) = β_t δ_{x_{t−1}} + (1 − β_t) π` and hence
//! `q(x_t | x_0) = ᾱ_t δ_{x_0} + (1 − ᾱ_t) π`, `ᾱ_t = ∏_{τ ≤ t} β_τ`. Absorbing diffusion is
//! `π = δ_mask`, multinomial (uniform) diffusion `π = 1/V`. Between any two steps `s < t`,
//! `q(x_t | x_s) = a δ_{x_s} + (1 − a) π` with `a = α_{t|s} = ᾱ_t / ᾱ_s`. A
//! [`MixtureSchedule`] holds `ᾱ_0 = 1 ≥ ᾱ_1 ≥ … ≥ ᾱ_T` and `π`.
//!
//! # The routing reformulation (paper §3, eq. 5–6) — derivation
//!
//! Bayes: `q(x_s = k | x_t = y, x_0) ∝ q(y | k) q(k | x_0)` with
//! `q(y | k) = a δ_{ky} + (1 − a) π_y` and `q(k | x_0) = ᾱ_s δ_{k x0} + (1 − ᾱ_s) π_k`.
//!
//! * **`b_t = 1` (`y = x_0`).** The normaliser is `q(y | x_0) = ᾱ_t + (1 − ᾱ_t) π_y`. For
//!   `k ≠ y` only the product `(1 − a) π_y · (1 − ᾱ_s) π_k` survives, so the posterior is
//!   `λ⁽¹⁾ δ_{x_t} + (1 − λ⁽¹⁾) π` with
//!   `1 − λ⁽¹⁾ = (1 − a)(1 − ᾱ_s) π(x_t) / (ᾱ_t + (1 − ᾱ_t) π(x_t))` (the mass at `k = y`
//!   then follows from normalisation).
//! * **`b_t = 0` (`y ≠ x_0`).** The normaliser is `(1 − ᾱ_t) π_y`. Expanding,
//!   the unnormalised mass is `ᾱ_s (1 − a) π_y δ_{k x0} + (1 − ᾱ_s) π_k (a δ_{ky} + (1 − a) π_y)`.
//!   The second term is `(1 − ᾱ_s) π_y · [a δ_{ky} + (1 − a) π_k]` (use `π_k δ_{ky} = π_y δ_{ky}`),
//!   so the posterior is `λ⁽²⁾ δ_{x_0} + (1 − λ⁽²⁾) q_noise(· | x_t)` with
//!   `λ⁽²⁾ = ᾱ_s (1 − a) / (1 − ᾱ_t) = (ᾱ_s − ᾱ_t) / (1 − ᾱ_t)` and
//!   `q_noise(· | x_t) = a δ_{x_t} + (1 − a) π`.
//!
//! Hence `x_s = b_t [v⁽¹⁾ x_t + (1 − v⁽¹⁾) u⁽¹⁾] + (1 − b_t) [v⁽²⁾ x_0 + (1 − v⁽²⁾) u⁽²⁾]` with
//! `v⁽ʲ⁾ ~ Bernoulli(λ⁽ʲ⁾)`, `u⁽¹⁾ ~ π`, `u⁽²⁾ ~ q_noise(· | x_t)` is an exact draw from
//! `q(x_s | x_t, x_0)` ([`MixtureSchedule::routed_law`]; `tests/rdm.rs` checks it against
//! Bayes' rule on dense matrices). For `s = t − 1`, `a = β_t` and these are the paper's
//! `λ⁽¹⁾_{t−1}, λ⁽²⁾_{t−1}`. For absorbing kernels `λ⁽¹⁾ = 1` (unmasked tokens stay) and
//! `λ⁽²⁾` is the unmasking probability.
//!
//! # The sampler (paper Algorithm 2 and §4.3)
//!
//! RDM replaces the unknown `x_0` by `x̂_0` from the denoiser and tracks `b_t` itself
//! (`b_T = 0`; `b_s = b_t v⁽¹⁾ + (1 − b_t) v⁽²⁾`). Routing is either [`Routing::Stochastic`]
//! (`v⁽ʲ⁾ ~ Bernoulli(λ⁽ʲ⁾)`, the exact posterior form) or [`Routing::TopK`], the adaptive
//! routing of the paper: after the step `t → s`, exactly the `K_s = ⌊L (1 − ᾱ_s)⌋` lowest-scored
//! positions are in noise, every other position is denoised (`v = 1`). The paper's decoding
//! schedules are obtained through `ᾱ`: "linear" is [`linear_alpha_bar`], "cosine" is
//! [`cosine_alpha_bar`].
//!
//! Differences from the public code, on purpose: its `topk_masking` routes `K + 1` positions
//! to noise (its own comment says so; at the last step one position stays noisy) — here
//! exactly `K`; ties are broken by keeping already-denoised positions, then by index; for
//! multinomial noise the code draws `u⁽¹⁾` from `q_noise(· | x_t)` as well, here `u⁽¹⁾ ~ π` as
//! in the derivation.
//!
//! # Randomness
//!
//! Keyed by `(seed, stream)` per sequence; at the step `t → s = t − 1`:
//! [`Purpose::CATEGORICAL`] at `(step s, position i)` gives the `x̂_0` draw (first uniform)
//! and the noise draw (second); [`Purpose::ROUTING`] the two Bernoulli coins;
//! [`Purpose::SELECTION`] the score perturbation of top-k routing. `x_T ~ π` uses
//! `CATEGORICAL` at step `T`.

use ndarray::{Array1, Array2, Array3};

use super::d3pm::{Samples, check_common};
use crate::error::{Error, Result};
use crate::kernel::ForwardKernel;
use crate::kernel::absorbing::Absorbing;
use crate::kernel::mixture::Mixture;
use crate::kernel::uniform::Uniform;
use crate::math::softmax_into;
use crate::model::Denoiser;
use crate::rng::categorical::sample_masses;
use crate::rng::{CounterRng, Purpose, RngKey};
use crate::validate;

/// A mixture-to-`π` forward process: `q(x_t | x_0) = ᾱ_t δ_{x_0} + (1 − ᾱ_t) π`
/// (absorbing: `π = δ_mask`; multinomial: `π` uniform), steps `t ∈ 0..=T`.
#[derive(Clone, Debug, PartialEq)]
pub struct MixtureSchedule {
    alpha_bar: Vec<f64>,
    noise: Vec<f64>,
}

/// Routing probabilities of one reverse step `t → s` at a noisy token `x_t` (module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoutingProbs {
    /// `λ⁽¹⁾`: probability that a token with `x_t = x_0` stays, else it moves to `u⁽¹⁾ ~ π`.
    /// Set to 1 when `q(x_t = x_0 | x_0) = 0` (the case cannot occur).
    pub stay: f64,
    /// `λ⁽²⁾ = (ᾱ_s − ᾱ_t)/(1 − ᾱ_t)`: probability that a token with `x_t ≠ x_0` is denoised
    /// to `x_0`, else it moves to `u⁽²⁾ ~ a δ_{x_t} + (1 − a) π`. Set to 1 when `ᾱ_t = 1`.
    pub denoise: f64,
    /// `a = ᾱ_t / ᾱ_s`, the weight of `x_t` in `q_noise(· | x_t)`.
    pub carry: f64,
}

/// `ᾱ_t = 1 − t/T`, `t ∈ 0..=T`: the linear schedule of absorbing/RDM text models; with
/// top-k routing it is the paper's "linear" decoding schedule (`K_s = ⌊L s / T⌋`).
pub fn linear_alpha_bar(num_steps: usize) -> Vec<f64> {
    let n = num_steps.max(1) as f64;
    (0..=num_steps).map(|t| 1.0 - t as f64 / n).collect()
}

/// `ᾱ_t = 1 − sin(π t / (2T))`, `t ∈ 0..=T`: with top-k routing, the paper's "cosine"
/// decoding schedule (the fraction still noisy after step `j` of `T` is `cos(π j / (2T))`).
pub fn cosine_alpha_bar(num_steps: usize) -> Vec<f64> {
    let n = num_steps.max(1) as f64;
    (0..=num_steps)
        .map(|t| {
            if t == num_steps {
                0.0
            } else {
                1.0 - (std::f64::consts::FRAC_PI_2 * t as f64 / n).sin()
            }
        })
        .collect()
}

impl MixtureSchedule {
    /// A schedule from `ᾱ_0, …, ᾱ_T` and the noise law `π`.
    ///
    /// Requires `T ≥ 1`, `ᾱ_0 = 1`, `ᾱ` non-increasing in `[0, 1]`, `ᾱ_t > 0` for `t < T`
    /// (only `ᾱ_T` may be 0, so every posterior is defined), and `π` a distribution over
    /// `V ≥ 2` states (tolerance `1e-9`).
    pub fn new(alpha_bar: Vec<f64>, noise: Vec<f64>) -> Result<Self> {
        validate::vocab("noise.len", noise.len())?;
        validate::distribution("noise", &noise, validate::SIMPLEX_TOL)?;
        if alpha_bar.len() < 2 {
            return Err(Error::invalid(
                "alpha_bar",
                format!("needs ᾱ_0..=ᾱ_T with T ≥ 1, got {} values", alpha_bar.len()),
            ));
        }
        validate::all_finite("alpha_bar", alpha_bar.iter())?;
        if alpha_bar[0] != 1.0 {
            return Err(Error::invalid(
                "alpha_bar",
                format!("ᾱ_0 must be 1, got {}", alpha_bar[0]),
            ));
        }
        let last = alpha_bar.len() - 1;
        for (t, w) in alpha_bar.windows(2).enumerate() {
            if w[1] > w[0] || w[1] < 0.0 {
                return Err(Error::invalid(
                    "alpha_bar",
                    format!(
                        "must be non-increasing in [0, 1]: ᾱ_{} = {} after ᾱ_{t} = {}",
                        t + 1,
                        w[1],
                        w[0]
                    ),
                ));
            }
            if t + 1 < last && w[1] <= 0.0 {
                return Err(Error::invalid(
                    "alpha_bar",
                    format!("ᾱ_{} = 0 before the last step {last}", t + 1),
                ));
            }
        }
        Ok(MixtureSchedule { alpha_bar, noise })
    }

    /// Absorbing diffusion: `π = δ_mask`, `mask ∈ 0..vocab` (any index).
    pub fn absorbing(alpha_bar: Vec<f64>, vocab: usize, mask: u32) -> Result<Self> {
        validate::vocab("vocab", vocab)?;
        validate::token("mask", mask, vocab)?;
        let mut noise = vec![0.0; vocab];
        noise[mask as usize] = 1.0;
        Self::new(alpha_bar, noise)
    }

    /// Multinomial diffusion: `π = 1/V`.
    pub fn uniform(alpha_bar: Vec<f64>, vocab: usize) -> Result<Self> {
        validate::vocab("vocab", vocab)?;
        Self::new(alpha_bar, vec![1.0 / vocab as f64; vocab])
    }

    /// The schedule of a D3PM mixture kernel `Q̄_t = ᾱ_t I + (1 − ᾱ_t) 1πᵀ`
    /// ([`Mixture`]): `ᾱ_t` = [`Mixture::keep`]`(t)` for `t ∈ 0..=T` and noise law `π`.
    ///
    /// This lets [`sample_rdm`] run on the same kernel object that an exact oracle
    /// ([`OracleDenoiser`](crate::model::oracle::OracleDenoiser)) or the D3PM sampler uses,
    /// so both see the same `q(x_t | x_0)` at every step `t ↔ time t / T`.
    ///
    /// Errors: as [`MixtureSchedule::new`]; in particular a kernel with some `β_t = 1` for
    /// `t < T` (then `ᾱ_t = 0` before the last step) is rejected.
    ///
    /// ```
    /// use discrete_diffusion::kernel::mixture::Mixture;
    /// use discrete_diffusion::sample::rdm::MixtureSchedule;
    /// let k = Mixture::new(vec![0.5, 0.25, 0.25], &[0.5, 1.0]).unwrap();
    /// let s = MixtureSchedule::from_mixture(&k).unwrap();
    /// assert_eq!(s.alpha_bar(), &[1.0, 0.5, 0.0]);
    /// assert_eq!(s.noise(), k.pi());
    /// ```
    pub fn from_mixture(kernel: &Mixture) -> Result<Self> {
        let alpha_bar = (0..=kernel.num_steps())
            .map(|t| kernel.keep(t))
            .collect::<Result<Vec<_>>>()?;
        Self::new(alpha_bar, kernel.pi().to_vec())
    }

    /// The schedule of an [`Absorbing`] kernel (`π = e_mask`, the kernel's mask index);
    /// see [`MixtureSchedule::from_mixture`].
    ///
    /// ```
    /// use discrete_diffusion::kernel::absorbing::Absorbing;
    /// use discrete_diffusion::sample::rdm::MixtureSchedule;
    /// let k = Absorbing::new(4, 1, &[0.5, 1.0]).unwrap();
    /// let s = MixtureSchedule::from_absorbing(&k).unwrap();
    /// assert_eq!(s.mask_token(), Some(1));
    /// assert_eq!(s.alpha_bar(), &[1.0, 0.5, 0.0]);
    /// ```
    pub fn from_absorbing(kernel: &Absorbing) -> Result<Self> {
        Self::from_mixture(kernel.as_mixture())
    }

    /// The schedule of a [`Uniform`] kernel (`π = 1/V`); see
    /// [`MixtureSchedule::from_mixture`].
    pub fn from_uniform(kernel: &Uniform) -> Result<Self> {
        Self::from_mixture(kernel.as_mixture())
    }

    /// Number of states `V`.
    pub fn vocab_size(&self) -> usize {
        self.noise.len()
    }

    /// Number of steps `T`.
    pub fn num_steps(&self) -> usize {
        self.alpha_bar.len() - 1
    }

    /// `ᾱ_0, …, ᾱ_T`.
    pub fn alpha_bar(&self) -> &[f64] {
        &self.alpha_bar
    }

    /// The noise law `π`.
    pub fn noise(&self) -> &[f64] {
        &self.noise
    }

    /// The mask token when `π` is a point mass (absorbing diffusion), else `None`.
    pub fn mask_token(&self) -> Option<u32> {
        self.noise.iter().position(|&p| p == 1.0).map(|m| m as u32)
    }

    fn check_pair(&self, s: usize, t: usize) -> Result<()> {
        if t == 0 || t > self.num_steps() {
            return Err(Error::invalid(
                "t",
                format!("step {t} is outside 1..={}", self.num_steps()),
            ));
        }
        if s >= t {
            return Err(Error::invalid("s", format!("step {s} must be < t = {t}")));
        }
        Ok(())
    }

    /// The routing probabilities `λ⁽¹⁾, λ⁽²⁾, a` of the reverse step `t → s` (`0 ≤ s < t ≤ T`)
    /// at the noisy token `x_t` (module docs):
    /// `λ⁽¹⁾ = 1 − (1 − a)(1 − ᾱ_s) π(x_t) / (ᾱ_t + (1 − ᾱ_t) π(x_t))`,
    /// `λ⁽²⁾ = (ᾱ_s − ᾱ_t)/(1 − ᾱ_t)`, `a = ᾱ_t / ᾱ_s`.
    pub fn routing(&self, s: usize, t: usize, x_t: u32) -> Result<RoutingProbs> {
        self.check_pair(s, t)?;
        validate::token("x_t", x_t, self.vocab_size())?;
        Ok(self.routing_unchecked(s, t, x_t))
    }

    fn routing_unchecked(&self, s: usize, t: usize, x_t: u32) -> RoutingProbs {
        let (a_s, a_t) = (self.alpha_bar[s], self.alpha_bar[t]);
        let carry = (a_t / a_s).clamp(0.0, 1.0);
        let pi_y = self.noise[x_t as usize];
        let den1 = a_t + (1.0 - a_t) * pi_y;
        let stay = if den1 > 0.0 {
            (1.0 - (1.0 - carry) * (1.0 - a_s) * pi_y / den1).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let denoise = if a_t < 1.0 {
            ((a_s - a_t) / (1.0 - a_t)).clamp(0.0, 1.0)
        } else {
            1.0
        };
        RoutingProbs {
            stay,
            denoise,
            carry,
        }
    }

    /// The law of `x_s` under the routed two-stage draw given `x_t` and the true `x_0`:
    /// `out = λ⁽¹⁾ δ_{x_t} + (1 − λ⁽¹⁾) π` if `x_t = x_0`, else
    /// `out = λ⁽²⁾ δ_{x_0} + (1 − λ⁽²⁾) (a δ_{x_t} + (1 − a) π)`. This equals the posterior
    /// `q(x_s | x_t, x_0)` (derivation in the module docs).
    ///
    /// Errors: bad steps/tokens/`out` length, and [`Error::ZeroProbability`] when
    /// `q(x_t | x_0) = 0`.
    pub fn routed_law(&self, s: usize, t: usize, x_t: u32, x0: u32, out: &mut [f64]) -> Result<()> {
        self.check_pair(s, t)?;
        let v = self.vocab_size();
        validate::token("x_t", x_t, v)?;
        validate::token("x0", x0, v)?;
        validate::len("out", out.len(), v)?;
        let a_t = self.alpha_bar[t];
        let (y, x) = (x_t as usize, x0 as usize);
        let likelihood = if y == x {
            a_t + (1.0 - a_t) * self.noise[y]
        } else {
            (1.0 - a_t) * self.noise[y]
        };
        if likelihood <= 0.0 {
            return Err(Error::ZeroProbability {
                what: format!("q(x_{t} = {x_t} | x_0 = {x0}) = 0"),
            });
        }
        let r = self.routing_unchecked(s, t, x_t);
        if y == x {
            for (o, &p) in out.iter_mut().zip(&self.noise) {
                *o = (1.0 - r.stay) * p;
            }
            out[y] += r.stay;
        } else {
            for (o, &p) in out.iter_mut().zip(&self.noise) {
                *o = (1.0 - r.denoise) * (1.0 - r.carry) * p;
            }
            out[y] += (1.0 - r.denoise) * r.carry;
            out[x] += r.denoise;
        }
        Ok(())
    }
}

/// Stage 1 of the RDM step: how `x̂_0` is read from the denoiser.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum X0Estimate {
    /// `x̂_0 = argmax p̃` (lowest index on ties; the paper's `argmax_decoding`).
    Argmax,
    /// `x̂_0 ~ softmax(logits / temperature)`, `temperature > 0` finite.
    Sample {
        /// The temperature `τ`.
        temperature: f64,
    },
}

/// The score ranking positions in top-k routing (higher = more confident).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scorer {
    /// `log p̃(x̂_0)` from the untempered denoiser distribution, plus
    /// `gumbel_scale · (1 − ᾱ_s) · G`, `G ~ Gumbel(0, 1)` (the paper's `stochastic<scale>`
    /// top-k; `gumbel_scale = 0` is its `deterministic` mode).
    Confidence {
        /// Gumbel perturbation scale (finite, `≥ 0`).
        gumbel_scale: f64,
    },
    /// i.i.d. uniform scores, independent of the prediction: positions are denoised in a
    /// uniformly random order. With [`Renoise::Never`], an exact denoiser and one token per
    /// step this samples the data law exactly (`tests/rdm.rs`).
    Random,
}

/// Whether top-k routing may send an already-denoised token (`b_t = 1`) back to noise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renoise {
    /// Paper's `uncond`: every position among the `K` lowest goes to noise (`v⁽¹⁾ = 0`).
    Unconditional,
    /// Paper's `cond`: a denoised position among the `K` lowest goes to noise only if the
    /// new prediction equals its token and its score dropped below the score it was
    /// denoised with.
    Conditional,
    /// Denoised positions never return to noise: they are left out of the ranking, and the
    /// `K` lowest noisy positions stay noisy.
    Never,
}

/// Stage 2 of the RDM step: how the routing variables `v⁽¹⁾, v⁽²⁾` are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Routing {
    /// `v⁽ʲ⁾ ~ Bernoulli(λ⁽ʲ⁾)` independently per position (paper eq. 7).
    Stochastic,
    /// Adaptive top-k routing (paper §4.3): after the step `t → s`, the `K_s = ⌊L(1 − ᾱ_s)⌋`
    /// lowest-scored positions are noise (computed with an absolute slack of `1e-9` against
    /// rounding), every other position is denoised.
    TopK {
        /// The ranking score.
        scorer: Scorer,
        /// Which denoised positions may return to noise.
        renoise: Renoise,
    },
}

/// Options of [`sample_rdm`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RdmOptions {
    /// Seed of the Philox key (combined with each sequence's stream id).
    pub seed: u64,
    /// How `x̂_0` is read from the denoiser.
    pub x0: X0Estimate,
    /// How tokens are routed.
    pub routing: Routing,
}

/// The RDM two-stage reverse sampler (Zheng et al. 2023, Algorithm 2 and §4.3) for
/// `B = streams.len()` sequences of length `length` under a [`MixtureSchedule`].
///
/// `x_T ~ π`, `b_T = 0`; for `t = T, …, 1` (`s = t − 1`): one batched denoiser call at time
/// `t / T`, `p̃ = softmax(logits)` (for absorbing schedules the mask token's probability is
/// set to 0 and `p̃` renormalised, as in the paper's code), `x̂_0` per [`X0Estimate`], then
/// per position `x_s = b_t [v⁽¹⁾ x_t + (1 − v⁽¹⁾) u⁽¹⁾] + (1 − b_t) [v⁽²⁾ x̂_0 + (1 − v⁽²⁾) u⁽²⁾]`
/// with `v` per [`Routing`], `u⁽¹⁾ ~ π`, `u⁽²⁾ ~ a δ_{x_t} + (1 − a) π`, and
/// `b_s = b_t v⁽¹⁾ + (1 − b_t) v⁽²⁾`. Returns the tokens and `nfe = T`.
///
/// Errors: as [`super::d3pm::sample_d3pm`], plus a bad temperature or Gumbel scale.
pub fn sample_rdm<D: Denoiser + ?Sized>(
    schedule: &MixtureSchedule,
    denoiser: &D,
    streams: &[u64],
    length: usize,
    options: &RdmOptions,
) -> Result<Samples> {
    let v = schedule.vocab_size();
    let steps = schedule.num_steps();
    let nb = streams.len();
    check_common(denoiser.vocab_size(), v, nb, length, steps)?;
    if let X0Estimate::Sample { temperature } = options.x0
        && !(temperature.is_finite() && temperature > 0.0)
    {
        return Err(Error::invalid(
            "temperature",
            format!("{temperature} must be finite and > 0"),
        ));
    }
    if let Routing::TopK {
        scorer: Scorer::Confidence { gumbel_scale },
        ..
    } = options.routing
        && !(gumbel_scale.is_finite() && gumbel_scale >= 0.0)
    {
        return Err(Error::invalid(
            "gumbel_scale",
            format!("{gumbel_scale} must be finite and >= 0"),
        ));
    }
    let mask = schedule.mask_token();
    let pi = schedule.noise();
    let keys: Vec<RngKey> = streams
        .iter()
        .map(|&s| RngKey::for_stream(options.seed, s))
        .collect();

    let mut tokens = Array2::<u32>::zeros((nb, length));
    for (bi, key) in keys.iter().enumerate() {
        for i in 0..length {
            let mut rng = CounterRng::new(*key, Purpose::CATEGORICAL, steps as u32, i as u32);
            tokens[[bi, i]] = sample_masses(pi, rng.uniform())?.token;
        }
    }
    // b_t = 1 ⇔ the position is believed denoised; `stored` = score it was denoised with.
    let mut denoised = Array2::<bool>::from_elem((nb, length), false);
    let mut stored = Array2::<f64>::from_elem((nb, length), f64::NEG_INFINITY);

    let mut logits = Array3::<f32>::zeros((nb, length, v));
    let mut p = vec![0.0; v];
    let mut tempered = vec![0.0; v];
    let mut noise2 = vec![0.0; v];
    let mut x0_hat = vec![0u32; length];
    let mut score = vec![0.0f64; length];
    let mut lowest = vec![false; length];
    let mut order: Vec<usize> = Vec::with_capacity(length);
    let mut nfe = 0;
    for t in (1..=steps).rev() {
        let s = t - 1;
        let times = Array1::from_elem(nb, t as f64 / steps as f64);
        denoiser.logits(tokens.view(), times.view(), logits.view_mut())?;
        nfe += 1;
        let k_noisy = {
            let x = length as f64 * (1.0 - schedule.alpha_bar[s]);
            ((x + 1e-9).floor().max(0.0) as usize).min(length)
        };
        for (bi, key) in keys.iter().enumerate() {
            // Stage 1: x̂_0 and its confidence, per position.
            let mut cats: Vec<CounterRng> = Vec::with_capacity(length);
            for i in 0..length {
                let row = logits.slice(ndarray::s![bi, i, ..]);
                softmax_into(row, &mut p)?;
                if let Some(m) = mask {
                    let pm = p[m as usize];
                    p[m as usize] = 0.0;
                    let rest = 1.0 - pm;
                    if rest <= 0.0 {
                        return Err(Error::ZeroProbability {
                            what: format!(
                                "denoiser puts all mass on the mask token (sequence {bi}, \
                                 position {i})"
                            ),
                        });
                    }
                    p.iter_mut().for_each(|x| *x /= rest);
                }
                let mut rng = CounterRng::new(*key, Purpose::CATEGORICAL, s as u32, i as u32);
                let u = rng.uniform();
                let k = match options.x0 {
                    X0Estimate::Argmax => argmax(&p),
                    X0Estimate::Sample { temperature } => {
                        if temperature == 1.0 {
                            sample_masses(&p, u)?.token
                        } else {
                            tempered_probs(&p, temperature, &mut tempered);
                            sample_masses(&tempered, u)?.token
                        }
                    }
                };
                x0_hat[i] = k;
                score[i] = p[k as usize].ln();
                cats.push(rng);
            }
            // Stage 2: routing variables v⁽¹⁾ (for b = 1) and v⁽²⁾ (for b = 0).
            match options.routing {
                Routing::Stochastic => {
                    for i in 0..length {
                        let r = schedule.routing_unchecked(s, t, tokens[[bi, i]]);
                        let mut rng = CounterRng::new(*key, Purpose::ROUTING, s as u32, i as u32);
                        let (u1, u2) = (rng.uniform(), rng.uniform());
                        lowest[i] = if denoised[[bi, i]] {
                            u1 >= r.stay
                        } else {
                            u2 >= r.denoise
                        };
                    }
                }
                Routing::TopK { scorer, renoise } => {
                    let rate = 1.0 - schedule.alpha_bar[s];
                    order.clear();
                    for i in 0..length {
                        let mut rng = CounterRng::new(*key, Purpose::SELECTION, s as u32, i as u32);
                        match scorer {
                            Scorer::Confidence { gumbel_scale } => {
                                if gumbel_scale > 0.0 {
                                    score[i] += gumbel_scale * rate * -rng.exponential().ln();
                                }
                            }
                            Scorer::Random => score[i] = rng.uniform(),
                        }
                        if renoise != Renoise::Never || !denoised[[bi, i]] {
                            order.push(i);
                        }
                    }
                    // Ascending score; ties: noisy positions first (they stay noisy), then index.
                    order.sort_by(|&a, &b| {
                        score[a]
                            .total_cmp(&score[b])
                            .then(denoised[[bi, a]].cmp(&denoised[[bi, b]]))
                            .then(a.cmp(&b))
                    });
                    lowest.iter_mut().for_each(|x| *x = false);
                    for &i in order.iter().take(k_noisy) {
                        lowest[i] = true;
                    }
                    if renoise == Renoise::Conditional {
                        for i in 0..length {
                            if denoised[[bi, i]] && lowest[i] {
                                lowest[i] =
                                    x0_hat[i] == tokens[[bi, i]] && score[i] < stored[[bi, i]];
                            }
                        }
                    }
                }
            }
            // Apply: `lowest[i]` ⇔ the position's routing variable is 0 (goes to noise).
            for i in 0..length {
                let x_t = tokens[[bi, i]];
                if !lowest[i] {
                    if !denoised[[bi, i]] {
                        tokens[[bi, i]] = x0_hat[i];
                        stored[[bi, i]] = score[i];
                        denoised[[bi, i]] = true;
                    }
                    continue;
                }
                let u = cats[i].uniform();
                let new = if denoised[[bi, i]] {
                    sample_masses(pi, u)?.token
                } else {
                    let a = schedule.routing_unchecked(s, t, x_t).carry;
                    for (n, &q) in noise2.iter_mut().zip(pi) {
                        *n = (1.0 - a) * q;
                    }
                    noise2[x_t as usize] += a;
                    sample_masses(&noise2, u)?.token
                };
                tokens[[bi, i]] = new;
                stored[[bi, i]] = f64::NEG_INFINITY;
                denoised[[bi, i]] = false;
            }
        }
    }
    Ok(Samples { tokens, nfe })
}

/// Index of the largest entry (lowest index on ties).
fn argmax(p: &[f64]) -> u32 {
    let mut best = 0;
    for (k, &x) in p.iter().enumerate() {
        if x > p[best] {
            best = k;
        }
    }
    best as u32
}

/// `out ∝ p^{1/τ}` (= `softmax(logits / τ)`), computed in the log domain.
///
/// (Temperature on probabilities; the composable logit transforms of the inference toolkit
/// will subsume it.)
fn tempered_probs(p: &[f64], temperature: f64, out: &mut [f64]) {
    let mut max = f64::NEG_INFINITY;
    for &x in p {
        if x > 0.0 {
            max = max.max(x.ln() / temperature);
        }
    }
    let mut total = 0.0;
    for (o, &x) in out.iter_mut().zip(p) {
        *o = if x > 0.0 {
            (x.ln() / temperature - max).exp()
        } else {
            0.0
        };
        total += *o;
    }
    out.iter_mut().for_each(|o| *o /= total);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_absorbing_linear() {
        let sch = MixtureSchedule::absorbing(linear_alpha_bar(4), 3, 0).unwrap();
        let r = sch.routing(2, 3, 0).unwrap();
        assert!((r.denoise - 1.0 / 3.0).abs() < 1e-15);
        let r = sch.routing(2, 3, 2).unwrap();
        assert_eq!(r.stay, 1.0);
    }

    #[test]
    fn schedules_are_valid() {
        for t in 1..6 {
            MixtureSchedule::uniform(linear_alpha_bar(t), 4).unwrap();
            MixtureSchedule::uniform(cosine_alpha_bar(t), 4).unwrap();
        }
        assert!(MixtureSchedule::uniform(vec![1.0], 4).is_err());
        assert!(MixtureSchedule::uniform(vec![0.9, 0.5], 4).is_err());
        assert!(MixtureSchedule::uniform(vec![1.0, 0.0, 0.0], 4).is_err());
        assert!(MixtureSchedule::uniform(vec![1.0, 0.5, 0.7], 4).is_err());
        assert!(MixtureSchedule::uniform(vec![1.0, f64::NAN], 4).is_err());
        assert!(MixtureSchedule::new(vec![1.0, 0.0], vec![0.5, 0.6]).is_err());
        assert!(MixtureSchedule::absorbing(vec![1.0, 0.0], 4, 4).is_err());
    }

    #[test]
    fn from_kernels_match_their_cumulative_keep() {
        let betas = [0.1, 0.4, 0.25, 1.0];
        let abs = Absorbing::new(5, 2, &betas).unwrap();
        let uni = Uniform::new(5, &betas).unwrap();
        let mix = Mixture::new(vec![0.1, 0.2, 0.3, 0.4], &betas).unwrap();
        let sa = MixtureSchedule::from_absorbing(&abs).unwrap();
        let su = MixtureSchedule::from_uniform(&uni).unwrap();
        let sm = MixtureSchedule::from_mixture(&mix).unwrap();
        assert_eq!(sa.mask_token(), Some(2));
        assert_eq!(su.noise(), &[0.2; 5]);
        assert_eq!(sm.noise(), mix.pi());
        let mut want = 1.0;
        for t in 0..=4 {
            if t > 0 {
                want *= 1.0 - betas[t - 1];
            }
            for s in [&sa, &su, &sm] {
                assert_eq!(s.num_steps(), 4);
                assert!((s.alpha_bar()[t] - want).abs() < 1e-15, "t={t}");
            }
        }
        // q(x_t | x_0) of the schedule is the kernel's cumulative row.
        let mut row = [0.0; 5];
        for t in 1..=4 {
            abs.cumulative_row(t, 3, &mut row).unwrap();
            let a = sa.alpha_bar()[t];
            assert!((row[3] - a).abs() < 1e-15 && (row[2] - (1.0 - a)).abs() < 1e-15);
        }
        // ᾱ_t = 0 before the last step is not a valid RDM schedule.
        let dead = Absorbing::new(3, 0, &[1.0, 0.5]).unwrap();
        assert!(MixtureSchedule::from_absorbing(&dead).is_err());
    }

    #[test]
    fn tempered_matches_power() {
        let p = [0.2, 0.0, 0.8];
        let mut out = [0.0; 3];
        tempered_probs(&p, 0.5, &mut out);
        let z = 0.04 + 0.64;
        assert!((out[0] - 0.04 / z).abs() < 1e-14 && out[1] == 0.0);
    }
}
