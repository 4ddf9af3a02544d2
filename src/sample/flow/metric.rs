//! The Euler solver on a metric-induced path (Shaul et al. 2024): draw `X_1 ~ p_{1|s}`,
//! then jump with the kinetic-optimal conditional velocity given `X_1` (optionally with
//! the kinetic corrector), positions in parallel.

use ndarray::{Array1, Array2, Array3, ArrayViewMut2, Zip};
use rayon::prelude::*;

use crate::backend::steps::{JumpRule, StepRng, sample_categorical};
use crate::backend::{Backend, RowSpec};
use crate::error::{Error, Result};
use crate::kernel::path::MetricPath;
use crate::model::Denoiser;
use crate::rng::categorical::sample_masses;
use crate::rng::{CounterRng, Purpose, RngKey};
use crate::sample::flow::solver::check_grid;
use crate::sample::flow::{CorrectorSchedule, check_step_args};

/// Positions per rayon task: a position costs `O(V)` (about a microsecond at `V = 25`), so
/// smaller tasks would be dominated by scheduling.
const MIN_POSITIONS_PER_TASK: usize = 64;

/// The sampler on a [`MetricPath`]: on each grid interval `[s_k, s_{k+1}]` the denoiser is
/// called at crate time `t = 1 − s_k`, `X_1 ~ p_{1|s_k}` is drawn for every position by the
/// backend's [`sample_categorical`], and the position's new token is drawn from
/// [`MetricPath::corrector_step_law_given_data`] (frozen kinetic-optimal velocity plus the
/// kinetic corrector `β_{s_k}(û − ǔ)` of [`MetricSolver::with_corrector`], none by
/// default; jump probability `1 − e^{−hλ}` or `min(1, hλ)`) at the first uniform of
/// `CounterRng(for_stream(seed, streams[b]), ROUTING, k, i)`. The last interval sets every
/// position to `X_1`. Cost `O(V)` per position and step on top of the model call.
/// Start from the uniform source ([`MetricPath::sample`] at `s = 0`).
///
/// The positions `(b, i)` of a step are processed in parallel on the current rayon thread
/// pool (run the solver inside `ThreadPool::install` to choose it); every position's
/// randomness is counter-based, so the tokens do not depend on the number of threads.
#[derive(Clone, Debug)]
pub struct MetricSolver {
    path: MetricPath,
    grid: Vec<f64>,
    rule: JumpRule,
    corrector: CorrectorSchedule,
}

impl MetricSolver {
    /// The solver over the flow-time grid `grid` with [`JumpRule::Exponential`].
    ///
    /// # Errors
    /// A grid with fewer than 2 points, not strictly increasing, or outside `[0, 1]`.
    pub fn new(path: MetricPath, grid: Vec<f64>) -> Result<Self> {
        check_grid(&grid)?;
        Ok(MetricSolver {
            path,
            grid,
            rule: JumpRule::Exponential,
            corrector: CorrectorSchedule::none(),
        })
    }
    /// Set the jump rule ([`JumpRule::Integrated`] is rejected: mixture paths only).
    ///
    /// # Errors
    /// [`JumpRule::Integrated`].
    pub fn with_rule(mut self, rule: JumpRule) -> Result<Self> {
        if rule == JumpRule::Integrated {
            return Err(Error::invalid(
                "rule",
                "JumpRule::Integrated is defined for mixture paths only",
            ));
        }
        self.rule = rule;
        Ok(self)
    }
    /// Add the kinetic corrector `β_s (û − ǔ)` (module docs of
    /// [`crate::kernel::path::metric`]): the step velocity becomes
    /// `(1 + β_{s_k}) û − β_{s_k} ǔ`, `β` evaluated at the left end of each interval.
    pub fn with_corrector(mut self, corrector: CorrectorSchedule) -> Self {
        self.corrector = corrector;
        self
    }
    /// The corrector schedule.
    pub fn corrector(&self) -> &CorrectorSchedule {
        &self.corrector
    }
    /// The path.
    pub fn path(&self) -> &MetricPath {
        &self.path
    }
    /// The grid.
    pub fn grid(&self) -> &[f64] {
        &self.grid
    }
    /// The jump rule.
    pub fn rule(&self) -> JumpRule {
        self.rule
    }
    /// The number of steps.
    pub fn num_steps(&self) -> usize {
        self.grid.len() - 1
    }

