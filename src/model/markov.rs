//! The Markov-chain oracle: exact posteriors for real-length sequences by forward–backward
//! (DESIGN §4: "a Markov-chain prior gives exact `p(x0^i | x_t)` … by forward–backward;
//! every per-token forward kernel makes `x_t` an HMM").
//!
//! # The model
//!
//! An order-`k` chain on `V` states and length `L ≥ max(k, 1)`:
//!
//! ```text
//! p(x_0) = π(x_{0..k}) · Π_{i=k}^{L−1} P(x_{i−k..i}, x_i),
//! ```
//!
//! with `π` a law on the first `k` tokens (a vector of length `V^k`) and `P` a row-stochastic
//! tensor `[V^k, V]`. Contexts (`k`-grams) are indexed lexicographically, oldest token most
//! significant: `h = Σ_{j<k} x_{i−k+1+j} V^{k−1−j}`. Order `k = 0` is the i.i.d. law
//! `p(x_0) = Π_i P(∅, x_i)` (then `π = [1]` and `P` has one row).
//!
//! # The hidden Markov model
//!
//! Given `x_0`, a per-token channel corrupts each token independently, so with the hidden
//! state `h_i = x_{i−k+1..i}` (the last `k` clean tokens, `i = k−1, …, L−1`) and emission
//! `e_i(v) = q(x_t^i | x_0^i = v)`, the pair `(h, x_t)` is an HMM (Rabiner 1989). The
//! successor of `h` on token `u` is `h' = (h mod V^{k−1}) V + u`.
//!
//! **Scaled forward** (Rabiner §V.A; see *Numerics* for how products are formed): with
//! `last(h) = h mod V` and `digit_j(h)` the `j`-th
//! token of the initial `k`-gram,
//!
//! ```text
//! α̃_{k−1}(h)  = π(h) Π_{j<k} e_j(digit_j(h)),
//! α̃_i(h')     = e_i(last(h')) Σ_{h → h'} α̂_{i−1}(h) P(h, last(h')),   i ≥ k,
//! c_i          = Σ_h α̃_i(h),    α̂_i = α̃_i / c_i,
//! ln p_t(x_t)  = Σ_i ln c_i  (+ the emission scales, below).
//! ```
//!
//! **Scaled backward**:
//!
//! ```text
//! β̂_{L−1}(h) = 1,
//! β̂_{i−1}(h) = Σ_u P(h, u) e_i(u) β̂_i((h mod V^{k−1}) V + u) / c_i,
//! ```
//!
//! and the smoothed state marginal is `γ_i(h) = α̂_i(h) β̂_i(h) = p(h_i = h | x_t)`. The token
//! posterior is `p(x_0^i = v | x_t) = Σ_{last(h) = v} γ_i(h)` for `i ≥ k−1`, and
//! `Σ_{digit_i(h) = v} γ_{k−1}(h)` for `i < k−1`.
//!
//! **Leave-one-out** (for the concrete score): the emission at `i` is dropped from position
//! `i`'s marginal, `p(x_0^i = v | x_t^{−i}) ∝ Σ_{last(h) = v} [Σ_{h' → h} α̂_{i−1}(h')
//! P(h', v)] β̂_i(h)` for `i ≥ k`, and the initial weights omit `e_i` for `i < k`.
//!
//! **Forward filtering, backward sampling** (exact joint draws from `p(x_0 | x_t)`):
//! `h_{L−1} ~ α̂_{L−1}`, then `h_{i−1} ∝ α̂_{i−1}(h_{i−1}) P(h_{i−1}, last(h_i))` over the `V`
//! predecessors of `h_i`.
//!
//! # Numerics
//!
//! Each emission row is first divided by its maximum `m_i` (adding `Σ ln m_i` to the
//! log-likelihood) and kept as `ln e_i`. `α̂` (summing to 1) and `β̂` (maximum 1, a
//! constant factor per position is irrelevant to the normalised rows) are **linear**
//! vectors, and every transition sum `Σ_h α̂(h) P(h, h')` or `Σ_u P(h, u) [·]` is a plain
//! multiply–add (the `O(V^{k+1})` hot loop, no `exp`/`ln`). Only the emission is applied in
//! log space, per token: for `x(h) e(last(h))` the shift
//! `M = max_u (ln max_{last(h)=u} x(h) + ln e(u))` and the factor `exp(ln e(u) − M)` (finite, at most `1 / max x`) make the
//! largest product exactly 1 however small `e` is (a nearly deterministic channel, e.g. a
//! discretized Gaussian of small width, has likelihood ratios like `e^{−400}`, and the row
//! maximum may sit on a zero-prior mask token) — `O(V)` transcendental functions per step.
//! `ln c_i = M + ln Σ` accumulates the evidence. The first `k` tokens' weights and the
//! backward-sampling weights are formed in log space (`O(k V^k)` once, `O(V)` per step).
//! `β̂` is kept only on contexts of positive prior probability (computed once per chain),
//! so a zero-prior context (whose `β` can exceed every feasible one's beyond f64's range)
//! never sets its scale.
//!
//! States whose mass relative to the largest is below f64's range become 0. That is
//! harmless unless the past and the future of `x_t` disagree by more than f64's range
//! (a state nearly ruled out by one side is the one the other side needs), so each step
//! checks that nothing lost can matter: a prediction or backward sum whose maximum falls
//! below `2^{−60}` of its input's, an emission shift more than `2^{60}` below the largest
//! unshifted product, or a smoothed row `α̂ β̂` whose maximum is below `2^{−60} max α̂ ·
//! max β̂`. If any check fails, the call is redone by the **log-space fallback** (`ln α̂`,
//! `ln β̂`, log-sum-exp transition sums, each row as `Σ exp(ℓ − max ℓ)`, `O(L V^{k+1})`
//! exponentials), whose only `ZeroProbability` is `p_t(x_t) = 0` exactly. Cost of the
//! fast path: `O(L·V^{k+1})` multiply–adds (one more pass per step for the leave-one-out
//! rows) and `O(L·V^k)` memory.

