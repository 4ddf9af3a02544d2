//! Caching policies for denoiser calls: exact reuse and interval refresh (dKV-Cache,
//! dLLM-Cache), as [`Denoiser`] wrappers that count the real model calls (NFE).
//!
//! [`Denoiser::logits`] takes `&self`, so the wrappers keep their cache behind a
//! [`Mutex`]; they are `Send + Sync` whenever the inner model is.
//!
//! # Exact reuse ([`ExactReuse`])
//!
//! A denoiser's logits are a function of `(x_t, t)`. If neither changed since the last real
//! call — or only `t` changed and the model ignores time ([`TimeDependence::Independent`]:
//! RADD's time-free conditionals, LLaDA's mask predictor, and the exact x0 posterior of any
//! absorbing process) — the cached logits **are** the logits: reuse is bit-identical to not
//! caching. Masked-diffusion samplers hit this often: with many steps, most steps unmask
//! nothing (MDLM's sampler skips the network call when no token changed, Sahoo et al.
//! 2024). Reuse is per batch row; the changed rows go to the model as one sub-batch, so
//! results are identical to the uncached run whenever the model's rows do not depend on
//! their batch mates (DESIGN §3.7; the crate's oracles satisfy this).
//!
//! # Interval refresh ([`IntervalCache`]): an approximation
//!
//! dLLM-Cache (Liu et al. 2025) caches, per transformer layer, the keys/values, attention
//! outputs and feed-forward outputs of the prompt and of the response separately; prompt
//! features are recomputed every `K_p` steps, response features every `K_r` steps, and in
//! between a fraction of the response tokens (those whose value vectors moved most, by
//! cosine similarity) is refreshed. dKV-Cache (Ma et al. 2025) similarly delays and
//! periodically refreshes the key/value cache of decoded tokens. Both are approximations:
//! cached features were computed from an older `x_t`.
//!
//! At the logit level — all a [`Denoiser`] exposes — the corresponding policy is: on step
//! `s` (counting calls since the last [`BlockModel::prefill`] or [`IntervalCache::reset`]),
//! call the model when `s ≡ 0 (mod k_p)` or `s ≡ 0 (mod k_r)`, and overwrite the cached
//! logits of the **prompt** positions `[0, P)` if `s ≡ 0 (mod k_p)` and of the **response**
//! positions `[P, L)` if `s ≡ 0 (mod k_r)`; on other steps serve the cache without calling
//! the model. "Reuse" therefore means: the served logits at position `i` are exactly
//! `ln p_θ(x_0^i | x_{t'}, t')` for the last refresh time `t'` of `i`'s group, not
//! `ln p_θ(x_0^i | x_t, t)`. This is the coarsest member of the family (feature caches still
//! push the current token embeddings through the residual stream, so their error is
//! smaller); it is exact when `k_p = k_r = 1`, and exact at every step where nothing
//! changed since the refresh. [`IntervalCache::positions_refreshed`] counts the
//! position-evaluations a feature cache would spend (`P` per prompt refresh, `L − P` per
//! response refresh, per row); [`IntervalCache::nfe`] the real model calls. The error is
//! measured in `tests/cache_interval.rs`.
//!
//! # Prefill
//!
//! The caches implement the driver's [`BlockModel`] hooks. [`BlockModel::prefill`] is
//! called by [`driver::run`](crate::sample::driver::run) once per generation with the
//! prompt (`[B, P]`) before the first step: the caches reset themselves (a new generation
//! must never see the previous one's logits), the interval cache takes `P` from it, and
//! both forward it to the model they wrap. [`BlockModel::begin_block`] is forwarded
//! unchanged (both caches stay valid across a block start). Driving a cache by hand, call
//! `prefill` (or `reset`) before each generation.
//!
//! References: S. Sahoo et al., "Simple and effective masked diffusion language models"
//! (MDLM), 2024; Z. Liu et al., "dLLM-Cache: accelerating diffusion large language models
//! with adaptive caching", 2025; X. Ma et al., "dKV-Cache: the cache for diffusion language
//! models", 2025.

use std::ops::Range;
use std::sync::{Mutex, MutexGuard};

use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayViewMut3, Axis, s};

use crate::error::{Error, Result};
use crate::model::Denoiser;
use crate::sample::driver::BlockModel;
use crate::sample::guidance::{check_call, logits_of_rows};

/// Whether a denoiser's logits depend on the time argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeDependence {
    /// Logits depend on `(x_t, t)`: reuse only when both are unchanged (bitwise).
    Dependent,
    /// Logits depend on `x_t` only (RADD, LLaDA, the exact posterior of an absorbing
    /// process): reuse whenever the tokens are unchanged. Declaring this for a
    /// time-dependent model makes reuse an approximation.
    Independent,
}

/// Lock, recovering the data of a poisoned mutex (the cache is rebuilt from scratch on any
/// shape change, and a panicking inner model leaves at worst a stale but consistent entry).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counters shared by the caches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Successful calls of the wrapper's `logits`.
    pub calls: u64,
    /// Real calls of the inner model (the NFE).
    pub nfe: u64,
    /// Batch rows passed to the inner model, summed over its calls.
    pub rows_evaluated: u64,
}

