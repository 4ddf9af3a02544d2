//! Training masks from counter-based uniforms: Bernoulli masks, exact-count masks (LLaDA),
//! complementary pairs (LaViDa) and nested (coupled) masks across noise levels (DPLM/RDM).
//!
//! # Addressing
//!
//! Every mask of this module is a function of one vector of **position uniforms**
//! `u_i ∈ [0, 1)`, read from the Philox address
//!
//! ```text
//! u_i = unit(u64_at(key, Purpose::FORWARD_NOISE, step, position = i, draw))
//! ```
//!
//! with `key = RngKey::for_stream(seed, sequence_id)` ([`MaskAddress::new`]), `step` the
//! training step and `draw` the index of the Monte Carlo draw inside that step. Masks
//! therefore depend only on `(seed, sequence id, step, draw, position)`, never on the batch.
//!
//! Because every construction thresholds the same `u_i`, masks at different noise levels
//! built from one address are **nested**: position `i` is masked at level `p` iff
//! `u_i < p_i`, so raising `p` only adds positions; an exact-count mask of size `k` takes the
//! `k` eligible positions with the smallest `u_i`, so counts `k₁ < k₂` give nested masks too.

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::error::{Error, Result};
use crate::rng::{Purpose, RngKey, u64_at, u64_to_unit_f64};
use crate::validate;

/// The Philox address of one mask draw (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaskAddress {
    /// The key of the sequence (`RngKey::for_stream(seed, sequence_id)`).
    pub key: RngKey,
    /// The training step.
    pub step: u32,
    /// The Monte Carlo draw within the step.
    pub draw: u64,
}

impl MaskAddress {
    /// The address of draw `draw` at training step `step` for sequence `sequence_id` under
    /// `seed`.
    pub fn new(seed: u64, sequence_id: u64, step: u32, draw: u64) -> Self {
        MaskAddress {
            key: RngKey::for_stream(seed, sequence_id),
            step,
            draw,
        }
    }

    /// The same address with another draw index.
    pub fn with_draw(self, draw: u64) -> Self {
        MaskAddress { draw, ..self }
    }

    /// The position uniform `u_i ∈ [0, 1)` (module docs).
    #[inline]
    pub fn uniform(&self, i: usize) -> f64 {
        u64_to_unit_f64(u64_at(
            self.key,
            Purpose::FORWARD_NOISE,
            self.step,
            i as u32,
            self.draw,
        ))
    }
}

fn check_positions(arg: &'static str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::invalid(arg, "empty sequence (L = 0)"));
    }
    if n > u32::MAX as usize {
        return Err(Error::invalid(
            arg,
            format!("length {n} exceeds u32 positions"),
        ));
    }
    Ok(())
}

/// Fill `out[i] = u_i` for `i < out.len()` (module docs). Errors on an empty or over-long
/// `out`.
pub fn position_uniforms(addr: MaskAddress, out: &mut [f64]) -> Result<()> {
    check_positions("out", out.len())?;
    for (i, o) in out.iter_mut().enumerate() {
        *o = addr.uniform(i);
    }
    Ok(())
}

/// Bernoulli mask with per-position probabilities: `out[i] = u_i < probs[i]`.
///
/// With `probs[i] = 1 − α(t)` this is the forward masking `x_t ~ q(x_t | x_0)` of masked
/// diffusion (MDLM/MD4/LLaDA); with `probs[i] = 1 − α_i(t)` a per-token schedule
/// ([`crate::train::token_schedule`]). Use `probs[i] = 0` for positions that must stay
/// clean (a prompt).
///
/// Errors: `probs` empty or not all in `[0, 1]`; `out` of another length.
///
/// ```
/// use discrete_diffusion::train::masks::{MaskAddress, bernoulli_mask};
/// let a = MaskAddress::new(7, 0, 0, 0);
/// let (mut lo, mut hi) = ([false; 6], [false; 6]);
/// bernoulli_mask(a, &[0.3; 6], &mut lo)?;
/// bernoulli_mask(a, &[0.8; 6], &mut hi)?;
/// assert!(lo.iter().zip(&hi).all(|(&l, &h)| !l || h)); // nested
/// # Ok::<(), discrete_diffusion::Error>(())
/// ```
pub fn bernoulli_mask(addr: MaskAddress, probs: &[f64], out: &mut [bool]) -> Result<()> {
    check_positions("probs", probs.len())?;
    validate::len("out", out.len(), probs.len())?;
    check_probs("probs", probs)?;
    for (i, (o, &p)) in out.iter_mut().zip(probs).enumerate() {
        *o = addr.uniform(i) < p;
    }
    Ok(())
}

fn check_probs(arg: &'static str, probs: &[f64]) -> Result<()> {
    for (i, &p) in probs.iter().enumerate() {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::invalid(
                arg,
                format!("entry {i} = {p} is not a probability in [0, 1]"),
            ));
        }
    }
    Ok(())
}

