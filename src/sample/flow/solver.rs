//! The mixture-path Euler solver with exact jump probabilities and the divergence-free
//! corrector (Gat et al. 2024, §2.3–2.4; facebookresearch/flow_matching
//! `solver/discrete_solver.py:MixtureDiscreteEulerSolver`).

use ndarray::{Array1, Array3, ArrayViewMut2, Zip};

use crate::backend::steps::{DfmEulerStep, JumpRule, StepRng, dfm_euler_step, sample_categorical};
use crate::backend::{Backend, RowSpec};
use crate::error::{Error, Result};
use crate::kernel::path::MixturePath;
use crate::kernel::path::mixture::check_div_free;
use crate::model::Denoiser;
use crate::rng::{CounterRng, Purpose, RngKey};
use crate::sample::flow::{CorrectorSchedule, check_step_args};
use crate::schedule::Schedule;

/// Validate a flow-time grid: at least two points, strictly increasing, in `[0, 1]`.
pub(crate) fn check_grid(grid: &[f64]) -> Result<()> {
    if grid.len() < 2 {
        return Err(Error::invalid(
            "grid",
            format!("{} points: a grid needs at least 2", grid.len()),
        ));
    }
    for (k, &s) in grid.iter().enumerate() {
        if !(0.0..=1.0).contains(&s) {
            return Err(Error::invalid(
                "grid",
                format!("grid[{k}] = {s} is outside [0, 1]"),
            ));
        }
        if k > 0 && s <= grid[k - 1] {
            return Err(Error::invalid(
                "grid",
                format!(
                    "grid[{k}] = {s} does not exceed grid[{}] = {}",
                    k - 1,
                    grid[k - 1]
                ),
            ));
        }
    }
    Ok(())
}

/// The discrete-flow-matching sampler on a [`MixturePath`].
///
/// On each interval `[s_k, s_{k+1}]` of the flow-time grid (`s = 0` source → `s = 1`
/// data) the denoiser is called once at crate time `t = 1 − s_k` and every position moves
/// by the conditional velocity given a draw `X_1 ~ p_{1|s_k}`:
///
/// * with `c = β_{s_k}` the corrector coefficient at the left end of the interval (a
///   constant [`MixtureSolver::with_div_free`] or any [`CorrectorSchedule`],
///   [`MixtureSolver::with_corrector`]), the velocity is the corrector `(1 + c) û − c ǔ`
///   conditionally on `X_1` (see [`crate::kernel::path::mixture`]): off `z`,
///   `(1 + c) κ̇/(1 − κ) δ_{X_1} + c κ̇/κ p_0`; at `κ(s_k) = 0` the `c` term is dropped
///   (exact), at `κ(s_k) = 1` the position is set to `X_1`;
/// * the jump happens with probability `1 − exp(−h λ)` ([`JumpRule::Exponential`], the
///   default), `min(1, hλ)` ([`JumpRule::Euler`]) or the path's own transition
///   ([`JumpRule::Integrated`], `c = 0` only: exact in law for an exact posterior);
/// * on the **last** interval every position is set to `X_1` (flow_matching's final step).
///
/// With a masked source, `c = β_{s_k} = 0` and carry-over (the default), each step is the backend's
/// fused [`dfm_euler_step`]: only the rows of masked positions that jump are read, and
/// unmasked tokens are final. Otherwise `X_1` is drawn for every position by the backend's
/// [`sample_categorical`] and the jump is `O(1)` per position (`O(V)` for a general source
/// `π`): the decision is the first uniform `u_1` of
/// `CounterRng(for_stream(seed, streams[b]), ROUTING, k, i)` (jump iff `u_1 ≥ 1 − p`, as the
/// fused step), the target is `X_1` if `u_2 λ < λ_{X_1}`, else `p_0(· | ≠ z)` at `u_3`.
/// The masked-source paths agree token for token when the posterior of unmasked positions
/// is their own token (exact models).
#[derive(Clone, Debug)]
pub struct MixtureSolver<S> {
    path: MixturePath<S>,
    grid: Vec<f64>,
    corrector: CorrectorSchedule,
    rule: JumpRule,
    carry_over: bool,
    exclude_mask: bool,
}

