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

mod logspace;

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

    /// `r = V^{k−1}` (1 for `k = 0`): the successor of context `h` on token `u` is
    /// `(h mod r)·V + u`, and the predecessors of `h'` are `a·r + ⌊h'/V⌋`, `a ∈ 0..V`.
    fn shift(&self) -> usize {
        (self.initial.len() / self.vocab).max(1)
    }

    /// Add `g` to `out[j, digit_j(h)]` for every token `j < k` of the initial `k`-gram `h`.
    fn scatter_digits(&self, h: usize, g: f64, out: &mut ArrayViewMut2<'_, f64>) {
        let v = self.vocab;
        let mut rem = h;
        for j in (0..self.order).rev() {
            out[[j, rem % v]] += g;
            rem /= v;
        }
    }

    /// `ln α̃_{k−1}(h) = ln π(h) + Σ_{j<k, j ≠ skip} ln e_j(digit_j(h))` into `out`
    /// (length `V^k`), from log emissions `le` (`[L, V]`). Run once per call: `O(k V^k)`.
    fn log_initial_weights(&self, le: &[f64], skip: Option<usize>, out: &mut [f64]) {
        let (v, k) = (self.vocab, self.order);
        for (h, a) in out.iter_mut().enumerate() {
            let mut w = self.initial[h].ln();
            let mut rem = h;
            for j in (0..k).rev() {
                if w == f64::NEG_INFINITY {
                    break;
                }
                if skip != Some(j) {
                    w += le[j * v + rem % v];
                }
                rem /= v;
            }
            *a = w;
        }
    }

    /// The linear prediction step `out(h') = Σ_{h → h'} alpha(h) P(h, last(h'))`
    /// (`O(V^{k+1})`, no transcendental functions).
    fn predict(&self, alpha: &[f64], out: &mut [f64]) {
        let v = self.vocab;
        let r = self.shift();
        out.iter_mut().for_each(|x| *x = 0.0);
        for (h, (&a, row)) in alpha
            .iter()
            .zip(self.transition.chunks_exact(v))
            .enumerate()
        {
            if a == 0.0 {
                continue;
            }
            let base = (h % r) * v;
            out[base..base + v]
                .iter_mut()
                .zip(row)
                .for_each(|(d, &q)| *d += a * q);
        }
    }

    /// Forward pass (`k ≥ 1`) over log emissions `le` (`[L, V]`): the filtered laws
    /// `α̂_m` (each summing to 1) for the hidden positions `m = 0..n`, `n = L − k + 1`
    /// (token `i = k − 1 + m`), and the log scales `ln c_m`: `α̂_m ∝ s_m ⊙ e_i` with the
    /// linear prediction `s_m = predict(α̂_{m−1})` and the emission applied by
    /// [`emit_in_place`]. `None` when some `c_m` is 0 or a precision check of the module
    /// docs' *Numerics* fails; callers then redo the work with the log-space fallback.
    fn forward(&self, le: &[f64]) -> Option<Forward> {
        let (v, k, l) = (self.vocab, self.order, self.len);
        debug_assert!(k >= 1);
        let s = self.initial.len();
        let n = l - k + 1;
        let mut alpha = vec![0.0; n * s];
        let mut c = vec![0.0; n];
        let mut lw = vec![0.0; s];
        let mut scratch = vec![0.0; v];
        self.log_initial_weights(le, None, &mut lw);
        let mut shift = exp_shifted(&lw, &mut alpha[..s]);
        for m in 0..n {
            if m > 0 {
                let (prev, cur) = alpha.split_at_mut(m * s);
                let cur = &mut cur[..s];
                let prev = &prev[(m - 1) * s..];
                self.predict(prev, cur);
                if !covers(prev, cur) {
                    return None;
                }
                let i = k - 1 + m;
                let safe;
                (shift, safe) = emit_in_place(cur, &le[i * v..(i + 1) * v], &mut scratch);
                if !safe {
                    return None;
                }
            }
            let cur = &mut alpha[m * s..(m + 1) * s];
            let total: f64 = cur.iter().sum();
            if shift == f64::NEG_INFINITY || total <= 0.0 || !total.is_finite() {
                return None;
            }
            let inv = 1.0 / total;
            cur.iter_mut().for_each(|a| *a *= inv);
            c[m] = shift + total.ln();
        }
        Some(Forward { alpha, c })
    }

    /// Backward pass: calls `visit(m, β̂_m, s_m)` for `m = n − 1, …, 0`, with `β̂_m`
    /// linear, proportional to `p(x_t^{>i} | h_i = h)` (`β̂_{n−1} = 1`) and scaled so its
    /// maximum is 1,
    ///
    /// ```text
    /// β̂_{m−1}(h) ∝ Σ_u P(h, u) [e_i(u) β̂_m((h mod r) V + u)],
    /// ```
    ///
    /// the bracket formed by [`emit_in_place`]. With `loo`, `s_m` is the one-step
    /// prediction (`s_0 = π`, `s_m = predict(α̂_{m−1})`, one more `O(V^{k+1})` pass per
    /// step); otherwise `s_m` is empty. `β̂_m` is kept only on the contexts of positive
    /// prior probability ([`prior_support`]), so an unreachable context (whose `β` may be
    /// far larger) never sets the scale. `false` if a precision check (module docs,
    /// *Numerics*) fails.
    fn backward(
        &self,
        le: &[f64],
        fw: &Forward,
        loo: bool,
        mut visit: impl FnMut(usize, &[f64], &[f64]),
    ) -> bool {
        let (v, k) = (self.vocab, self.order);
        let s = self.initial.len();
        let n = fw.c.len();
        let r = self.shift();
        let mut beta = vec![1.0; s];
        let mut emitted = vec![0.0; s];
        let mut pred = Vec::new();
        let mut scratch = vec![0.0; v];
        let prediction = |m: usize, out: &mut Vec<f64>| {
            out.resize(s, 0.0);
            if m == 0 {
                out.copy_from_slice(&self.initial);
            } else {
                self.predict(&fw.alpha[(m - 1) * s..m * s], out);
            }
        };
        if loo {
            prediction(n - 1, &mut pred);
        }
        for m in (0..n).rev() {
            visit(m, &beta, &pred);
            if m > 0 {
                let i = k - 1 + m;
                emitted.copy_from_slice(&beta);
                if !emit_in_place(&mut emitted, &le[i * v..(i + 1) * v], &mut scratch).1 {
                    return false;
                }
                if loo {
                    prediction(m - 1, &mut pred);
                }
                let reach = &self.support[(m - 1) * s..m * s];
                let mut max = 0.0f64;
                for (h, (b, row)) in beta
                    .iter_mut()
                    .zip(self.transition.chunks_exact(v))
                    .enumerate()
                {
                    *b = if reach[h] {
                        let base = (h % r) * v;
                        row.iter()
                            .zip(&emitted[base..base + v])
                            .map(|(&q, &x)| q * x)
                            .sum()
                    } else {
                        0.0
                    };
                    max = max.max(*b);
                }
                // `emitted` has maximum 1 and rows of `P` sum to 1: a maximum below the
                // floor means the lost (underflowed) terms might not be negligible.
                if max < PRODUCT_FLOOR || !max.is_finite() {
                    return false;
                }
                let inv = 1.0 / max;
                beta.iter_mut().for_each(|b| *b *= inv);
            }
        }
        true
    }

    /// Token posteriors (`loo = false`) or leave-one-out posteriors (`loo = true`) into
    /// `out`, each row normalised. `false` when `p_t(x_t) = 0`.
    ///
    /// Position `i = k − 1 + m ≥ k` gets `Σ_{last(h) = v} α̂_m(h) β̂_m(h)`, and its
    /// leave-one-out row the same with the prediction `s_m` (the emission at `i` left out):
    /// `p(x_0^i = v, x_t^{−i}) ∝ Σ_{last(h) = v} [Σ_{h' → h} α̂_{i−1}(h') P(h', v)]
    /// β̂_i(h)`. The first `k` tokens come from `α̃_{k−1}(h) β̂_0(h)`, with `e_j` left out of
    /// `α̃` for the leave-one-out row `j < k` (formed in log space, once per call). Each
    /// product of two linear factors is formed by [`weigh`], so a conflict between the
    /// past and the future cannot underflow a feasible row.
    fn smooth(&self, le: &[f64], loo: bool, out: &mut ArrayViewMut2<'_, f64>) -> bool {
        let (v, k) = (self.vocab, self.order);
        out.fill(0.0);
        if k == 0 {
            let mut lw = vec![0.0; v];
            let mut w = vec![0.0; v];
            for (i, lei) in le.chunks_exact(v).enumerate() {
                // ln π_u + ln e_u, shifted by the maximum: a tiny prior mass times a tiny
                // emission must not underflow to an impossible observation.
                lw.iter_mut()
                    .zip(self.transition[..v].iter().zip(lei))
                    .for_each(|(w, (a, b))| *w = a.ln() + b);
                if exp_shifted(&lw, &mut w) == f64::NEG_INFINITY {
                    return false;
                }
                if loo {
                    w.copy_from_slice(&self.transition[..v]);
                }
                out.row_mut(i).iter_mut().zip(&w).for_each(|(o, &p)| *o = p);
            }
            return normalise_rows(out);
        }
        let Some(fw) = self.forward(le) else {
            return self.log_smooth(le, loo, out);
        };
        let s = self.initial.len();
        let mut lw = vec![0.0; s];
        let mut w = vec![0.0; s];
        let mut accurate = true;
        let complete = self.backward(le, &fw, loo, |m, beta, pred| {
            if m == 0 {
                let skips: Vec<Option<usize>> = if loo {
                    (0..k).map(Some).collect()
                } else {
                    vec![None]
                };
                for skip in skips {
                    self.log_initial_weights(le, skip, &mut lw);
                    lw.iter_mut().zip(beta).for_each(|(x, &b)| *x += b.ln());
                    exp_shifted(&lw, &mut w);
                    match skip {
                        Some(j) => {
                            let place = v.pow((k - 1 - j) as u32);
                            for (h, &g) in w.iter().enumerate() {
                                out[[j, (h / place) % v]] += g;
                            }
                        }
                        None => {
                            for (h, &g) in w.iter().enumerate() {
                                if g != 0.0 {
                                    self.scatter_digits(h, g, out);
                                }
                            }
                        }
                    }
                }
            } else {
                let forward = if loo {
                    pred
                } else {
                    &fw.alpha[m * s..(m + 1) * s]
                };
                accurate &= weigh(forward, beta, &mut w);
                let mut row = out.row_mut(k - 1 + m);
                for chunk in w.chunks_exact(v) {
                    row.iter_mut().zip(chunk).for_each(|(o, &g)| *o += g);
                }
            }
        });
        if complete && accurate && normalise_rows(out) {
            return true;
        }
        self.log_smooth(le, loo, out)
    }
}