/// A uniformly random mask with exactly `count` masked positions among the `eligible` ones
/// (LLaDA's likelihood evaluation, `get_log_likelihood.py`: `randperm` of the answer
/// positions): the `count` eligible positions with the smallest `u_i` (ties, probability
/// ~2⁻⁵³, go to the lower index). Ineligible positions are never masked.
///
/// Errors: `eligible` empty; `out` of another length; `count` larger than the number of
/// eligible positions.
pub fn exact_count_mask(
    addr: MaskAddress,
    count: usize,
    eligible: &[bool],
    out: &mut [bool],
) -> Result<()> {
    check_positions("eligible", eligible.len())?;
    validate::len("out", out.len(), eligible.len())?;
    let n_el = eligible.iter().filter(|&&e| e).count();
    if count > n_el {
        return Err(Error::invalid(
            "count",
            format!("{count} exceeds the {n_el} eligible positions"),
        ));
    }
    let mut keyed: Vec<(f64, usize)> = eligible
        .iter()
        .enumerate()
        .filter(|(_, e)| **e)
        .map(|(i, _)| (addr.uniform(i), i))
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    out.fill(false);
    for &(_, i) in keyed.iter().take(count) {
        out[i] = true;
    }
    Ok(())
}

/// LaViDa's complementary masking (Li et al. 2025, §3.2): two masks over the eligible
/// (answer) positions such that every eligible position is masked in **exactly one** of
/// them; ineligible (prompt) positions are masked in neither.
///
/// `first[i] = eligible[i] ∧ u_i < prob`, `second[i] = eligible[i] ∧ ¬first[i]`: the first
/// mask is a Bernoulli(`prob`) mask, the second one its complement within the answer (a
/// Bernoulli(`1 − prob`) mask, i.e. the noise level `1 − t` when `prob = t`).
///
/// Errors: `eligible` empty, `prob` not in `[0, 1]`, outputs of another length.
pub fn complementary_masks(
    addr: MaskAddress,
    prob: f64,
    eligible: &[bool],
    first: &mut [bool],
    second: &mut [bool],
) -> Result<()> {
    check_positions("eligible", eligible.len())?;
    validate::probability("prob", prob)?;
    validate::len("first", first.len(), eligible.len())?;
    validate::len("second", second.len(), eligible.len())?;
    for (i, &e) in eligible.iter().enumerate() {
        let a = e && addr.uniform(i) < prob;
        first[i] = a;
        second[i] = e && !a;
    }
    Ok(())
}

/// Nested (coupled) masks at `K` noise levels: `out[k, i] = u_i < probs[k, i]` from one
/// address, for masking probabilities `probs [K, L]` that are non-decreasing in `k` at every
/// position (levels sorted by increasing noise, e.g. `probs[k, i] = 1 − α_i(t_k)` with
/// `t_1 < t_2 < …`). Then `out[k]` ⊆ `out[k + 1]` for every `k`: the coupled forward process
/// of DPLM/RDM, where a token masked at `t₁` stays masked at every `t₂ > t₁`.
///
/// Errors: `K = 0` or `L = 0`, entries outside `[0, 1]`, a column that decreases in `k`,
/// `out` of another shape.
pub fn nested_masks(
    addr: MaskAddress,
    probs: ArrayView2<'_, f64>,
    mut out: ArrayViewMut2<'_, bool>,
) -> Result<()> {
    let (k, l) = probs.dim();
    if k == 0 {
        return Err(Error::invalid("probs", "no noise levels (K = 0)"));
    }
    check_positions("probs", l)?;
    if out.dim() != (k, l) {
        return Err(Error::shape(
            "out",
            format!("[{k}, {l}]"),
            format!("{:?}", out.shape()),
        ));
    }
    for ((r, i), &p) in probs.indexed_iter() {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::invalid(
                "probs",
                format!("probs[{r}, {i}] = {p} is not a probability in [0, 1]"),
            ));
        }
        if r > 0 && p < probs[[r - 1, i]] {
            return Err(Error::invalid(
                "probs",
                format!(
                    "probs[{r}, {i}] = {p} < probs[{}, {i}] = {}: levels must be sorted by \
                     increasing noise",
                    r - 1,
                    probs[[r - 1, i]]
                ),
            ));
        }
    }
    for i in 0..l {
        let u = addr.uniform(i);
        for r in 0..k {
            out[[r, i]] = u < probs[[r, i]];
        }
    }
    Ok(())
}

/// `out[i] = mask_token` where `mask[i]`, else `x0[i]`.
///
/// Errors: length mismatches, `L = 0`.
pub fn apply_mask(x0: &[u32], mask: &[bool], mask_token: u32, out: &mut [u32]) -> Result<()> {
    check_positions("x0", x0.len())?;
    validate::len("mask", mask.len(), x0.len())?;
    validate::len("out", out.len(), x0.len())?;
    for ((o, &x), &m) in out.iter_mut().zip(x0).zip(mask) {
        *o = if m { mask_token } else { x };
    }
    Ok(())
}