impl<S: Schedule> MixtureSolver<S> {
    /// The solver on `path` over the flow-time grid `grid` (e.g.
    /// [`flow_matching_time_grid`](crate::schedule::flow_matching_time_grid) or
    /// [`TimeGrid::to_flow_matching_time`](crate::schedule::TimeGrid::to_flow_matching_time)),
    /// with `div_free = 0`, [`JumpRule::Exponential`], carry-over of unmasked tokens and the
    /// mask excluded from `X_1` (both for a masked source only).
    ///
    /// # Errors
    /// A grid with fewer than 2 points, not strictly increasing, or outside `[0, 1]`.
    pub fn new(path: MixturePath<S>, grid: Vec<f64>) -> Result<Self> {
        check_grid(&grid)?;
        Ok(MixtureSolver {
            path,
            grid,
            corrector: CorrectorSchedule::none(),
            rule: JumpRule::Exponential,
            carry_over: true,
            exclude_mask: true,
        })
    }

    /// Set a constant divergence-free (corrector) coefficient `β_s = c ≥ 0`
    /// (`with_corrector(CorrectorSchedule::constant(c)?)`).
    ///
    /// # Errors
    /// `c` negative or not finite, or `c > 0` with [`JumpRule::Integrated`].
    pub fn with_div_free(self, c: f64) -> Result<Self> {
        check_div_free(c)?;
        self.with_corrector(CorrectorSchedule::constant(c)?)
    }

    /// Set a time-dependent corrector coefficient `s ↦ β_s` (evaluated at the left end of
    /// each grid interval, as flow_matching's callable `div_free`).
    ///
    /// # Errors
    /// A schedule not known to vanish ([`CorrectorSchedule::is_zero`]) with
    /// [`JumpRule::Integrated`].
    pub fn with_corrector(mut self, corrector: CorrectorSchedule) -> Result<Self> {
        if !corrector.is_zero() && self.rule == JumpRule::Integrated {
            return Err(Error::invalid(
                "div_free",
                "JumpRule::Integrated takes no divergence-free term",
            ));
        }
        self.corrector = corrector;
        Ok(self)
    }

    /// Set the jump rule.
    ///
    /// # Errors
    /// [`JumpRule::Integrated`] with `div_free > 0`.
    pub fn with_rule(mut self, rule: JumpRule) -> Result<Self> {
        if rule == JumpRule::Integrated && !self.corrector.is_zero() {
            return Err(Error::invalid(
                "rule",
                "JumpRule::Integrated takes no divergence-free term",
            ));
        }
        self.rule = rule;
        Ok(self)
    }

    /// Masked source only: keep unmasked tokens (`true`, default; the exact posterior of
    /// an unmasked position is its own token) or let the model move them as
    /// flow_matching's solver does (`false`).
    pub fn with_carry_over(mut self, carry_over: bool) -> Self {
        self.carry_over = carry_over;
        self
    }

    /// Masked source only: draw `X_1` from the posterior with the mask removed (`true`,
    /// default) or from the full softmax (`false`, flow_matching).
    pub fn with_exclude_mask(mut self, exclude_mask: bool) -> Self {
        self.exclude_mask = exclude_mask;
        self
    }

    /// The path.
    pub fn path(&self) -> &MixturePath<S> {
        &self.path
    }
    /// The flow-time grid.
    pub fn grid(&self) -> &[f64] {
        &self.grid
    }
    /// The number of steps (grid intervals).
    pub fn num_steps(&self) -> usize {
        self.grid.len() - 1
    }
    /// The divergence-free coefficient when it is constant in time; for a time-dependent
    /// schedule its value at the first grid point (see [`MixtureSolver::div_free_at`]).
    pub fn div_free(&self) -> f64 {
        self.corrector
            .constant_value()
            .or_else(|| self.corrector.at(self.grid[0]).ok())
            .unwrap_or(0.0)
    }
    /// The corrector schedule `s ↦ β_s`.
    pub fn corrector(&self) -> &CorrectorSchedule {
        &self.corrector
    }
    /// `β_s`, the corrector coefficient the step starting at `s` uses.
    ///
    /// # Errors
    /// As [`CorrectorSchedule::at`].
    pub fn div_free_at(&self, s: f64) -> Result<f64> {
        self.corrector.at(s)
    }
    /// The jump rule.
    pub fn rule(&self) -> JumpRule {
        self.rule
    }
    /// Whether unmasked tokens are kept (masked source).
    pub fn carry_over(&self) -> bool {
        self.carry_over && self.path.mask_id().is_some()
    }
    /// Whether `X_1` excludes the mask (masked source).
    pub fn exclude_mask(&self) -> bool {
        self.exclude_mask && self.path.mask_id().is_some()
    }

