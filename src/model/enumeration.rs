//! The enumeration oracle: an explicit joint law over all `V^L` sequences (DESIGN §4,
//! "for small spaces enumerate `p_t` exactly").
//!
//! Sequences are indexed lexicographically with the first token most significant:
//!
//! ```text
//! index(x) = Σ_{i=0}^{L−1} x_i · V^{L−1−i}.
//! ```
//!
//! Every quantity is an explicit sum over this table, so the oracle is slow (`O(L·V^L)` per
//! posterior) but has no structure to get wrong: it is the reference the Markov-chain
//! oracle and every sampler are checked against on small spaces.

use ndarray::ArrayViewMut2;

use super::oracle::{
    ExactPosterior, check_posterior_out, emissions, exp_shifted, inverse_cdf, zero_evidence,
};
use crate::error::{Error, Result};
use crate::kernel::Channel;
use crate::rng::CounterRng;
use crate::validate;

/// Largest table an [`EnumerationOracle`] accepts: `V^L ≤ 2^22` (4,194,304 sequences,
/// 32 MiB of f64 per table).
pub const MAX_ENUMERATION_STATES: usize = 1 << 22;

/// An explicit distribution `p(x_0)` over `V^L` sequences, indexed lexicographically.
///
/// `V` is the full state space of the channels it will be used with; states the data never
/// uses (e.g. a mask token) simply carry zero mass.
#[derive(Debug, Clone)]
pub struct EnumerationOracle {
    vocab: usize,
    len: usize,
    probs: Vec<f64>,
    /// Inclusive running sums of `probs`, for inverse-CDF sampling.
    cdf: Vec<f64>,
}

/// `V^L` if it is at most [`MAX_ENUMERATION_STATES`].
fn table_size(vocab: usize, len: usize) -> Result<usize> {
    validate::vocab("vocab", vocab)?;
    if len == 0 {
        return Err(Error::invalid("len", "sequence length must be at least 1"));
    }
    let n = u32::try_from(len)
        .ok()
        .and_then(|l| vocab.checked_pow(l))
        .filter(|&n| n <= MAX_ENUMERATION_STATES);
    n.ok_or_else(|| {
        Error::invalid(
            "len",
            format!(
                "V^L = {vocab}^{len} exceeds the enumeration cap of {MAX_ENUMERATION_STATES} sequences"
            ),
        )
    })
}

impl EnumerationOracle {
    /// The oracle with `probs[index(x)] = p(x)`, `probs.len() = V^L`.
    ///
    /// Errors: `vocab < 2`, `len = 0`, `V^L > 2^22`, a length mismatch, or `probs` not a
    /// distribution (non-finite, negative, or summing away from 1 by more than `1e-9`).
    pub fn new(vocab: usize, len: usize, probs: Vec<f64>) -> Result<Self> {
        let n = table_size(vocab, len)?;
        validate::len("probs", probs.len(), n)?;
        validate::distribution("probs", &probs, validate::SIMPLEX_TOL)?;
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for &p in &probs {
            acc += p;
            cdf.push(acc);
        }
        Ok(EnumerationOracle {
            vocab,
            len,
            probs,
            cdf,
        })
    }

    /// The oracle of a list of `(sequence, probability)` pairs; repeated sequences add up,
    /// unlisted sequences get 0. Errors as [`new`](Self::new), plus a sequence of the
    /// wrong length or with a token `≥ V`.
    pub fn from_pairs(vocab: usize, len: usize, pairs: &[(Vec<u32>, f64)]) -> Result<Self> {
        let n = table_size(vocab, len)?;
        let mut probs = vec![0.0; n];
        for (seq, p) in pairs {
            validate::len("pairs", seq.len(), len)?;
            validate::tokens("pairs", seq, vocab)?;
            if !p.is_finite() || *p < 0.0 {
                return Err(Error::NotADistribution {
                    arg: "pairs",
                    reason: format!(
                        "probability {p} of sequence {seq:?} is not a finite non-negative number"
                    ),
                });
            }
            probs[index_of(seq, vocab)] += p;
        }
        Self::new(vocab, len, probs)
    }

    /// The explicit joint of any other oracle: `probs[index(x)] = exp(oracle.log_prob_x0(x))`.
    /// Errors if `V^L` exceeds the cap.
    pub fn from_oracle(oracle: &dyn ExactPosterior) -> Result<Self> {
        let (vocab, len) = (oracle.vocab_size(), oracle.seq_len());
        let n = table_size(vocab, len)?;
        let mut probs = Vec::with_capacity(n);
        let mut x = vec![0u32; len];
        for idx in 0..n {
            sequence_into(idx, vocab, &mut x);
            probs.push(oracle.log_prob_x0(&x)?.exp());
        }
        Self::new(vocab, len, probs)
    }

