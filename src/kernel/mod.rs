//! Forward processes: structured transition kernels (DESIGN §2 `kernel`, §3.1).
//!
//! Conventions (see `docs/conventions.md`):
//!
//! * **Row-stochastic** `Q_t[from, to] = q(x_t = to | x_{t−1} = from)`.
//! * **Discrete time** `t ∈ 1..=T` for one-step matrices `Q_t`; cumulative matrices
//!   `Q̄_t = Q_1 Q_2 ⋯ Q_t` for `t ∈ 0..=T`, with `Q̄_0 = I`.
//! * The mask (absorbing) token is any index, never assumed to be the last.
//!
//! Kernels are structured: mixture-to-π kernels (uniform, absorbing, marginal,
//! mask-and-uniform) give rows, columns and `p^T Q̄_t` in O(V); symmetric kernels
//! (similarity) use one f64 eigendecomposition; dense matrices are an opt-in, validated
//! fallback.
//!
//! The [`ForwardKernel`] trait is the discrete-time (D3PM) view. A kernel evaluated at one
//! noise level is a [`Channel`]: the per-token likelihood `q(x_t = y | x_0 = ·)` that exact
//! oracles and posteriors consume. [`NoiseProcess`] maps a continuous time `t ∈ [0, 1]` to
//! its channel; every discrete kernel is one, with step `k ↔ t = k / T`.

use std::fmt::Debug;

use crate::error::{Error, Result};
use crate::validate;

pub mod absorbing;
pub mod banded_uniform;
pub mod blosum;
pub mod ctmc;
pub mod dense;
pub mod gaussian;
pub mod generator;
pub mod marginal;
pub mod mask_uniform;
pub mod mixture;
pub mod path;
pub mod posterior;
pub mod similarity;
pub mod uniform;

/// A discrete-time forward corruption process over `V` states with `T` steps (Austin et
/// al. 2021, D3PM).
///
/// Every method validates its arguments and writes into a caller-provided buffer of length
/// `V` (no allocation on the hot path). Implementations must satisfy, in exact arithmetic:
/// rows of `Q_t` and `Q̄_t` sum to 1, `Q̄_t = Q̄_{t−1} Q_t`, and
/// `cumulative_vecmat(t, p) = p^T Q̄_t`.
pub trait ForwardKernel: Send + Sync + Debug {
    /// Number of states `V` (including a mask token if the kernel has one).
    fn vocab_size(&self) -> usize;

    /// Number of discrete steps `T`.
    fn num_steps(&self) -> usize;

    /// One-step row: `out[j] = Q_t(x, j) = q(x_t = j | x_{t−1} = x)`, `t ∈ 1..=T`.
    fn step_row(&self, t: usize, x: u32, out: &mut [f64]) -> Result<()>;

    /// One-step column: `out[i] = Q_t(i, y) = q(x_t = y | x_{t−1} = i)`, `t ∈ 1..=T`.
    fn step_col(&self, t: usize, y: u32, out: &mut [f64]) -> Result<()>;

    /// Cumulative row: `out[j] = Q̄_t(x0, j) = q(x_t = j | x_0 = x0)`, `t ∈ 0..=T`.
    fn cumulative_row(&self, t: usize, x0: u32, out: &mut [f64]) -> Result<()>;

    /// Cumulative column: `out[i] = Q̄_t(i, y) = q(x_t = y | x_0 = i)`, `t ∈ 0..=T`.
    fn cumulative_col(&self, t: usize, y: u32, out: &mut [f64]) -> Result<()>;

    /// Row vector times cumulative matrix: `out = p^T Q̄_t`, `t ∈ 0..=T`, for any finite
    /// non-negative `p` of length `V` (not necessarily normalised).
    fn cumulative_vecmat(&self, t: usize, p: &[f64], out: &mut [f64]) -> Result<()>;

    /// Row vector times one-step matrix: `out = p^T Q_t`, `t ∈ 1..=T`.
    fn step_vecmat(&self, t: usize, p: &[f64], out: &mut [f64]) -> Result<()>;

    /// Cumulative matrix times column vector: `out[i] = Σ_j Q̄_t(i, j) r[j]`, `t ∈ 0..=T`,
    /// for any finite non-negative `r` of length `V` (the product the gradient of D3PM's
    /// `L_{t−1}` needs; it differs from [`cumulative_vecmat`](Self::cumulative_vecmat) unless
    /// `Q̄_t` is symmetric).
    ///
    /// The default sums columns (`O(V · nnz(r))`, one scratch vector per call); structured
    /// kernels override it with their `O(V)` or `O(V²)` forms.
    fn cumulative_matvec(&self, t: usize, r: &[f64], out: &mut [f64]) -> Result<()> {
        let mut col = vec![0.0; self.vocab_size()];
        posterior::cumulative_matvec_by_columns(self, t, r, &mut col, out)
    }

    /// The prior the process is designed to converge to (the reference of D3PM's `L_T`):
    /// uniform for uniform and doubly-stochastic kernels, the point mass on the mask for
    /// absorbing kernels, `π` for marginal kernels.
    fn stationary(&self, out: &mut [f64]) -> Result<()>;

