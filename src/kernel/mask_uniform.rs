//! VQ-Diffusion's mask-and-replace kernel (Gu et al. 2022, §3.2 and eq. 5–6).

use crate::error::{Error, Result};
use crate::kernel::{ForwardKernel, check_state_out, check_step, check_vec_out};
use crate::validate;

/// Mask-and-replace corruption over `V = K + 1` states, `K` ordinary tokens and one mask
/// `m` (any index). One step, for an ordinary token `i`:
///
/// ```text
/// Q_t(i, i) = α_t + β_t,   Q_t(i, j) = β_t (j ≠ i, j ≠ m),   Q_t(i, m) = γ_t,
/// α_t = 1 − K β_t − γ_t;   Q_t(m, m) = 1 (the mask is absorbing).
/// ```
///
/// The cumulative matrix has the same form (Gu et al. 2022, eq. 6):
/// `Q̄_t(i, i) = ᾱ_t + β̄_t`, `Q̄_t(i, j) = β̄_t`, `Q̄_t(i, m) = γ̄_t`, with
/// `ᾱ_t = Π_{s≤t} α_s`, `1 − γ̄_t = Π_{s≤t}(1 − γ_s)` and `β̄_t = (1 − ᾱ_t − γ̄_t)/K`.
/// (Proof: on the ordinary block each step is `α_s I + β_s J`, and
/// `(a I + b J)(a' I + b' J) = a a' I + (a b' + b a' + K b b') J`; the block's row sums
/// `1 − γ_s` multiply.) `β̄_t` is computed as
/// `Π(1−γ_s) · (−expm1(Σ log1p(−Kβ_s/(1−γ_s))))/K`, free of cancellation when `t` is small.
/// Stationary law `e_m` (whenever some `γ_s > 0`; it is the reference of `L_T`).
/// All methods O(V).
///
/// ```
/// use discrete_diffusion::kernel::ForwardKernel;
/// use discrete_diffusion::kernel::mask_uniform::MaskAndUniform;
///
/// // K = 3 ordinary tokens, mask at index 0.
/// let k = MaskAndUniform::new(4, 0, &[0.1, 0.1], &[0.2, 0.5]).unwrap();
/// let mut row = [0.0; 4];
/// k.step_row(1, 2, &mut row).unwrap();
/// assert!((row[0] - 0.2).abs() < 1e-15 && (row[1] - 0.1).abs() < 1e-15);
/// assert!((row[2] - 0.6).abs() < 1e-15);
/// k.cumulative_row(2, 2, &mut row).unwrap();
/// assert!((row[0] - 0.6).abs() < 1e-15); // γ̄_2 = 1 − 0.8·0.5
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MaskAndUniform {
    v: usize,
    mask: u32,
    betas: Vec<f64>,
    gammas: Vec<f64>,
    /// `ᾱ_t`, `t ∈ 0..=T`.
    alpha_bar: Vec<f64>,
    /// `β̄_t`, `t ∈ 0..=T`.
    beta_bar: Vec<f64>,
    /// `γ̄_t`, `t ∈ 0..=T`.
    gamma_bar: Vec<f64>,
}

/// Coefficients `(α, β, γ)` of one matrix of the mask-and-uniform form.
type Coeffs = (f64, f64, f64);

impl MaskAndUniform {
    /// `V = K + 1 ≥ 3` states with the mask at `mask ∈ 0..V`; per-step replace
    /// probabilities `betas[t−1] = β_t` (to *each* ordinary token) and mask probabilities
    /// `gammas[t−1] = γ_t`, with `β_t, γ_t ≥ 0` and `K β_t + γ_t ≤ 1` (within `1e-12`).
    pub fn new(vocab_size: usize, mask: u32, betas: &[f64], gammas: &[f64]) -> Result<Self> {
        validate::vocab("vocab_size", vocab_size)?;
        if vocab_size < 3 {
            return Err(Error::invalid(
                "vocab_size",
                format!(
                    "mask-and-uniform needs at least 2 ordinary tokens plus the mask, got V = {vocab_size}"
                ),
            ));
        }
        validate::token("mask", mask, vocab_size)?;
        crate::kernel::mixture::validate_betas("betas", betas)?;
        crate::kernel::mixture::validate_betas("gammas", gammas)?;
        validate::len("gammas", gammas.len(), betas.len())?;
        let k = (vocab_size - 1) as f64;
        for (i, (&b, &g)) in betas.iter().zip(gammas).enumerate() {
            if k * b + g > 1.0 + 1e-12 {
                return Err(Error::invalid(
                    "betas",
                    format!(
                        "step {}: K·β + γ = {k}·{b} + {g} = {} exceeds 1",
                        i + 1,
                        k * b + g
                    ),
                ));
            }
        }
        let n = betas.len();
        let (mut alpha_bar, mut beta_bar, mut gamma_bar) = (
            Vec::with_capacity(n + 1),
            Vec::with_capacity(n + 1),
            Vec::with_capacity(n + 1),
        );
        alpha_bar.push(1.0);
        beta_bar.push(0.0);
        gamma_bar.push(0.0);
        // log Π(1 − γ_s) and log Π α_s/(1 − γ_s).
        let (mut log_nomask, mut log_ratio) = (0.0_f64, 0.0_f64);
        for (&b, &g) in betas.iter().zip(gammas) {
            log_nomask += (-g).ln_1p();
            if g < 1.0 {
                log_ratio += (-(k * b) / (1.0 - g)).clamp(-1.0, 0.0).ln_1p();
            }
            let nomask = log_nomask.exp();
            let gb = -log_nomask.exp_m1();
            let (ab, bb) = if nomask == 0.0 {
                (0.0, 0.0)
            } else {
                let ab = (log_nomask + log_ratio).exp();
                (ab, nomask * (-log_ratio.exp_m1()) / k)
            };
            alpha_bar.push(ab);
            beta_bar.push(bb);
            gamma_bar.push(gb);
        }
        Ok(MaskAndUniform {
            v: vocab_size,
            mask,
            betas: betas.to_vec(),
            gammas: gammas.to_vec(),
            alpha_bar,
            beta_bar,
            gamma_bar,
        })
    }