    /// The table `p(x)` in lexicographic order.
    pub fn probs(&self) -> &[f64] {
        &self.probs
    }

    /// `p(x_0)`. Errors on a wrong length or a token `≥ V`.
    pub fn prob(&self, x0: &[u32]) -> Result<f64> {
        validate::len("x0", x0.len(), self.len)?;
        validate::tokens("x0", x0, self.vocab)?;
        Ok(self.probs[index_of(x0, self.vocab)])
    }

    /// The lexicographic index `Σ_i x_i V^{L−1−i}` of a sequence. Errors on a wrong length
    /// or a token `≥ V`.
    pub fn index(&self, x: &[u32]) -> Result<usize> {
        validate::len("x", x.len(), self.len)?;
        validate::tokens("x", x, self.vocab)?;
        Ok(index_of(x, self.vocab))
    }

    /// The sequence with lexicographic index `index < V^L`.
    pub fn sequence(&self, index: usize) -> Result<Vec<u32>> {
        if index >= self.probs.len() {
            return Err(Error::invalid(
                "index",
                format!("{index} is not below V^L = {}", self.probs.len()),
            ));
        }
        let mut x = vec![0u32; self.len];
        sequence_into(index, self.vocab, &mut x);
        Ok(x)
    }

    /// The exact noisy marginal over all `V^L` states of `x_t`:
    ///
    /// ```text
    /// p_t(y) = Σ_x p(x) Π_i Q̄(x_i, y_i),   Q̄(a, b) = channel.transition_row(a)[b],
    /// ```
    ///
    /// computed by contracting the table with `Q̄` one axis at a time (`O(L·V^{L+1})`),
    /// indexed lexicographically like [`probs`](Self::probs). Errors: a channel with another
    /// `V`, or rows of `Q̄` that are not distributions (tolerance `1e-9`).
    pub fn marginal_xt(&self, channel: &dyn Channel) -> Result<Vec<f64>> {
        let v = self.vocab;
        if channel.vocab_size() != v {
            return Err(Error::shape(
                "channel",
                format!("vocab_size {v} (the oracle's)"),
                format!("vocab_size {}", channel.vocab_size()),
            ));
        }
        let mut q = vec![0.0; v * v];
        for (a, row) in q.chunks_exact_mut(v).enumerate() {
            channel.transition_row(a as u32, row)?;
            validate::distribution("channel", row, validate::SIMPLEX_TOL)?;
        }
        let mut cur = self.probs.clone();
        let mut next = vec![0.0; cur.len()];
        let mut inner = 1usize; // stride of the axis being contracted
        for _axis in 0..self.len {
            let outer_block = inner * v;
            next.iter_mut().for_each(|x| *x = 0.0);
            for base in (0..cur.len()).step_by(outer_block) {
                for a in 0..v {
                    let src = &cur[base + a * inner..base + (a + 1) * inner];
                    if src.iter().all(|&p| p == 0.0) {
                        continue;
                    }
                    for b in 0..v {
                        let w = q[a * v + b];
                        if w == 0.0 {
                            continue;
                        }
                        let dst = &mut next[base + b * inner..base + (b + 1) * inner];
                        dst.iter_mut().zip(src).for_each(|(d, &s)| *d += w * s);
                    }
                }
            }
            std::mem::swap(&mut cur, &mut next);
            inner *= v;
        }
        Ok(cur)
    }