use ndarray::ArrayViewMut2;

mod forward;
mod logspace;

use forward::normalise_rows;

use super::oracle::{
    ExactPosterior, check_posterior_out, emissions, exp_shifted, inverse_cdf, log_sum_exp,
    zero_evidence,
};
use crate::error::{Error, Result};
use crate::kernel::Channel;
use crate::rng::CounterRng;
use crate::validate;

/// Largest transition tensor a [`MarkovChainOracle`] accepts: `V^{k+1} ≤ 2^24` entries
/// (128 MiB of f64).
pub const MAX_TRANSITION_ENTRIES: usize = 1 << 24;

/// An order-`k` Markov chain prior on sequences of length `L` over `V` states, with exact
/// posteriors under any per-token channel by scaled forward–backward (module docs).
#[derive(Debug, Clone)]
pub struct MarkovChainOracle {
    vocab: usize,
    order: usize,
    len: usize,
    /// `π`, length `V^k`.
    initial: Vec<f64>,
    /// `P`, row-major `[V^k, V]`.
    transition: Vec<f64>,
    /// [`prior_support`] for this length.
    support: Vec<bool>,
}

/// Whether each context has positive prior probability at each hidden position `m = 0..n`,
/// `n = L − k + 1` (`[n, V^k]`; `π(h) > 0` at `m = 0`, then any supported predecessor with
/// `P(h, u) > 0`; empty for `k = 0`): the states the backward pass keeps `β̂` on. Zero-prior
/// contexts (e.g. containing a mask token) cannot contribute to any posterior, and their
/// `β` can exceed every feasible state's by more than f64's range. `O(n V^{k+1})`
/// comparisons, once per chain.
fn prior_support(
    vocab: usize,
    order: usize,
    len: usize,
    initial: &[f64],
    transition: &[f64],
) -> Vec<bool> {
    if order == 0 {
        return Vec::new();
    }
    let v = vocab;
    let s = initial.len();
    let r = (s / v).max(1);
    let n = len + 1 - order;
    let mut reach = vec![false; n * s];
    reach[..s]
        .iter_mut()
        .zip(initial)
        .for_each(|(x, &p)| *x = p > 0.0);
    for m in 1..n {
        let (prev, cur) = reach.split_at_mut(m * s);
        let prev = &prev[(m - 1) * s..];
        for (h, row) in transition.chunks_exact(v).enumerate() {
            if prev[h] {
                let base = (h % r) * v;
                cur[base..base + v]
                    .iter_mut()
                    .zip(row)
                    .for_each(|(x, &q)| *x |= q > 0.0);
            }
        }
    }
    reach
}

