//! Selectors: which scored candidates a step reveals.

use crate::error::{Error, Result};

/// One scored candidate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// Its position.
    pub pos: usize,
    /// Its score (higher first).
    pub score: f64,
    /// The entropy of its row in nats (used by [`Selector::EntropyBound`]).
    pub entropy: f64,
}

/// How the revealed set is chosen from the scored candidates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Selector {
    /// The `k` highest scores (`k` from the budget); ties go to the lower position
    /// (`torch.topk` leaves them unspecified).
    TopK,
    /// Every candidate whose score is `≥ threshold` (`> threshold` when `strict`), and the
    /// best candidate when none is (at least one per step). The budget is ignored.
    /// Fast-dLLM: `≥`, confidence `p(x0)`; Dimple confident decoding: `>`.
    Threshold {
        /// The threshold on the score.
        threshold: f64,
        /// Use `>` instead of `≥`.
        strict: bool,
    },
    /// Every candidate whose score is `> threshold` (`≥` unless `strict`); when none is,
    /// the top `k` (`k` from the budget, at least 1). Dimple's confident decoding
    /// (`alg_p_threshold`, strict `>`, with [`Budget::DimpleRatio`](super::Budget::DimpleRatio)).
    ThresholdOrBudget {
        /// The threshold on the score.
        threshold: f64,
        /// Use `>` instead of `≥`.
        strict: bool,
    },
    /// Fast-dLLM's dynamic factor rule (`get_transfer_index_dynamic`): with the `n`
    /// candidate scores sorted descending `c₀ ≥ c₁ ≥ …`, reveal the first `j` where `j` is
    /// the first index `≥ 1` with `c_j < 1 − f/(j + 2)`; when there is no such index, or it
    /// is the last one (`j = n − 1`), all `n` are revealed (the anchor's loop quirk,
    /// reproduced). The budget is ignored.
    DynamicFactor {
        /// The factor `f > 0`.
        factor: f64,
    },
    /// EB-sampler (Ben-Hamu et al. 2025): sort by score descending and reveal the longest
    /// prefix `S` with `Σ_{S} H − max_{S} H ≤ γ` (entropies `H` of the rows; at least one).
    /// The budget caps the prefix when it is smaller than the bound's.
    EntropyBound {
        /// The error budget `γ ≥ 0` in nats.
        gamma: f64,
    },
}

impl Selector {
    /// Check the parameters.
    ///
    /// # Errors
    /// A non-finite threshold, a factor `≤ 0`, or `γ < 0`.
    pub fn validate(&self) -> Result<()> {
        match self {
            Selector::TopK => Ok(()),
            Selector::Threshold { threshold, .. }
            | Selector::ThresholdOrBudget { threshold, .. }
                if !threshold.is_finite() =>
            {
                Err(Error::invalid(
                    "Selector::Threshold.threshold",
                    format!("{threshold} must be finite"),
                ))
            }
            Selector::DynamicFactor { factor } if !(factor.is_finite() && *factor > 0.0) => {
                Err(Error::invalid(
                    "Selector::DynamicFactor.factor",
                    format!("{factor} must be > 0"),
                ))
            }
            Selector::EntropyBound { gamma } if !(gamma.is_finite() && *gamma >= 0.0) => {
                Err(Error::invalid(
                    "Selector::EntropyBound.gamma",
                    format!("{gamma} must be ≥ 0"),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Whether the rows' entropies are needed.
    pub fn needs_entropy(&self) -> bool {
        matches!(self, Selector::EntropyBound { .. })
    }

    /// The revealed positions (ascending) among `cands` with budget `k`. Empty only when
    /// `cands` is empty, or for [`Selector::TopK`] with `k = 0`.
    pub fn select(&self, cands: &[Candidate], k: usize) -> Vec<usize> {
        if cands.is_empty() {
            return Vec::new();
        }
        let mut sorted: Vec<Candidate> = cands.to_vec();
        sorted.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.pos.cmp(&b.pos)));
        let n = sorted.len();
        let take = match *self {
            Selector::TopK => k.min(n),
            Selector::Threshold { threshold, strict } => {
                let pass = |c: &Candidate| {
                    if strict {
                        c.score > threshold
                    } else {
                        c.score >= threshold
                    }
                };
                sorted.iter().take_while(|c| pass(c)).count().max(1)
            }
            Selector::ThresholdOrBudget { threshold, strict } => {
                let pass = sorted
                    .iter()
                    .take_while(|c| {
                        if strict {
                            c.score > threshold
                        } else {
                            c.score >= threshold
                        }
                    })
                    .count();
                if pass > 0 { pass } else { k.clamp(1, n) }
            }
            Selector::DynamicFactor { factor } => {
                let fail = (1..n).find(|&j| sorted[j].score < 1.0 - factor / (j as f64 + 2.0));
                match fail {
                    Some(j) if j < n - 1 => j,
                    _ => n,
                }
            }
            Selector::EntropyBound { gamma } => {
                let (mut sum, mut max, mut m) = (0.0f64, 0.0f64, 0);
                for c in &sorted {
                    let (s2, m2) = (sum + c.entropy, max.max(c.entropy));
                    if m > 0 && s2 - m2 > gamma {
                        break;
                    }
                    sum = s2;
                    max = m2;
                    m += 1;
                }
                m.min(k.max(1))
            }
        };
        let mut out: Vec<usize> = sorted[..take].iter().map(|c| c.pos).collect();
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(pos: usize, score: f64) -> Candidate {
        Candidate {
            pos,
            score,
            entropy: 0.0,
        }
    }

    #[test]
    fn selectors() {
        let cs = [c(0, 0.5), c(1, 0.95), c(2, 0.9), c(3, 0.9)];
        assert_eq!(Selector::TopK.select(&cs, 2), vec![1, 2]);
        let ge = Selector::Threshold {
            threshold: 0.9,
            strict: false,
        };
        assert_eq!(ge.select(&cs, 0), vec![1, 2, 3]);
        let gt = Selector::Threshold {
            threshold: 0.9,
            strict: true,
        };
        assert_eq!(gt.select(&cs, 0), vec![1]);
        let none = Selector::Threshold {
            threshold: 0.99,
            strict: false,
        };
        assert_eq!(none.select(&cs, 0), vec![1]);
        // Dynamic: sorted 0.95, 0.9, 0.9, 0.5; thresholds (f = 1) -, 2/3, 3/4, 4/5: fails at j = 3
        // (the last index) → all four (anchor quirk).
        assert_eq!(
            Selector::DynamicFactor { factor: 1.0 }.select(&cs, 0).len(),
            4
        );
        let cs2 = [c(0, 0.95), c(1, 0.5), c(2, 0.9), c(3, 0.9), c(4, 0.1)];
        assert_eq!(
            Selector::DynamicFactor { factor: 1.0 }.select(&cs2, 0),
            vec![0, 2, 3]
        );
        let eb = [
            Candidate {
                pos: 0,
                score: 3.0,
                entropy: 0.1,
            },
            Candidate {
                pos: 1,
                score: 2.0,
                entropy: 0.2,
            },
            Candidate {
                pos: 2,
                score: 1.0,
                entropy: 0.5,
            },
        ];
        assert_eq!(
            Selector::EntropyBound { gamma: 0.15 }.select(&eb, 10),
            vec![0, 1]
        );
        assert_eq!(
            Selector::EntropyBound { gamma: 0.0 }.select(&eb, 10),
            vec![0]
        );
        assert!(Selector::DynamicFactor { factor: 0.0 }.validate().is_err());
    }
}
