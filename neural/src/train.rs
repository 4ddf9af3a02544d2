//! Training and held-out evaluation of a [`TransformerDenoiser`] with the crate's absorbing
//! corruption, MDLM NELBO weight and NELBO estimators.
//!
//! One step at step index `s` (sequence ids are dataset indices):
//!
//! ```text
//! ids_b  = u64_at(seed, USER, s, b) mod N                           (batch, counter RNG)
//! t_b, x_t[b] = corrupt_batch(Antithetic(t_min), absorbing α(t) = 1 − t, x0, seed, ids, s)
//! loss   = (1/(B·L)) Σ_b w(t_b) Σ_{masked i} −log p_θ(x_0^i | x_t),   w = ElboWeight::Elbo = 1/t
//!          (TrainWeighting::Time), or
//! loss   = (1/B) Σ_{b: n_b > 0} (1/n_b) Σ_{masked i} −log p_θ(x_0^i | x_t)  (TrainWeighting::MaskCount), or
//! loss   = Σ_b Σ_{masked i} −log p_θ(x_0^i | x_t) / Σ_b n_b                  (TrainWeighting::TokenMean)
//! AdamW step, learning rate: linear warm-up, then cosine decay to lr/10 over the budget
//! ```
//!
//! The held-out NELBO of a sequence is estimated with
//! [`ElboDraws`] (LLaDA's k-stratified mask counts: unbiased, the lowest-variance estimator
//! of `docs/training.md`) through the [`Denoiser`] trait; [`heldout_nelbo`] batches the
//! draws of many sequences into one model call.

use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use discrete_diffusion::kernel::mixture::MixtureProcess;
use discrete_diffusion::loss::weight::ElboWeight;
use discrete_diffusion::model::Denoiser;
use discrete_diffusion::rng::{Purpose, RngKey, u64_at};
use discrete_diffusion::schedule::{Antithetic, Linear};
use discrete_diffusion::train::corrupt::corrupt_batch;
use discrete_diffusion::train::elbo::{ElboDraws, ElboSampling};
use discrete_diffusion::{Error, Result};
use ndarray::{Array2, Array3, Axis};

use crate::candle_err;
use crate::loss::{loss_coefficients, masked_nelbo_loss};
use crate::model::TransformerDenoiser;

/// How the masked cross entropies of a training batch are weighted (module docs).
///
/// `Time` and `MaskCount` are unbiased for a constant multiple of the NELBO, so they have the
/// NELBO's minimiser; `TokenMean` shares it too (see the variant). With `t ~ U[0, 1]` and independent masking the number of masked tokens `n` of a sequence
/// is uniform on `{0, …, L}` (a Beta-binomial with a flat prior) and, given `n`, the masked
/// set is uniform among the `n`-subsets; the mask-count form of the absorbing NELBO (LLaDA,
/// Nie et al. 2025, eq. 5) is `NELBO = Σ_{n=1}^{L} (1/n) E[Σ_{masked} −log p_θ | n]`, hence
/// `E[MaskCount loss] = NELBO/(L + 1)`. Dividing by the realised count `n_b` instead of
/// `t_b L` removes the Binomial fluctuation of `n_b` around `t_b L`, which dominates the
/// variance of the `1/t` weight at small `t`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TrainWeighting {
    /// MDLM's continuous-time weight `w(t) = 1/t` per token, divided by `B·L`
    /// (`E = NELBO/L`, up to the `t_min` truncation).
    #[default]
    Time,
    /// `1/n_b` per masked token of sequence `b`, divided by `B` (`E = NELBO/(L + 1)`).
    MaskCount,
    /// The plain mean cross entropy over all masked tokens of the batch, `1/Σ_b n_b` each.
    /// Not proportional to the NELBO (it weights a mask rate by its number of masked
    /// tokens), but every term is minimised by the same exact posterior
    /// `p(x_0^i | x_t)`, so its minimiser over all denoisers is the NELBO's; it has the
    /// lowest variance of the three. Evaluation is always the true NELBO.
    TokenMean,
}

/// Optimisation settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    /// Sequences per step `B`.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps.
    pub warmup: usize,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Smallest training time (MDLM's `sampling_eps`); bounds `w(t) = 1/t ≤ 1/t_min`.
    pub t_min: f64,
    /// Seed of batches, times and masks.
    pub seed: u64,
    /// Weighting of the training loss.
    pub weighting: TrainWeighting,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            batch_size: 64,
            lr: 2e-3,
            warmup: 50,
            weight_decay: 0.01,
            t_min: 1e-3,
            seed: 0,
            weighting: TrainWeighting::Time,
        }
    }
}