/// `V^k` if `V^{k+1}` is within [`MAX_TRANSITION_ENTRIES`].
fn context_count(vocab: usize, order: usize) -> Result<usize> {
    validate::vocab("vocab", vocab)?;
    order
        .checked_add(1)
        .and_then(|e| u32::try_from(e).ok())
        .and_then(|e| vocab.checked_pow(e))
        .filter(|&n| n <= MAX_TRANSITION_ENTRIES)
        .map(|n| n / vocab)
        .ok_or_else(|| {
            Error::invalid(
                "order",
                format!(
                    "V^(k+1) = {vocab}^{} exceeds the cap of {MAX_TRANSITION_ENTRIES} transition entries",
                    order.saturating_add(1)
                ),
            )
        })
}

fn check_len(len: usize, order: usize) -> Result<()> {
    if len == 0 || len < order {
        return Err(Error::invalid(
            "len",
            format!(
                "sequence length {len} must be at least max(order, 1) = {}",
                order.max(1)
            ),
        ));
    }
    Ok(())
}

impl MarkovChainOracle {
    /// The chain with initial law `initial = π` (length `V^k`) and transition tensor
    /// `transition = P` (row-major `[V^k, V]`, every row a distribution), for length `len`.
    ///
    /// Errors: `vocab < 2`, `V^{k+1} > 2^24`, `len < max(k, 1)`, wrong lengths, or `π` or a
    /// row of `P` that is not a distribution (tolerance `1e-9`). Rows of unreachable contexts
    /// must still be distributions (any one will do).
    pub fn new(
        vocab: usize,
        order: usize,
        len: usize,
        initial: Vec<f64>,
        transition: Vec<f64>,
    ) -> Result<Self> {
        let s = context_count(vocab, order)?;
        check_len(len, order)?;
        validate::len("initial", initial.len(), s)?;
        validate::len("transition", transition.len(), s * vocab)?;
        validate::distribution("initial", &initial, validate::SIMPLEX_TOL)?;
        for row in transition.chunks_exact(vocab) {
            validate::distribution("transition", row, validate::SIMPLEX_TOL)?;
        }
        Ok(MarkovChainOracle {
            vocab,
            order,
            len,
            support: prior_support(vocab, order, len, &initial, &transition),
            initial,
            transition,
        })
    }

    /// The i.i.d. law `p(x_0) = Π_i probs[x_i]` (order 0). Errors as [`new`](Self::new).
    pub fn iid(vocab: usize, len: usize, probs: Vec<f64>) -> Result<Self> {
        Self::new(vocab, 0, len, vec![1.0], probs)
    }