    /// Leave-one-out weights `p(x) Π_{j ≠ i} e_j(x_j)` summed into `out[i, x_i]`, each row
    /// `i` scaled by its own factor (rows are normalised by the caller); returns whether
    /// the full evidence `Σ_x p(x) Π_j e_j(x_j)` is positive. `le` holds `ln e` (`[L, V]`).
    ///
    /// The weights are formed in log space from prefix and suffix sums of `ln e`
    /// (`O(L·V^L)`), and row `i` is shifted by its own maximum `max_x ln p(x) +
    /// Σ_{j ≠ i} ln e_j(x_j)` (two passes): the leave-one-out rows may be dominated by
    /// sequences whose full weight is negligible (the left-out emission is tiny), so the
    /// shift of the full weights would not do.
    fn accumulate_loo(&self, le: &[f64], out: &mut ArrayViewMut2<'_, f64>) -> bool {
        let (v, l) = (self.vocab, self.len);
        let mut x = vec![0u32; l];
        let mut prefix = vec![0.0; l + 1];
        let mut suffix = vec![0.0; l + 1];
        // `prefix[i] + suffix[i + 1] = Σ_{j ≠ i} ln e_j(x_j)`; no `-inf − (-inf)` arises.
        let sums = |idx: usize, x: &mut [u32], prefix: &mut [f64], suffix: &mut [f64]| {
            sequence_into(idx, v, x);
            for i in 0..l {
                prefix[i + 1] = prefix[i] + le[i * v + x[i] as usize];
                let j = l - 1 - i;
                suffix[j] = suffix[j + 1] + le[j * v + x[j] as usize];
            }
        };
        let mut shift = vec![f64::NEG_INFINITY; l];
        let mut full = f64::NEG_INFINITY;
        for (idx, &p) in self.probs.iter().enumerate() {
            if p == 0.0 {
                continue;
            }
            sums(idx, &mut x, &mut prefix, &mut suffix);
            let lp = p.ln();
            full = full.max(lp + prefix[l]);
            for (i, m) in shift.iter_mut().enumerate() {
                *m = m.max(lp + prefix[i] + suffix[i + 1]);
            }
        }
        if full == f64::NEG_INFINITY {
            return false;
        }
        for (idx, &p) in self.probs.iter().enumerate() {
            if p == 0.0 {
                continue;
            }
            sums(idx, &mut x, &mut prefix, &mut suffix);
            let lp = p.ln();
            for (i, &xi) in x.iter().enumerate() {
                out[[i, xi as usize]] += (lp + prefix[i] + suffix[i + 1] - shift[i]).exp();
            }
        }
        true
    }

    /// Unnormalised posterior weights `w(x) = p(x) Π_i e_i(x_i)` summed into `out[i, x_i]`,
    /// returning `(Σ_x w(x), log-scale)` with `ln Σ_x p(x) Π_i q(x_t^i | x_i) = ln Σ + log-scale`.
    ///
    /// The weights are formed in log space and shifted by their maximum before
    /// exponentiating (two passes), so a product of many small emissions never underflows
    /// to an impossible observation: the evidence is exact to rounding whenever it is
    /// representable as a logarithm.
    fn accumulate(
        &self,
        xt: &[u32],
        channel: &dyn Channel,
        mut out: Option<&mut ArrayViewMut2<'_, f64>>,
    ) -> Result<(f64, f64)> {
        let (v, l) = (self.vocab, self.len);
        let em = emissions(xt, channel, l, v)?;
        if em.impossible() {
            return Ok((0.0, f64::NEG_INFINITY));
        }
        let log_e = em.log();
        let mut x = vec![0u32; l];
        let log_weight = |idx: usize, p: f64, x: &mut [u32]| -> f64 {
            sequence_into(idx, v, x);
            let mut lw = p.ln();
            for (i, &xi) in x.iter().enumerate() {
                lw += log_e[i * v + xi as usize];
            }
            lw
        };
        let mut shift = f64::NEG_INFINITY;
        for (idx, &p) in self.probs.iter().enumerate() {
            if p > 0.0 {
                shift = shift.max(log_weight(idx, p, &mut x));
            }
        }
        if shift == f64::NEG_INFINITY {
            return Ok((0.0, f64::NEG_INFINITY));
        }
        let mut total = 0.0;
        for (idx, &p) in self.probs.iter().enumerate() {
            if p == 0.0 {
                continue;
            }
            let w = (log_weight(idx, p, &mut x) - shift).exp();
            if w == 0.0 {
                continue;
            }
            total += w;
            if let Some(o) = out.as_deref_mut() {
                for (i, &xi) in x.iter().enumerate() {
                    o[[i, xi as usize]] += w;
                }
            }
        }
        Ok((total, em.log_scale + shift))
    }
}

impl ExactPosterior for EnumerationOracle {
    fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn seq_len(&self) -> usize {
        self.len
    }

    fn log_prob_x0(&self, x0: &[u32]) -> Result<f64> {
        Ok(self.prob(x0)?.ln())
    }

    /// `ln Σ_x p(x) Π_i q(x_t^i | x_i)` by direct summation over the support.
    fn log_prob_xt(&self, xt: &[u32], channel: &dyn Channel) -> Result<f64> {
        let (total, log_scale) = self.accumulate(xt, channel, None)?;
        Ok(total.ln() + log_scale)
    }