/// A model with its optimiser and forward process.
pub struct Trainer {
    model: TransformerDenoiser,
    opt: AdamW,
    cfg: TrainConfig,
    process: MixtureProcess,
    sampler: Antithetic,
    step: u32,
}

impl Trainer {
    /// Wrap `model` with AdamW and the absorbing process `α(t) = 1 − t` towards its mask.
    ///
    /// Errors: `batch_size = 0`, an invalid `t_min`, candle errors.
    pub fn new(model: TransformerDenoiser, cfg: TrainConfig) -> Result<Self> {
        if cfg.batch_size == 0 {
            return Err(Error::invalid("batch_size", "must be ≥ 1"));
        }
        let v = model.config().vocab;
        let mut pi = vec![0.0; v];
        pi[model.config().mask_token as usize] = 1.0;
        let process = MixtureProcess::from_schedule(pi, Linear::new())?;
        let sampler = Antithetic::new(cfg.t_min)?;
        let opt = AdamW::new(
            model.varmap().all_vars(),
            ParamsAdamW {
                lr: cfg.lr,
                weight_decay: cfg.weight_decay,
                ..Default::default()
            },
        )
        .map_err(candle_err)?;
        Ok(Trainer {
            model,
            opt,
            cfg,
            process,
            sampler,
            step: 0,
        })
    }

    /// The model.
    pub fn model(&self) -> &TransformerDenoiser {
        &self.model
    }

    /// Consume the trainer, returning the model.
    pub fn into_model(self) -> TransformerDenoiser {
        self.model
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u32 {
        self.step
    }

    /// The learning rate at `progress ∈ [0, 1]` of the budget (module docs).
    pub fn learning_rate(&self, progress: f64) -> f64 {
        let s = self.step as f64 + 1.0;
        let warm = (s / self.cfg.warmup.max(1) as f64).min(1.0);
        let p = progress.clamp(0.0, 1.0);
        self.cfg.lr * warm * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * p).cos()))
    }

    /// The training loss (nats per token, module docs) of the batch `x0` with the given
    /// sequence ids at step `step`, as a differentiable tensor.
    ///
    /// Errors: those of the corruption and the loss.
    pub fn batch_loss(&self, x0: &Array2<u32>, ids: &[u64], step: u32) -> Result<Tensor> {
        let schedule = Linear::new();
        let c = corrupt_batch(
            &self.sampler,
            &self.process,
            x0.view(),
            self.cfg.seed,
            u64::MAX,
            ids,
            step,
        )?;
        let mask = self.model.config().mask_token;
        let (b, l) = c.xt.dim();
        let coef = match self.cfg.weighting {
            TrainWeighting::Time => loss_coefficients(
                x0.view(),
                c.xt.view(),
                &c.times,
                mask,
                &schedule,
                ElboWeight::Elbo,
            )?,
            TrainWeighting::MaskCount => mask_count_coefficients(c.xt.view(), mask),
            TrainWeighting::TokenMean => {
                let n = c.xt.iter().filter(|&&x| x == mask).count().max(1);
                c.xt.iter()
                    .map(|&x| if x == mask { 1.0 / n as f32 } else { 0.0 })
                    .collect()
            }
        };
        let t = Tensor::from_vec(
            c.xt.iter().copied().collect::<Vec<u32>>(),
            (b, l),
            &Device::Cpu,
        )
        .map_err(candle_err)?;
        let logits = self.model.forward(&t).map_err(candle_err)?;
        masked_nelbo_loss(&logits, x0.view(), &coef)
    }

    /// One optimisation step on a batch drawn from `data` (all of length `L`); returns the
    /// loss before the step. `progress ∈ [0, 1]` sets the learning rate.
    ///
    /// Errors: empty `data`, sequences of the wrong length, those of
    /// [`batch_loss`](Self::batch_loss), candle errors.
    pub fn step(&mut self, data: &[Vec<u32>], progress: f64) -> Result<f64> {
        if data.is_empty() {
            return Err(Error::invalid("data", "no training sequences"));
        }
        let (b, l) = (self.cfg.batch_size, self.model.config().seq_len);
        let key = RngKey::for_stream(self.cfg.seed, u64::MAX - 1);
        let mut x0 = Array2::<u32>::zeros((b, l));
        let mut ids = Vec::with_capacity(b);
        for bi in 0..b {
            let id = u64_at(key, Purpose::USER, self.step, bi as u32, 0) % data.len() as u64;
            let seq = &data[id as usize];
            if seq.len() != l {
                return Err(Error::invalid(
                    "data",
                    format!("sequence {id} has length {} ≠ L = {l}", seq.len()),
                ));
            }
            x0.row_mut(bi)
                .iter_mut()
                .zip(seq)
                .for_each(|(d, &s)| *d = s);
            ids.push(id);
        }
        let loss = self.batch_loss(&x0, &ids, self.step)?;
        let value = loss.to_scalar::<f32>().map_err(candle_err)? as f64;
        self.opt.set_learning_rate(self.learning_rate(progress));
        self.opt.backward_step(&loss).map_err(candle_err)?;
        self.step += 1;
        Ok(value)
    }

    /// Train until `max_steps` steps or `max_seconds` of wall time, whichever first; calls
    /// `log(step, loss)` after every step. Returns the elapsed seconds.
    ///
    /// Errors: those of [`step`](Self::step).
    pub fn train(
        &mut self,
        data: &[Vec<u32>],
        max_steps: Option<usize>,
        max_seconds: f64,
        mut log: impl FnMut(u32, f64),
    ) -> Result<f64> {
        let start = Instant::now();
        loop {
            let secs = start.elapsed().as_secs_f64();
            let by_time = secs / max_seconds;
            let by_steps = max_steps.map_or(0.0, |m| self.step as f64 / m.max(1) as f64);
            let progress = by_time.max(by_steps);
            if progress >= 1.0 {
                return Ok(secs);
            }
            let loss = self.step(data, progress)?;
            log(self.step, loss);
        }
    }
}