    /// Fit an order-`k` chain by counting (the `k+1`-gram maximum-likelihood estimate with
    /// add-`c` smoothing, `c = pseudocount`):
    ///
    /// ```text
    /// π(h)    = (N_init(h) + c) / (N + c V^k),
    /// P(h, u) = (N(h, u) + c) / (N(h) + c V),
    /// ```
    ///
    /// where `N_init(h)` counts sequences starting with the `k`-gram `h`, `N` the sequences,
    /// `N(h, u)` the windows `x_{i−k..i} = h, x_i = u` over all sequences and
    /// `N(h) = Σ_u N(h, u)`. A context never seen with `c = 0` gets the uniform row. Sequences
    /// may have any length `≥ max(k, 1)`; the fitted chain has length `len`.
    ///
    /// Errors: no sequences, a sequence shorter than `max(k, 1)`, a token `≥ V`, a negative
    /// or non-finite pseudocount, and the errors of [`new`](Self::new).
    pub fn fit<I, S>(
        sequences: I,
        order: usize,
        vocab: usize,
        len: usize,
        pseudocount: f64,
    ) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u32]>,
    {
        let s = context_count(vocab, order)?;
        check_len(len, order)?;
        if !pseudocount.is_finite() || pseudocount < 0.0 {
            return Err(Error::invalid(
                "pseudocount",
                format!("{pseudocount} must be finite and non-negative"),
            ));
        }
        let r = (s / vocab).max(1); // V^{k−1} for k ≥ 1 (unused for k = 0)
        let mut init_counts = vec![0.0; s];
        let mut counts = vec![0.0; s * vocab];
        let mut n_seq = 0usize;
        for (n, seq) in sequences.into_iter().enumerate() {
            let x = seq.as_ref();
            if x.is_empty() || x.len() < order {
                return Err(Error::invalid(
                    "sequences",
                    format!(
                        "sequence {n} has length {} < max(order, 1) = {}",
                        x.len(),
                        order.max(1)
                    ),
                ));
            }
            validate::tokens("sequences", x, vocab)?;
            n_seq += 1;
            let mut h = 0usize;
            for &t in &x[..order] {
                h = h * vocab + t as usize;
            }
            init_counts[h] += 1.0;
            for &t in &x[order..] {
                counts[h * vocab + t as usize] += 1.0;
                if order > 0 {
                    h = (h % r) * vocab + t as usize;
                }
            }
        }
        if n_seq == 0 {
            return Err(Error::invalid("sequences", "no sequences to fit"));
        }
        let denom = n_seq as f64 + pseudocount * s as f64;
        let initial = init_counts
            .iter()
            .map(|&n| (n + pseudocount) / denom)
            .collect();
        let mut transition = counts;
        for row in transition.chunks_exact_mut(vocab) {
            let total: f64 = row.iter().sum::<f64>() + pseudocount * vocab as f64;
            if total > 0.0 {
                row.iter_mut().for_each(|n| *n = (*n + pseudocount) / total);
            } else {
                row.iter_mut().for_each(|p| *p = 1.0 / vocab as f64);
            }
        }
        Self::new(vocab, order, len, initial, transition)
    }

    /// The same chain on a larger state space: old token `j` becomes `ids[j]` of
    /// `new_vocab` states, every other state (e.g. a mask token at any index) gets prior
    /// mass 0. Contexts that contain a new state are unreachable and get the uniform row.
    ///
    /// Errors: `ids.len() ≠ V`, an id `≥ new_vocab`, repeated ids, or a tensor over the cap.
    pub fn embed(&self, ids: &[u32], new_vocab: usize) -> Result<Self> {
        let (v, k) = (self.vocab, self.order);
        validate::len("ids", ids.len(), v)?;
        let s_new = context_count(new_vocab, k)?;
        validate::tokens("ids", ids, new_vocab)?;
        let mut seen = vec![false; new_vocab];
        for (j, &id) in ids.iter().enumerate() {
            if std::mem::replace(&mut seen[id as usize], true) {
                return Err(Error::invalid(
                    "ids",
                    format!("id {id} (of old token {j}) is used twice"),
                ));
            }
        }
        let mut initial = vec![0.0; s_new];
        let mut transition = vec![1.0 / new_vocab as f64; s_new * new_vocab];
        for h in 0..self.initial.len() {
            // Re-index the context digit by digit.
            let mut rem = h;
            let mut h_new = 0usize;
            let mut place = 1usize;
            for _ in 0..k {
                h_new += ids[rem % v] as usize * place;
                rem /= v;
                place *= new_vocab;
            }
            initial[h_new] = self.initial[h];
            let row = &mut transition[h_new * new_vocab..(h_new + 1) * new_vocab];
            row.iter_mut().for_each(|p| *p = 0.0);
            for (u, &p) in self.transition[h * v..(h + 1) * v].iter().enumerate() {
                row[ids[u] as usize] = p;
            }
        }
        Self::new(new_vocab, k, self.len, initial, transition)
    }

    /// The same chain for sequences of length `len ≥ max(k, 1)`.
    pub fn with_seq_len(&self, len: usize) -> Result<Self> {
        check_len(len, self.order)?;
        Ok(MarkovChainOracle {
            len,
            support: prior_support(self.vocab, self.order, len, &self.initial, &self.transition),
            ..self.clone()
        })
    }

    /// The order `k`.
    pub fn order(&self) -> usize {
        self.order
    }

    /// The initial law `π` over the first `k` tokens (length `V^k`, lexicographic).
    pub fn initial(&self) -> &[f64] {
        &self.initial
    }

    /// The transition tensor `P`, row-major `[V^k, V]`.
    pub fn transition(&self) -> &[f64] {
        &self.transition
    }
}

