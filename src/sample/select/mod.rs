//! Position selection = scorer × budget × selector (DESIGN §3.4).
//!
//! At every step of an unmasking sampler each candidate (masked, eligible) position gets a
//! drawn token and a [`RowSummary`](crate::backend::RowSummary) from one backend pass; a
//! [`Score`] ranks the candidates, a [`Budget`] says how many to reveal, and a [`Selector`]
//! chooses them. The anchors' samplers are combinations:
//!
//! | sampler | score | budget | selector |
//! |---|---|---|---|
//! | LLaDA low-confidence | confidence `p(x0)` (untempered) | uniform split per block | top-k |
//! | LLaDA random | random | uniform split | top-k |
//! | Fast-dLLM threshold | confidence | — | threshold `≥ 0.9`, at least one |
//! | Fast-dLLM factor | confidence | — | dynamic factor |
//! | Dream maskgit_plus / topk_margin / entropy | confidence / margin / −entropy (after temperature and top-p/k) | schedule, truncated | top-k (Gumbel-top-k with `alg_temp`) |
//! | Dimple confident decoding | confidence (untempered) | Dimple ratio (fallback) | threshold `>`, else top-k |
//! | EB-sampler | confidence | — | entropy bound |

pub mod budget;
pub mod scorer;
pub mod selector;

pub use budget::{Budget, BudgetCtx, Rounding};
pub use scorer::{BaseScore, Score};
pub use selector::{Candidate, Selector};

use crate::error::Result;

/// One unmasking policy: a score, a budget and a selector.
#[derive(Clone, Debug)]
pub struct Unmasking {
    /// How candidates are ranked.
    pub score: Score,
    /// How many a step reveals (ignored by threshold-type selectors).
    pub budget: Budget,
    /// Which are revealed.
    pub selector: Selector,
}

impl Unmasking {
    /// Validate the three parts.
    ///
    /// # Errors
    /// The first invalid part's error.
    pub fn validate(&self) -> Result<()> {
        self.score.validate()?;
        self.budget.validate()?;
        self.selector.validate()
    }
}