/// `x(h) ← x(h) e(last(h)) / exp(shift)` in place for `x ≥ 0` of length a multiple of
/// `V = le.len()` (so `last(h) = h mod V`), with the emission known by its logarithm
/// `le = ln e` and `shift = max_h ln(x(h) e(last(h)))`, returned (`-inf`, and `x` all 0,
/// when every product is 0). The largest result is 1 up to rounding, and no feasible
/// product underflows because `e` is tiny: the emission is applied per token as the
/// factor `f(u) = exp(le(u) − shift)`, finite since `le(u) − shift ≤ −ln max_{last(h)=u}
/// x(h)`; a token whose largest `x` is subnormal falls back to `exp(ln x + le − shift)`
/// per state. Cost `O(len)` multiplications plus `O(V)` logarithms and exponentials.
/// `scratch` has length `V`.
fn emit_in_place(x: &mut [f64], le: &[f64], scratch: &mut [f64]) -> (f64, bool) {
    let v = le.len();
    debug_assert_eq!(x.len() % v, 0);
    let xmax = scratch;
    xmax.iter_mut().for_each(|m| *m = 0.0);
    for chunk in x.chunks_exact(v) {
        xmax.iter_mut()
            .zip(chunk)
            .for_each(|(m, &xh)| *m = m.max(xh));
    }
    let shift = xmax
        .iter()
        .zip(le)
        .filter(|&(&m, &l)| m > 0.0 && l > f64::NEG_INFINITY)
        .map(|(&m, &l)| m.ln() + l)
        .fold(f64::NEG_INFINITY, f64::max);
    if shift == f64::NEG_INFINITY {
        x.iter_mut().for_each(|xh| *xh = 0.0);
        return (shift, false);
    }
    // A state lost to underflow in `x` (below `2^{−1022} max x`) times the largest
    // emission stays negligible against `exp(shift)` unless the emission moved the mass
    // onto states more than `2^{60}` below the maximum of `x`.
    let x_all = xmax.iter().fold(0.0f64, |m, &x| m.max(x));
    let le_max = le.iter().fold(f64::NEG_INFINITY, |m, &l| m.max(l));
    let safe = shift >= x_all.ln() + le_max + PRODUCT_FLOOR.ln();
    // Per-token factor; -1 marks a token handled per state.
    let factor = xmax;
    for (f, &l) in factor.iter_mut().zip(le) {
        *f = if *f == 0.0 || l == f64::NEG_INFINITY {
            0.0
        } else if *f >= f64::MIN_POSITIVE {
            (l - shift).exp()
        } else {
            -1.0
        };
    }
    for chunk in x.chunks_exact_mut(v) {
        for ((xh, &f), &l) in chunk.iter_mut().zip(factor.iter()).zip(le) {
            *xh = if f >= 0.0 {
                *xh * f
            } else if *xh > 0.0 {
                (xh.ln() + l - shift).exp()
            } else {
                0.0
            };
        }
    }
    (shift, safe)
}