impl ExactPosterior for MarkovChainOracle {
    fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn seq_len(&self) -> usize {
        self.len
    }

    /// `ln π(x_{0..k}) + Σ_{i ≥ k} ln P(x_{i−k..i}, x_i)`.
    fn log_prob_x0(&self, x0: &[u32]) -> Result<f64> {
        let (v, k) = (self.vocab, self.order);
        validate::len("x0", x0.len(), self.len)?;
        validate::tokens("x0", x0, v)?;
        let r = self.shift();
        let mut h = 0usize;
        for &t in &x0[..k] {
            h = h * v + t as usize;
        }
        let mut lp = self.initial[h].ln();
        for &t in &x0[k..] {
            lp += self.transition[h * v + t as usize].ln();
            if k > 0 {
                h = (h % r) * v + t as usize;
            }
        }
        Ok(lp)
    }

    /// `Σ_i ln c_i + Σ_i ln m_i` from the scaled forward pass (module docs).
    fn log_prob_xt(&self, xt: &[u32], channel: &dyn Channel) -> Result<f64> {
        let v = self.vocab;
        let em = emissions(xt, channel, self.len, v)?;
        if em.impossible() {
            return Ok(f64::NEG_INFINITY);
        }
        let le = em.log();
        let ll = if self.order == 0 {
            let lpi: Vec<f64> = self.transition[..v].iter().map(|p| p.ln()).collect();
            let mut buf = vec![0.0; v];
            le.chunks_exact(v)
                .map(|lei| {
                    buf.iter_mut()
                        .zip(lpi.iter().zip(lei))
                        .for_each(|(t, (a, b))| *t = a + b);
                    log_sum_exp(&buf)
                })
                .sum()
        } else {
            match self.forward(&le) {
                Some(fw) => fw.c.iter().sum(),
                None => {
                    let lt: Vec<f64> = self.transition.iter().map(|p| p.ln()).collect();
                    match self.log_forward(&lt, &le) {
                        Some(fw) => fw.c.iter().sum(),
                        None => f64::NEG_INFINITY,
                    }
                }
            }
        };
        Ok(ll + em.log_scale)
    }

    /// `p(x_0^i = v | x_t)` by scaled forward–backward (module docs).
    fn posterior_x0(
        &self,
        xt: &[u32],
        channel: &dyn Channel,
        mut out: ArrayViewMut2<'_, f64>,
    ) -> Result<()> {
        check_posterior_out(&out, self.len, self.vocab)?;
        let em = emissions(xt, channel, self.len, self.vocab)?;
        if em.impossible() || !self.smooth(&em.log(), false, &mut out) {
            out.fill(0.0);
            return Err(zero_evidence());
        }
        Ok(())
    }

    /// Leave-one-out posteriors by the same forward–backward pass with the emission at `i`
    /// left out of position `i`'s smoothed marginal (see `smooth`'s formula).
    fn posterior_x0_loo(
        &self,
        xt: &[u32],
        channel: &dyn Channel,
        mut out: ArrayViewMut2<'_, f64>,
    ) -> Result<()> {
        check_posterior_out(&out, self.len, self.vocab)?;
        let em = emissions(xt, channel, self.len, self.vocab)?;
        if em.impossible() || !self.smooth(&em.log(), true, &mut out) {
            out.fill(0.0);
            return Err(zero_evidence());
        }
        Ok(())
    }