    /// This kernel's [`Channel`] at step `t ∈ 0..=T`.
    fn at_step(&self, t: usize) -> Result<AtStep<'_, Self>>
    where
        Self: Sized,
    {
        check_step(t, self.num_steps(), true)?;
        Ok(AtStep { kernel: self, t })
    }
}

/// The per-token forward channel at one noise level: `q(x_t = y | x_0 = x0)`.
///
/// This is what exact oracles need: under a per-token kernel, `x_t` given a clean sequence
/// is a product of independent channels, so `x_t` is a hidden-Markov observation of a
/// Markov prior (DESIGN §4).
pub trait Channel: Send + Sync {
    /// Number of states `V`.
    fn vocab_size(&self) -> usize;

    /// `out[v] = q(x_t = y | x_0 = v)` for all clean states `v`.
    fn likelihood(&self, y: u32, out: &mut [f64]) -> Result<()>;

    /// `out[j] = q(x_t = j | x_0 = x0)`: the law used to corrupt a clean token.
    fn transition_row(&self, x0: u32, out: &mut [f64]) -> Result<()>;
}

/// A [`ForwardKernel`] fixed at step `t`: `q(x_t | x_0) = Q̄_t`.
#[derive(Debug, Clone, Copy)]
pub struct AtStep<'a, K: ?Sized> {
    kernel: &'a K,
    t: usize,
}

impl<'a, K: ForwardKernel + ?Sized> AtStep<'a, K> {
    /// The kernel at step `t ∈ 0..=T`.
    pub fn new(kernel: &'a K, t: usize) -> Result<Self> {
        check_step(t, kernel.num_steps(), true)?;
        Ok(AtStep { kernel, t })
    }

    /// The step `t`.
    pub fn step(&self) -> usize {
        self.t
    }
}

impl<K: ForwardKernel + ?Sized> Channel for AtStep<'_, K> {
    fn vocab_size(&self) -> usize {
        self.kernel.vocab_size()
    }

    fn likelihood(&self, y: u32, out: &mut [f64]) -> Result<()> {
        self.kernel.cumulative_col(self.t, y, out)
    }

    fn transition_row(&self, x0: u32, out: &mut [f64]) -> Result<()> {
        self.kernel.cumulative_row(self.t, x0, out)
    }
}

/// A forward process indexed by continuous time `t ∈ [0, 1]` (`t = 0` data, `t = 1` prior).
///
/// Every [`ForwardKernel`] with `T` steps is one: `t` must be a multiple of `1/T` (within
/// `1e-9·T`) and maps to step `k = round(t·T)`.
pub trait NoiseProcess: Send + Sync {
    /// Number of states `V`.
    fn vocab_size(&self) -> usize;

    /// The channel `q(x_t | x_0)` at time `t`.
    fn channel(&self, t: f64) -> Result<Box<dyn Channel + '_>>;
}

impl<K: ForwardKernel> NoiseProcess for K {
    fn vocab_size(&self) -> usize {
        ForwardKernel::vocab_size(self)
    }

    fn channel(&self, t: f64) -> Result<Box<dyn Channel + '_>> {
        let k = step_of_time(t, self.num_steps())?;
        Ok(Box::new(AtStep::new(self, k)?))
    }
}

/// Step `k = round(t·T)` of a continuous time that must lie on the grid `{k/T}`.
pub fn step_of_time(t: f64, num_steps: usize) -> Result<usize> {
    validate::time("t", t)?;
    let x = t * num_steps as f64;
    let k = x.round();
    if (x - k).abs() > 1e-9 * num_steps.max(1) as f64 {
        return Err(Error::invalid(
            "t",
            format!("time {t} is not on the grid k/T of a discrete process with T = {num_steps}"),
        ));
    }
    Ok(k as usize)
}

/// Validate a step index: `1..=T` for one-step quantities, `0..=T` when `allow_zero`.
pub(crate) fn check_step(t: usize, num_steps: usize, allow_zero: bool) -> Result<()> {
    let lo = if allow_zero { 0 } else { 1 };
    if t < lo || t > num_steps {
        return Err(Error::invalid(
            "t",
            format!("step {t} is outside {lo}..={num_steps}"),
        ));
    }
    Ok(())
}

/// Validate a state index and an output buffer against `V`.
pub(crate) fn check_state_out(arg: &'static str, x: u32, v: usize, out: &[f64]) -> Result<()> {
    validate::token(arg, x, v)?;
    validate::len("out", out.len(), v)
}

/// Validate a vector argument `p` (finite, non-negative, length `V`) and an output buffer.
pub(crate) fn check_vec_out(p: &[f64], v: usize, out: &[f64]) -> Result<()> {
    check_named_vec_out("p", p, v, out)
}

/// As [`check_vec_out`] for a vector argument called `arg` (e.g. `r` in `Q̄_t r`).
pub(crate) fn check_named_vec_out(
    arg: &'static str,
    p: &[f64],
    v: usize,
    out: &[f64],
) -> Result<()> {
    validate::len(arg, p.len(), v)?;
    validate::len("out", out.len(), v)?;
    for (i, &x) in p.iter().enumerate() {
        if !x.is_finite() {
            return Err(Error::NonFinite {
                arg,
                index: i,
                value: x,
            });
        }
        if x < 0.0 {
            return Err(Error::invalid(arg, format!("entry {i} is negative ({x})")));
        }
    }
    Ok(())
}