    /// The mask index.
    pub fn mask(&self) -> u32 {
        self.mask
    }

    /// Cumulative coefficients `(ᾱ_t, β̄_t, γ̄_t)` at `t ∈ 0..=T` (Gu et al. 2022, eq. 6).
    pub fn cumulative_coeffs(&self, t: usize) -> Result<(f64, f64, f64)> {
        self.cum(t)
    }

    /// One-step coefficients `(α_t, β_t, γ_t)` at `t ∈ 1..=T`.
    pub fn step_coeffs(&self, t: usize) -> Result<(f64, f64, f64)> {
        self.step(t)
    }

    fn step(&self, t: usize) -> Result<Coeffs> {
        check_step(t, self.betas.len(), false)?;
        let (b, g) = (self.betas[t - 1], self.gammas[t - 1]);
        let a = (1.0 - (self.v - 1) as f64 * b - g).max(0.0);
        Ok((a, b, g))
    }

    fn cum(&self, t: usize) -> Result<Coeffs> {
        check_step(t, self.betas.len(), true)?;
        Ok((self.alpha_bar[t], self.beta_bar[t], self.gamma_bar[t]))
    }

    fn row(&self, (a, b, g): Coeffs, x: u32, out: &mut [f64]) -> Result<()> {
        check_state_out("x", x, self.v, out)?;
        let m = self.mask as usize;
        if x as usize == m {
            out.fill(0.0);
            out[m] = 1.0;
            return Ok(());
        }
        out.fill(b);
        out[m] = g;
        out[x as usize] += a;
        Ok(())
    }

    fn col(&self, (a, b, g): Coeffs, y: u32, out: &mut [f64]) -> Result<()> {
        check_state_out("y", y, self.v, out)?;
        let m = self.mask as usize;
        if y as usize == m {
            out.fill(g);
            out[m] = 1.0;
        } else {
            out.fill(b);
            out[y as usize] += a;
            out[m] = 0.0;
        }
        Ok(())
    }

    fn vecmat(&self, (a, b, g): Coeffs, p: &[f64], out: &mut [f64]) -> Result<()> {
        check_vec_out(p, self.v, out)?;
        let m = self.mask as usize;
        let ordinary: f64 = p.iter().sum::<f64>() - p[m];
        let ordinary = ordinary.max(0.0);
        for (o, &x) in out.iter_mut().zip(p) {
            *o = a * x + b * ordinary;
        }
        out[m] = p[m] + g * ordinary;
        Ok(())
    }
}

impl ForwardKernel for MaskAndUniform {
    /// `Q̄_t r` in O(V): row `x ≠ m` is `ᾱ r[x] + β̄ Σ_{j≠m} r[j] + γ̄ r[m]`, row `m` is `r[m]`.
    fn cumulative_matvec(&self, t: usize, r: &[f64], out: &mut [f64]) -> Result<()> {
        let (a, b, g) = self.cum(t)?;
        crate::kernel::check_named_vec_out("r", r, self.v, out)?;
        let m = self.mask as usize;
        let ordinary: f64 = r
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != m)
            .map(|(_, x)| x)
            .sum();
        for (o, &x) in out.iter_mut().zip(r) {
            *o = a * x + b * ordinary + g * r[m];
        }
        out[m] = r[m];
        Ok(())
    }

    fn vocab_size(&self) -> usize {
        self.v
    }

    fn num_steps(&self) -> usize {
        self.betas.len()
    }

    fn step_row(&self, t: usize, x: u32, out: &mut [f64]) -> Result<()> {
        self.row(self.step(t)?, x, out)
    }

    fn step_col(&self, t: usize, y: u32, out: &mut [f64]) -> Result<()> {
        self.col(self.step(t)?, y, out)
    }

    fn cumulative_row(&self, t: usize, x0: u32, out: &mut [f64]) -> Result<()> {
        self.row(self.cum(t)?, x0, out)
    }

    fn cumulative_col(&self, t: usize, y: u32, out: &mut [f64]) -> Result<()> {
        self.col(self.cum(t)?, y, out)
    }

    fn cumulative_vecmat(&self, t: usize, p: &[f64], out: &mut [f64]) -> Result<()> {
        self.vecmat(self.cum(t)?, p, out)
    }

    fn step_vecmat(&self, t: usize, p: &[f64], out: &mut [f64]) -> Result<()> {
        self.vecmat(self.step(t)?, p, out)
    }

    fn stationary(&self, out: &mut [f64]) -> Result<()> {
        validate::len("out", out.len(), self.v)?;
        out.fill(0.0);
        out[self.mask as usize] = 1.0;
        Ok(())
    }
}