#[derive(Debug)]
struct ExactState {
    tokens: Array2<u32>,
    times: Array1<f64>,
    logits: Array3<f32>,
}

/// Exact reuse of the last logits of every batch row whose tokens (and time, unless
/// [`TimeDependence::Independent`]) are unchanged (module docs). Bit-identical to the
/// uncached model for batch-independent models.
#[derive(Debug)]
pub struct ExactReuse<D> {
    inner: D,
    time: TimeDependence,
    state: Mutex<Option<ExactState>>,
    stats: Mutex<CacheStats>,
}

impl<D: Denoiser> ExactReuse<D> {
    /// Wrap `inner`, declaring whether its logits depend on time.
    pub fn new(inner: D, time: TimeDependence) -> Self {
        ExactReuse {
            inner,
            time,
            state: Mutex::new(None),
            stats: Mutex::new(CacheStats::default()),
        }
    }

    /// The wrapped model.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// Counters since construction (not cleared by [`reset`](Self::reset)).
    pub fn stats(&self) -> CacheStats {
        *lock(&self.stats)
    }

    /// Real calls of the inner model so far.
    pub fn nfe(&self) -> u64 {
        self.stats().nfe
    }

    /// Forget the cached logits.
    pub fn reset(&self) {
        *lock(&self.state) = None;
    }
}

impl<D: BlockModel> BlockModel for ExactReuse<D> {
    /// Resets the cache, then forwards to the wrapped model.
    fn prefill(&mut self, prompt: ArrayView2<'_, u32>) -> Result<()> {
        self.reset();
        self.inner.prefill(prompt)
    }

    /// Forwards to the wrapped model; the cache stays valid (it is keyed by the tokens).
    fn begin_block(&mut self, block: Range<usize>, tokens: ArrayView2<'_, u32>) -> Result<()> {
        self.inner.begin_block(block, tokens)
    }
}

impl<D: Denoiser> Denoiser for ExactReuse<D> {
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    /// Cached logits for unchanged rows, one inner call over the changed rows (module
    /// docs). Errors: the usual shape/token/time checks and the inner model's errors (the
    /// cache is left as it was).
    fn logits(
        &self,
        tokens: ArrayView2<'_, u32>,
        times: ArrayView1<'_, f64>,
        mut out: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        let v = self.inner.vocab_size();
        let (b, l) = check_call(v, &tokens, &times, out.dim())?;
        let mut state = lock(&self.state);
        let fits = state.as_ref().is_some_and(|s| s.tokens.dim() == (b, l));
        let stale: Vec<usize> = match state.as_ref().filter(|_| fits) {
            None => (0..b).collect(),
            Some(st) => (0..b)
                .filter(|&r| {
                    st.tokens.row(r) != tokens.row(r)
                        || (self.time == TimeDependence::Dependent
                            && st.times[r].to_bits() != times[r].to_bits())
                })
                .collect(),
        };
        let mut stats = lock(&self.stats);
        if !stale.is_empty() {
            let fresh = logits_of_rows(&self.inner, tokens, times, &stale)?;
            stats.nfe += 1;
            stats.rows_evaluated += stale.len() as u64;
            if !fits {
                *state = Some(ExactState {
                    tokens: Array2::zeros((b, l)),
                    times: Array1::zeros(b),
                    logits: Array3::zeros((b, l, v)),
                });
            }
            let st = state.as_mut().ok_or_else(|| Error::Numerical {
                what: "ExactReuse",
                reason: "cache state missing after initialisation".into(),
            })?;
            for (k, &r) in stale.iter().enumerate() {
                st.tokens.row_mut(r).assign(&tokens.row(r));
                st.times[r] = times[r];
                st.logits
                    .index_axis_mut(Axis(0), r)
                    .assign(&fresh.index_axis(Axis(0), k));
            }
        }
        let st = state.as_ref().ok_or_else(|| Error::Numerical {
            what: "ExactReuse",
            reason: "cache state missing".into(),
        })?;
        stats.calls += 1;
        out.assign(&st.logits);
        Ok(())
    }
}

/// Refresh intervals of an [`IntervalCache`]: `k_p` for the prompt positions `[0, P)`,
/// `k_r` for the response positions `[P, L)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntervalConfig {
    prompt_interval: usize,
    response_interval: usize,
}

impl IntervalConfig {
    /// Intervals `k_p ≥ 1` and `k_r ≥ 1` (steps between refreshes; 1 = every step).
    ///
    /// Errors: an interval of 0.
    pub fn new(prompt_interval: usize, response_interval: usize) -> Result<Self> {
        if prompt_interval == 0 {
            return Err(Error::invalid(
                "prompt_interval",
                "must be at least 1 (got 0)",
            ));
        }
        if response_interval == 0 {
            return Err(Error::invalid(
                "response_interval",
                "must be at least 1 (got 0)",
            ));
        }
        Ok(IntervalConfig {
            prompt_interval,
            response_interval,
        })
    }

    /// `(k_p, k_r)`.
    pub fn intervals(&self) -> (usize, usize) {
        (self.prompt_interval, self.response_interval)
    }
}