    /// `out[i, v] = Σ_{x : x_i = v} p(x) Π_j q(x_t^j | x_j) / Σ_x p(x) Π_j q(x_t^j | x_j)`.
    fn posterior_x0(
        &self,
        xt: &[u32],
        channel: &dyn Channel,
        mut out: ArrayViewMut2<'_, f64>,
    ) -> Result<()> {
        check_posterior_out(&out, self.len, self.vocab)?;
        out.fill(0.0);
        let (total, _) = self.accumulate(xt, channel, Some(&mut out))?;
        if total <= 0.0 {
            out.fill(0.0);
            return Err(zero_evidence());
        }
        out.mapv_inplace(|p| p / total);
        Ok(())
    }

    /// `p(x_0^i = v | x_t^{−i})` by direct summation with the emission at `i` left out.
    fn posterior_x0_loo(
        &self,
        xt: &[u32],
        channel: &dyn Channel,
        mut out: ArrayViewMut2<'_, f64>,
    ) -> Result<()> {
        check_posterior_out(&out, self.len, self.vocab)?;
        let em = emissions(xt, channel, self.len, self.vocab)?;
        out.fill(0.0);
        if em.impossible() || !self.accumulate_loo(&em.log(), &mut out) {
            out.fill(0.0);
            return Err(zero_evidence());
        }
        for mut row in out.rows_mut() {
            let z = row.sum();
            row.mapv_inplace(|p| p / z);
        }
        Ok(())
    }

    /// One inverse-CDF draw over the `V^L` posterior weights `p(x) Π_i q(x_t^i | x_i)`.
    fn sample_x0_given_xt(
        &self,
        xt: &[u32],
        channel: &dyn Channel,
        rng: &mut CounterRng,
    ) -> Result<Vec<u32>> {
        let (v, l) = (self.vocab, self.len);
        let em = emissions(xt, channel, l, v)?;
        if em.impossible() {
            return Err(zero_evidence());
        }
        // Weights in log space, shifted by their maximum, so a product of small emissions
        // never underflows (as in `accumulate`).
        let le = em.log();
        let mut x = vec![0u32; l];
        let mut lw = vec![f64::NEG_INFINITY; self.probs.len()];
        for (idx, (&p, wi)) in self.probs.iter().zip(lw.iter_mut()).enumerate() {
            if p == 0.0 {
                continue;
            }
            sequence_into(idx, v, &mut x);
            *wi = x
                .iter()
                .enumerate()
                .fold(p.ln(), |acc, (i, &xi)| acc + le[i * v + xi as usize]);
        }
        let mut w = vec![0.0; lw.len()];
        if exp_shifted(&lw, &mut w) == f64::NEG_INFINITY {
            return Err(zero_evidence());
        }
        sequence_into(inverse_cdf(&w, rng.uniform()), v, &mut x);
        Ok(x)
    }

    /// One uniform `u`, then the first sequence whose cumulative mass exceeds `u · Σ p`.
    fn sample_x0(&self, rng: &mut CounterRng) -> Vec<u32> {
        let total = self.cdf.last().copied().unwrap_or(0.0);
        let target = rng.uniform() * total;
        let mut idx = self.cdf.partition_point(|&c| c <= target);
        if idx >= self.probs.len() {
            // Round-off: u·total rounded up to total; take the last sequence of positive mass.
            idx = self.probs.iter().rposition(|&p| p > 0.0).unwrap_or(0);
        }
        let mut x = vec![0u32; self.len];
        sequence_into(idx, self.vocab, &mut x);
        x
    }
}

/// `Σ_i x_i V^{L−1−i}` (tokens already validated).
fn index_of(x: &[u32], vocab: usize) -> usize {
    x.iter().fold(0usize, |acc, &t| acc * vocab + t as usize)
}

/// Inverse of [`index_of`] into `x` (its length is `L`).
fn sequence_into(mut idx: usize, vocab: usize, x: &mut [u32]) {
    for slot in x.iter_mut().rev() {
        *slot = (idx % vocab) as u32;
        idx /= vocab;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_roundtrip() {
        let mut x = vec![0u32; 3];
        for idx in 0..27 {
            sequence_into(idx, 3, &mut x);
            assert_eq!(index_of(&x, 3), idx);
        }
        sequence_into(5, 3, &mut x);
        assert_eq!(x, vec![0, 1, 2]);
    }

    #[test]
    fn cap_is_enforced() {
        assert!(table_size(2, 22).is_ok());
        assert!(table_size(2, 23).is_err());
        assert!(table_size(1000, 1000).is_err());
        assert!(table_size(2, usize::MAX).is_err());
    }
}