    /// Run every step in place; returns the number of tokens changed per step.
    ///
    /// # Errors
    /// As [`MetricSolver::step`].
    pub fn sample<D: Denoiser + ?Sized, B: Backend + ?Sized>(
        &self,
        denoiser: &D,
        backend: &B,
        mut tokens: ArrayViewMut2<'_, u32>,
        seed: u64,
        streams: &[u64],
    ) -> Result<Vec<usize>> {
        let (b, l) = tokens.dim();
        let mut logits = Array3::<f32>::zeros((b, l, self.path.vocab_size()));
        (0..self.num_steps())
            .map(|k| {
                self.step(
                    k,
                    denoiser,
                    backend,
                    tokens.view_mut(),
                    &mut logits,
                    seed,
                    streams,
                )
            })
            .collect()
    }

    /// Step `k` in place (`logits` a `[B, L, V]` buffer); returns the number of tokens
    /// changed.
    ///
    /// # Errors
    /// `k` past the last step, shapes, token ids, the denoiser's errors, unsampleable
    /// logits rows.
    #[allow(clippy::too_many_arguments)]
    pub fn step<D: Denoiser + ?Sized, B: Backend + ?Sized>(
        &self,
        k: usize,
        denoiser: &D,
        backend: &B,
        mut tokens: ArrayViewMut2<'_, u32>,
        logits: &mut Array3<f32>,
        seed: u64,
        streams: &[u64],
    ) -> Result<usize> {
        let v = self.path.vocab_size();
        let step = check_step_args(
            k,
            self.num_steps(),
            v,
            denoiser.vocab_size(),
            &tokens,
            logits,
            seed,
            streams,
        )?;
        let (b, l) = tokens.dim();
        let (s, s_next) = (self.grid[k], self.grid[k + 1]);
        let last = k + 1 == self.num_steps();
        let rng = StepRng {
            seed,
            streams,
            step,
        };
        let c = self.corrector.at(s)?;
        let times = Array1::from_elem(b, 1.0 - s);
        denoiser.logits(tokens.view(), times.view(), logits.view_mut())?;
        let mut x1 = tokens.to_owned();
        sample_categorical(
            backend,
            logits.view(),
            None,
            &RowSpec::default(),
            &rng,
            x1.view_mut(),
        )?;
        let before = tokens.to_owned();
        if last {
            tokens.assign(&x1);
        } else {
            let keys: Vec<RngKey> = streams
                .iter()
                .map(|&st| RngKey::for_stream(seed, st))
                .collect();
            let path = &self.path;
            let (rule, before_ref, x1_ref) = (self.rule, &before, &x1);
            let next = (0..b * l)
                .into_par_iter()
                .with_min_len(MIN_POSITIONS_PER_TASK)
                .map_init(
                    || vec![0.0; v],
                    |law, idx| -> Result<u32> {
                        let (bi, i) = (idx / l, idx % l);
                        let z = before_ref[[bi, i]];
                        path.corrector_step_law_given_data(
                            s,
                            s_next,
                            z,
                            x1_ref[[bi, i]],
                            c,
                            rule,
                            law,
                        )?;
                        let u =
                            CounterRng::new(keys[bi], Purpose::ROUTING, step, i as u32).uniform();
                        Ok(sample_masses(law, u).map(|d| d.token).unwrap_or(z))
                    },
                )
                .collect::<Result<Vec<u32>>>()?;
            let next = Array2::from_shape_vec((b, l), next)
                .map_err(|e| Error::invalid("tokens", e.to_string()))?;
            tokens.assign(&next);
        }
        Ok(Zip::from(&tokens)
            .and(&before)
            .fold(0, |n, a, b| n + usize::from(a != b)))
    }
}
