//! Scorers: how a candidate (masked) position is ranked, from its [`RowSummary`] (higher =
//! revealed first).

use crate::backend::{RowSpec, RowSummary};
use crate::error::{Error, Result};
use crate::rng::{CounterRng, Purpose, RngKey};

/// A score computed from the row summary alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseScore {
    /// `p(x0)`: the probability of the drawn token under the row the backend read (untempered
    /// unless a [`Temperature`](crate::sample::transform::LogitTransform::Temperature)
    /// transform was applied to the row first). LLaDA `low_confidence`, Dream
    /// `maskgit_plus`, Fast-dLLM. A **probability**, not a log-probability: thresholds
    /// compare against `p`.
    Confidence,
    /// `p₁ − p₂` of the row's softmax (Dream `topk_margin`).
    Margin,
    /// `−H(softmax(ℓ))` in nats (Dream `entropy`; Dream adds `1e-10` inside the log, a
    /// difference below `V·10⁻¹⁰`).
    NegEntropy,
}

impl BaseScore {
    fn of(self, s: &RowSummary) -> f64 {
        match self {
            BaseScore::Confidence => s.token_logprob.exp(),
            BaseScore::Margin => s.margin,
            BaseScore::NegEntropy => -s.entropy,
        }
    }
}

/// How a candidate position is scored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Score {
    /// A summary score.
    Base(BaseScore),
    /// Annealed Gumbel: `base/τ + G`, `G = −ln(−ln U)` with `U` the open uniform of
    /// [`Purpose::SELECTION`] at `(seed, stream, step, position)`. Top-`k` of these scores is
    /// a draw of `k` positions without replacement from `softmax(base/τ)` over the
    /// candidates (Gumbel-top-k): Dream's `alg_temp` (`multinomial(softmax(conf/alg_temp))`)
    /// and GenMol's annealed confidence. `τ = 0` is the plain base score.
    AnnealedGumbel {
        /// The score that is perturbed.
        base: BaseScore,
        /// `τ ≥ 0`.
        temperature: f64,
    },
    /// A uniform of [`Purpose::SELECTION`] (LLaDA `remasking='random'`).
    Random,
    /// `−position`: left to right (autoregressive order).
    Leftmost,
}

impl Score {
    /// Check the parameters.
    ///
    /// # Errors
    /// A negative or non-finite Gumbel temperature.
    pub fn validate(&self) -> Result<()> {
        if let Score::AnnealedGumbel { temperature, .. } = self
            && !(temperature.is_finite() && *temperature >= 0.0)
        {
            return Err(Error::invalid(
                "Score::AnnealedGumbel.temperature",
                format!("{temperature} must be finite and ≥ 0"),
            ));
        }
        Ok(())
    }

    /// Ask the backend for the summaries this score needs.
    pub fn require(&self, spec: &mut RowSpec) {
        let base = match self {
            Score::Base(b) | Score::AnnealedGumbel { base: b, .. } => *b,
            _ => return,
        };
        match base {
            BaseScore::Margin => spec.margin = true,
            BaseScore::NegEntropy => spec.entropy = true,
            BaseScore::Confidence => {}
        }
    }

    /// The score of position `pos` with summary `s`; `key`/`step` address the random
    /// numbers of [`Score::AnnealedGumbel`] and [`Score::Random`].
    pub fn score(&self, s: &RowSummary, pos: usize, key: RngKey, step: u32) -> f64 {
        match self {
            Score::Base(b) => b.of(s),
            Score::AnnealedGumbel { base, temperature } => {
                if *temperature == 0.0 {
                    return base.of(s);
                }
                let u = CounterRng::new(key, Purpose::SELECTION, step, pos as u32).uniform_open();
                base.of(s) / temperature - (-u.ln()).ln()
            }
            Score::Random => CounterRng::new(key, Purpose::SELECTION, step, pos as u32).uniform(),
            Score::Leftmost => -(pos as f64),
        }
    }
}