    /// Run every step on `tokens` (`[B, L]`, usually a draw of the source, e.g.
    /// [`MixturePath::sample_source`]), in place. Returns the number of tokens changed by
    /// each step.
    ///
    /// # Errors
    /// As [`MixtureSolver::step`]. On error `tokens` holds the result of the completed steps.
    pub fn sample<D: Denoiser + ?Sized, B: Backend + ?Sized>(
        &self,
        denoiser: &D,
        backend: &B,
        mut tokens: ArrayViewMut2<'_, u32>,
        seed: u64,
        streams: &[u64],
    ) -> Result<Vec<usize>> {
        let (b, l) = tokens.dim();
        let v = self.path.vocab_size();
        let mut logits = Array3::<f32>::zeros((b, l, v));
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

    /// Step `k` (`s_k → s_{k+1}`) in place; `logits` is a `[B, L, V]` buffer the denoiser
    /// writes. Randomness at `StepRng { seed, streams, step: k }`. Returns the number of
    /// tokens changed.
    ///
    /// # Errors
    /// `k` past the last step; shapes (`tokens [B, L]` with `B, L ≥ 1`, `logits [B, L, V]`,
    /// `streams` of length `B`); token ids `≥ V`; the denoiser's errors; logits rows that
    /// cannot be sampled (NaN, `+∞`, no finite allowed entry). On error before the
    /// write, `tokens` is unchanged.
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
        let b = tokens.nrows();
        let (s, s_next) = (self.grid[k], self.grid[k + 1]);
        let last = k + 1 == self.num_steps();
        let rng = StepRng {
            seed,
            streams,
            step,
        };
        let before = tokens.to_owned();
        let times = Array1::from_elem(b, 1.0 - s);
        denoiser.logits(tokens.view(), times.view(), logits.view_mut())?;
        let kappa_s = self.path.kappa().kappa(s)?;
        let c = self.corrector.at(s)?;
        let (a, bcoef) = self.path.coefficients(s, c)?;
        let fused = self.carry_over() && c == 0.0 && kappa_s < 1.0;
        if let (true, Some(mask_id)) = (fused, self.path.mask_id()) {
            let params = DfmEulerStep {
                mask_id,
                s,
                s_next,
                rule: self.rule,
                final_step: last,
                exclude_mask: self.exclude_mask,
            };
            dfm_euler_step(
                backend,
                self.path.kappa(),
                logits.view(),
                tokens.view_mut(),
                &params,
                &rng,
            )?;
        } else {
            // X_1 for every position that may move.
            let select = self
                .path
                .mask_id()
                .filter(|_| self.carry_over())
                .map(|m| tokens.mapv(|x| x == m));
            let spec = RowSpec {
                excluded: match self.path.mask_id() {
                    Some(m) if self.exclude_mask => vec![m],
                    _ => vec![],
                },
                ..RowSpec::default()
            };
            let mut x1 = tokens.to_owned();
            sample_categorical(
                backend,
                logits.view(),
                select.as_ref().map(|s| s.view()),
                &spec,
                &rng,
                x1.view_mut(),
            )?;
            let h = s_next - s;
            let integrated = if self.rule == JumpRule::Integrated && !last && a.is_finite() {
                ((self.path.kappa().kappa(s_next)? - kappa_s) / (1.0 - kappa_s)).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let keys: Vec<RngKey> = streams
                .iter()
                .map(|&st| RngKey::for_stream(seed, st))
                .collect();
            Zip::indexed(&mut tokens)
                .and(&x1)
                .for_each(|(bi, i), z, &x1| {
                    if last || !a.is_finite() {
                        *z = x1;
                        return;
                    }
                    // Integrated: towards x1 only, whatever the rate (c = 0 here).
                    let a = if self.rule == JumpRule::Integrated {
                        1.0
                    } else {
                        a
                    };
                    let to_x1 = if x1 != *z { a } else { 0.0 };
                    let lambda = to_x1 + bcoef * (1.0 - self.path.source_prob(*z));
                    let p = match self.rule {
                        JumpRule::Exponential => -(-h * lambda).exp_m1(),
                        JumpRule::Euler => (h * lambda).min(1.0),
                        JumpRule::Integrated => {
                            if x1 != *z {
                                integrated
                            } else {
                                0.0
                            }
                        }
                    };
                    let mut r = CounterRng::new(keys[bi], Purpose::ROUTING, step, i as u32);
                    let (u1, u2, u3) = (r.uniform(), r.uniform(), r.uniform());
                    if lambda <= 0.0 || u1 < 1.0 - p {
                        return;
                    }
                    *z = if u2 * lambda < to_x1 {
                        x1
                    } else {
                        self.path.draw_source_excluding(*z, u3).unwrap_or(x1)
                    };
                });
        }
        Ok(Zip::from(&tokens)
            .and(&before)
            .fold(0, |n, a, b| n + usize::from(a != b)))
    }
}