    /// Forward filtering, backward sampling: draw the last hidden state
    /// `h_{L−1} ~ α̂_{L−1}`, then for `i = L−1, …, k` the predecessor
    /// `h_{i−1} ∝ α̂_{i−1}(h_{i−1}) P(h_{i−1}, last(h_i))` (one uniform each; `k = 0`: each
    /// token `∝ P(∅, v) e_i(v)` independently).
    fn sample_x0_given_xt(
        &self,
        xt: &[u32],
        channel: &dyn Channel,
        rng: &mut CounterRng,
    ) -> Result<Vec<u32>> {
        let (v, k, l) = (self.vocab, self.order, self.len);
        let em = emissions(xt, channel, l, v)?;
        if em.impossible() {
            return Err(zero_evidence());
        }
        let le = em.log();
        let mut x = vec![0u32; l];
        let mut lw = vec![0.0; v];
        let mut w = vec![0.0; v];
        if k == 0 {
            // Each token ∝ π_u e_u, formed in log space and shifted by its maximum.
            let lpi: Vec<f64> = self.transition[..v].iter().map(|p| p.ln()).collect();
            for (xi, lei) in x.iter_mut().zip(le.chunks_exact(v)) {
                lw.iter_mut()
                    .zip(lpi.iter().zip(lei))
                    .for_each(|(d, (a, b))| *d = a + b);
                if exp_shifted(&lw, &mut w) == f64::NEG_INFINITY {
                    return Err(zero_evidence());
                }
                *xi = inverse_cdf(&w, rng.uniform()) as u32;
            }
            return Ok(x);
        }
        // α̂ linear from the fast forward pass, or ln α̂ from the log-space fallback.
        let (alpha, log_alpha) = match self.forward(&le) {
            Some(fw) => (fw.alpha, false),
            None => {
                let lt: Vec<f64> = self.transition.iter().map(|p| p.ln()).collect();
                let fw = self.log_forward(&lt, &le).ok_or_else(zero_evidence)?;
                (fw.alpha, true)
            }
        };
        let s = self.initial.len();
        let r = self.shift();
        let n = alpha.len() / s;
        let mut h = if log_alpha {
            let mut last = vec![0.0; s];
            exp_shifted(&alpha[(n - 1) * s..], &mut last);
            inverse_cdf(&last, rng.uniform())
        } else {
            inverse_cdf(&alpha[(n - 1) * s..], rng.uniform())
        };
        for m in (1..n).rev() {
            let (base, u) = (h / v, h % v);
            x[k - 1 + m] = u as u32;
            let prev = &alpha[(m - 1) * s..m * s];
            for (a, t) in lw.iter_mut().enumerate() {
                let hp = a * r + base;
                let la = if log_alpha { prev[hp] } else { prev[hp].ln() };
                *t = la + self.transition[hp * v + u].ln();
            }
            // h is reachable (it was drawn with positive weight), so some predecessor has
            // positive weight; the products are formed in log space (V logarithms per
            // step) and shifted so the largest weight is exactly 1.
            if exp_shifted(&lw, &mut w) == f64::NEG_INFINITY {
                return Err(Error::Numerical {
                    what: "MarkovChainOracle::sample_x0_given_xt",
                    reason: "no predecessor of positive weight in backward sampling".into(),
                });
            }
            h = inverse_cdf(&w, rng.uniform()) * r + base;
        }
        let mut rem = h;
        for slot in x[..k].iter_mut().rev() {
            *slot = (rem % v) as u32;
            rem /= v;
        }
        Ok(x)
    }

    /// Ancestral sampling: the first `k` tokens from `π` (one uniform), then each token
    /// from its context's row of `P` (one uniform each), all by inverse CDF.
    fn sample_x0(&self, rng: &mut CounterRng) -> Vec<u32> {
        let (v, k) = (self.vocab, self.order);
        let r = self.shift();
        let mut x = Vec::with_capacity(self.len);
        let mut h = if k > 0 {
            inverse_cdf(&self.initial, rng.uniform())
        } else {
            0
        };
        let mut rem = h;
        let mut first = vec![0u32; k];
        for slot in first.iter_mut().rev() {
            *slot = (rem % v) as u32;
            rem /= v;
        }
        x.extend_from_slice(&first);
        for _ in k..self.len {
            let u = inverse_cdf(&self.transition[h * v..(h + 1) * v], rng.uniform());
            x.push(u as u32);
            if k > 0 {
                h = (h % r) * v + u;
            }
        }
        x
    }
}