#[derive(Debug, Default)]
struct IntervalState {
    step: u64,
    prompt_len: usize,
    cached: Option<Array3<f32>>,
    stats: CacheStats,
    positions_refreshed: u64,
}

/// Interval refresh of prompt and response logits (module docs): an approximation that is
/// exact for `k_p = k_r = 1`.
#[derive(Debug)]
pub struct IntervalCache<D> {
    inner: D,
    config: IntervalConfig,
    state: Mutex<IntervalState>,
}

impl<D: Denoiser> IntervalCache<D> {
    /// Wrap `inner` with the given intervals; positions `[0, prompt_len)` are the prompt
    /// (changed by [`BlockModel::prefill`]). `prompt_len` may be 0 (no prompt).
    pub fn new(inner: D, config: IntervalConfig, prompt_len: usize) -> Self {
        IntervalCache {
            inner,
            config,
            state: Mutex::new(IntervalState {
                prompt_len,
                ..IntervalState::default()
            }),
        }
    }

    /// The wrapped model.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// Counters since construction (not cleared by [`reset`](Self::reset)).
    pub fn stats(&self) -> CacheStats {
        lock(&self.state).stats
    }

    /// Real calls of the inner model so far.
    pub fn nfe(&self) -> u64 {
        self.stats().nfe
    }

    /// Position-evaluations a feature-level cache would spend: `P` per prompt refresh plus
    /// `L − P` per response refresh, per batch row.
    pub fn positions_refreshed(&self) -> u64 {
        lock(&self.state).positions_refreshed
    }

    /// The prompt length `P` in use.
    pub fn prompt_len(&self) -> usize {
        lock(&self.state).prompt_len
    }

    /// Forget the cached logits and restart the step count at 0 (the next call refreshes
    /// everything).
    pub fn reset(&self) {
        let mut st = lock(&self.state);
        st.cached = None;
        st.step = 0;
    }
}

impl<D: BlockModel> BlockModel for IntervalCache<D> {
    /// Forwards to the wrapped model; the refresh schedule runs on across blocks (a block
    /// start changes no token, so it forces no refresh).
    fn begin_block(&mut self, block: Range<usize>, tokens: ArrayView2<'_, u32>) -> Result<()> {
        self.inner.begin_block(block, tokens)
    }

    /// Resets the cache, sets `P` to the prompt's width, then forwards to the wrapped
    /// model.
    fn prefill(&mut self, prompt: ArrayView2<'_, u32>) -> Result<()> {
        {
            let mut st = lock(&self.state);
            st.cached = None;
            st.step = 0;
            st.prompt_len = prompt.ncols();
        }
        self.inner.prefill(prompt)
    }
}

impl<D: Denoiser> Denoiser for IntervalCache<D> {
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    /// Refresh on schedule, otherwise serve the cache (module docs). A call whose batch
    /// shape differs from the cached one refreshes everything. Errors: the usual
    /// shape/token/time checks, a prompt length `P > L`, and the inner model's errors (the
    /// cache and step count are left as they were).
    fn logits(
        &self,
        tokens: ArrayView2<'_, u32>,
        times: ArrayView1<'_, f64>,
        mut out: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        let v = self.inner.vocab_size();
        let (b, l) = check_call(v, &tokens, &times, out.dim())?;
        let mut st = lock(&self.state);
        let p = st.prompt_len;
        if p > l {
            return Err(Error::invalid(
                "tokens",
                format!("sequence length {l} is shorter than the prompt length {p}"),
            ));
        }
        let (kp, kr) = (
            self.config.prompt_interval as u64,
            self.config.response_interval as u64,
        );
        let fits = st.cached.as_ref().is_some_and(|c| c.dim() == (b, l, v));
        let (ref_p, ref_r) = if fits {
            (st.step.is_multiple_of(kp), st.step.is_multiple_of(kr))
        } else {
            (true, true)
        };
        if ref_p || ref_r {
            let mut fresh = Array3::<f32>::zeros((b, l, v));
            self.inner.logits(tokens, times, fresh.view_mut())?;
            st.stats.nfe += 1;
            st.stats.rows_evaluated += b as u64;
            let mut refreshed = 0u64;
            match st.cached.as_mut().filter(|_| fits) {
                Some(c) => {
                    if ref_p {
                        c.slice_mut(s![.., ..p, ..])
                            .assign(&fresh.slice(s![.., ..p, ..]));
                        refreshed += (b * p) as u64;
                    }
                    if ref_r {
                        c.slice_mut(s![.., p.., ..])
                            .assign(&fresh.slice(s![.., p.., ..]));
                        refreshed += (b * (l - p)) as u64;
                    }
                }
                None => {
                    st.cached = Some(fresh);
                    st.step = 0;
                    refreshed = (b * l) as u64;
                }
            }
            st.positions_refreshed += refreshed;
        }
        st.stats.calls += 1;
        st.step += 1;
        let c = st.cached.as_ref().ok_or_else(|| Error::Numerical {
            what: "IntervalCache",
            reason: "cache state missing".into(),
        })?;
        out.assign(c);
        Ok(())
    }
}