/// The [`TrainWeighting::MaskCount`] coefficients of `x_t [B, L]`: `1/(B n_b)` at the
/// masked positions of a sequence with `n_b ≥ 1` masked tokens, 0 elsewhere (row-major).
pub fn mask_count_coefficients(xt: ndarray::ArrayView2<'_, u32>, mask_token: u32) -> Vec<f32> {
    let (b, l) = xt.dim();
    let mut c = vec![0f32; b * l];
    for (bi, row) in xt.outer_iter().enumerate() {
        let n = row.iter().filter(|&&x| x == mask_token).count();
        if n == 0 {
            continue;
        }
        let w = (1.0 / (b as f64 * n as f64)) as f32;
        for (i, &x) in row.iter().enumerate() {
            if x == mask_token {
                c[bi * l + i] = w;
            }
        }
    }
    c
}

/// Per-sequence NELBO estimates (nats) of `model` on `seqs` (module docs): `draws` k-stratified
/// mask-count draws per sequence, keyed by `(seed, sequence index)`, `chunk` sequences per
/// model call. Returns the estimate of each sequence; each is unbiased, and they are
/// independent across sequences, so the standard error of their mean is `sd/√n`.
///
/// Errors: those of [`ElboDraws::new`], the model and [`ElboDraws::evaluate`].
pub fn heldout_nelbo(
    model: &dyn Denoiser,
    seqs: &[Vec<u32>],
    mask_token: u32,
    draws: usize,
    seed: u64,
    chunk: usize,
) -> Result<Vec<f64>> {
    let v = model.vocab_size();
    let mut out = Vec::with_capacity(seqs.len());
    for (c, group) in seqs.chunks(chunk.max(1)).enumerate() {
        let base = c * chunk.max(1);
        let built = group
            .iter()
            .enumerate()
            .map(|(j, x)| {
                ElboDraws::new(
                    x,
                    mask_token,
                    0,
                    ElboSampling::MaskCount { stratified: true },
                    draws,
                    RngKey::for_stream(seed, (base + j) as u64),
                    0,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let l = group[0].len();
        let views: Vec<_> = built.iter().map(|d| d.tokens.view()).collect();
        let tokens = ndarray::concatenate(Axis(0), &views)
            .map_err(|e| Error::invalid("seqs", format!("sequences of different lengths: {e}")))?;
        let times: Vec<f64> = built.iter().flat_map(|d| d.times.iter().copied()).collect();
        let mut logits = Array3::<f32>::zeros((tokens.nrows(), l, v));
        model.logits(
            tokens.view(),
            ndarray::ArrayView1::from(&times),
            logits.view_mut(),
        )?;
        let mut row = 0;
        for d in &built {
            let n = d.len();
            let est = d.evaluate(logits.slice(ndarray::s![row..row + n, .., ..]), None)?;
            out.push(est.value);
            row += n;
        }
    }
    Ok(out)
}