/// Whether the linear prediction `next` from `prev` kept its precision: its maximum is at
/// least `2^{−60} max prev`, so the contributions of states of `prev` lost to underflow are
/// negligible.
fn covers(prev: &[f64], next: &[f64]) -> bool {
    let pmax = prev.iter().fold(0.0f64, |m, &x| m.max(x));
    let nmax = next.iter().fold(0.0f64, |m, &x| m.max(x));
    nmax > 0.0 && nmax >= pmax * PRODUCT_FLOOR
}

/// `out(h) = a(h) b(h)` for non-negative `a`, `b`; `true` when the largest product is at
/// least `2^{−60} max a · max b`. Then every product lost to underflow, or to the
/// underflow of one factor relative to its maximum, is below f64's range relative to the
/// largest and the row is accurate; `false` flags the past and the future disagreeing
/// beyond f64's range, for the log-space fallback.
fn weigh(a: &[f64], b: &[f64], out: &mut [f64]) -> bool {
    let amax = a.iter().fold(0.0f64, |m, &x| m.max(x));
    let bmax = b.iter().fold(0.0f64, |m, &x| m.max(x));
    let mut max = 0.0f64;
    for (o, (&x, &y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x * y;
        max = max.max(*o);
    }
    max > 0.0 && max >= amax * bmax * PRODUCT_FLOOR
}

/// `2^{−60}`: below this fraction of `max a · max b`, [`weigh`] flags a product row.
const PRODUCT_FLOOR: f64 = 8.673_617_379_884_035e-19;

/// Divide every row by its sum (each row holds positive weights whose largest is 1 up to
/// the scatter into `V` bins); `false` if some row has no positive mass.
fn normalise_rows(out: &mut ArrayViewMut2<'_, f64>) -> bool {
    for mut row in out.rows_mut() {
        let total: f64 = row.sum();
        if total <= 0.0 || !total.is_finite() {
            return false;
        }
        row.mapv_inplace(|x| x / total);
    }
    true
}

/// The forward variables: the filtered laws `α̂_m` (`[n, V^k]`, each row summing to 1) and
/// the log scales `ln c_m` (`[n]`).
struct Forward {
    alpha: Vec<f64>,
    c: Vec<f64>,
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
