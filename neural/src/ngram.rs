//! Order-`k` n-gram (Markov chain) models fitted by counting, with sparse counts so that `k`
//! is not limited by a dense `V^{k+1}` table.
//!
//! The model and its estimator are exactly those of
//! [`MarkovChainOracle::fit`](discrete_diffusion::model::markov::MarkovChainOracle::fit)
//! (add-`c` smoothing):
//!
//! ```text
//! p(x) = π(x_{0..k}) Π_{i ≥ k} P(x_{i−k..i}, x_i),
//! π(h) = (N_init(h) + c)/(N + c V^k),      P(h, u) = (N(h, u) + c)/(N(h) + c V),
//! ```
//!
//! (a context never seen with `c = 0` predicts uniformly); `tests/ngram.rs` checks the
//! log-likelihoods against the crate's oracle. For absorbing diffusion the exact NELBO of a
//! model equals `−log p(x)` (every unmasking order is a chain-rule factorisation; see
//! `docs/training.md`), so [`NGram::log_prob`] is the baseline's exact NELBO.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use discrete_diffusion::{Error, Result};

/// A multiplicative hasher for the `u64` context codes (FxHash's constant).
#[derive(Default, Clone, Copy)]
pub struct CodeHasher(u64);

impl Hasher for CodeHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type Counts = HashMap<u64, u32, BuildHasherDefault<CodeHasher>>;

/// An order-`k` n-gram model over `V` tokens fitted by counting (module docs).
#[derive(Clone, Debug)]
pub struct NGram {
    vocab: usize,
    order: usize,
    pseudocount: f64,
    n_seq: u64,
    init: Counts,
    /// `N(h, u)` keyed by `h·V + u`.
    joint: Counts,
    /// `N(h)`.
    context: Counts,
}

impl NGram {
    /// Count the `(k+1)`-grams of `sequences` (tokens `< vocab`, each of length `≥ max(k, 1)`).
    ///
    /// Errors: `vocab < 2`; `vocab^{k+1} ≥ 2^63`; a negative or non-finite pseudocount;
    /// no sequences; a short sequence or a token `≥ vocab`.
    pub fn fit<I, S>(sequences: I, order: usize, vocab: usize, pseudocount: f64) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u32]>,
    {
        if vocab < 2 {
            return Err(Error::invalid("vocab", format!("{vocab} < 2")));
        }
        let fits = (vocab as u64)
            .checked_pow(order as u32 + 1)
            .is_some_and(|n| n < 1 << 63);
        if !fits {
            return Err(Error::invalid(
                "order",
                format!("{vocab}^({order} + 1) overflows u64 codes"),
            ));
        }
        if !(pseudocount.is_finite() && pseudocount >= 0.0) {
            return Err(Error::invalid(
                "pseudocount",
                format!("{pseudocount} must be finite and ≥ 0"),
            ));
        }
        let mut m = NGram {
            vocab,
            order,
            pseudocount,
            n_seq: 0,
            init: Counts::default(),
            joint: Counts::default(),
            context: Counts::default(),
        };
        let (v, r) = (
            vocab as u64,
            (vocab as u64).pow(order.saturating_sub(1) as u32),
        );
        for (n, seq) in sequences.into_iter().enumerate() {
            let x = seq.as_ref();
            if x.is_empty() || x.len() < order {
                return Err(Error::invalid(
                    "sequences",
                    format!("sequence {n} has length {} < max(order, 1)", x.len()),
                ));
            }
            if let Some(i) = x.iter().position(|&t| t as usize >= vocab) {
                return Err(Error::TokenOutOfRange {
                    arg: "sequences",
                    index: i,
                    token: x[i] as u64,
                    vocab,
                });
            }
            m.n_seq += 1;
            let mut h = 0u64;
            for &t in &x[..order] {
                h = h * v + t as u64;
            }
            *m.init.entry(h).or_default() += 1;
            for &t in &x[order..] {
                *m.joint.entry(h * v + t as u64).or_default() += 1;
                *m.context.entry(h).or_default() += 1;
                if order > 0 {
                    h = (h % r) * v + t as u64;
                }
            }
        }
        if m.n_seq == 0 {
            return Err(Error::invalid("sequences", "no sequences to fit"));
        }
        Ok(m)
    }

    /// The order `k`.
    pub fn order(&self) -> usize {
        self.order
    }

    /// The add-`c` pseudocount.
    pub fn pseudocount(&self) -> f64 {
        self.pseudocount
    }

    /// Change the pseudocount (the counts are kept). Errors: negative or non-finite `c`.
    pub fn set_pseudocount(&mut self, pseudocount: f64) -> Result<()> {
        if !(pseudocount.is_finite() && pseudocount >= 0.0) {
            return Err(Error::invalid(
                "pseudocount",
                format!("{pseudocount} must be finite and ≥ 0"),
            ));
        }
        self.pseudocount = pseudocount;
        Ok(())
    }

    /// Number of distinct `(k+1)`-grams seen.
    pub fn num_ngrams(&self) -> usize {
        self.joint.len()
    }

    /// `ln p(x)` (module docs; natural log).
    ///
    /// Errors: `x` shorter than `max(k, 1)` or with a token `≥ V`.
    pub fn log_prob(&self, x: &[u32]) -> Result<f64> {
        let (k, v, c) = (self.order, self.vocab as u64, self.pseudocount);
        if x.is_empty() || x.len() < k {
            return Err(Error::invalid(
                "x",
                format!("length {} < max(order, 1)", x.len()),
            ));
        }
        if let Some(i) = x.iter().position(|&t| t as usize >= self.vocab) {
            return Err(Error::TokenOutOfRange {
                arg: "x",
                index: i,
                token: x[i] as u64,
                vocab: self.vocab,
            });
        }
        let get = |m: &Counts, key: u64| m.get(&key).copied().unwrap_or(0) as f64;
        let vk = (self.vocab as f64).powi(k as i32);
        let mut h = 0u64;
        for &t in &x[..k] {
            h = h * v + t as u64;
        }
        let mut lp = ((get(&self.init, h) + c) / (self.n_seq as f64 + c * vk)).ln();
        let r = v.pow(k.saturating_sub(1) as u32);
        for &t in &x[k..] {
            let nh = get(&self.context, h) + c * self.vocab as f64;
            lp += if nh > 0.0 {
                ((get(&self.joint, h * v + t as u64) + c) / nh).ln()
            } else {
                -(self.vocab as f64).ln()
            };
            if k > 0 {
                h = (h % r) * v + t as u64;
            }
        }
        Ok(lp)
    }
}
