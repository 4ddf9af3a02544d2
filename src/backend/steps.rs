//! Fused sampler steps over a [`Backend`]: each reads every row of logits it needs **once**
//! through [`Backend::summarize`], does `O(B·L)` further work, writes tokens in place and
//! returns what it did (DESIGN §3.5–3.7).
//!
//! | step | function | anchor |
//! |---|---|---|
//! | plain categorical sampling | [`sample_categorical`] | — (softmax at temperature τ) |
//! | MDLM ancestral step with SUBS carry-over | [`mdlm_ancestral_step`] | kuleshov-group/mdlm `Diffusion._ddpm_caching_update` |
//! | LLaDA low-confidence / random remasking (top-k) | [`llada_step`], [`llada_num_transfer_tokens`] | ML-GSAI/LLaDA `generate.py` |
//! | Fast-dLLM threshold decoding | [`threshold_step`] | NVlabs/Fast-dLLM `llada/generate.py:get_transfer_index` |
//! | DFM Euler jump on the masked mixture path | [`dfm_euler_step`] | facebookresearch/flow_matching `MixtureDiscreteEulerSolver` |
//! | SEDD analytic (Tweedie) absorbing step | [`sedd_analytic_absorbing_step`] | louaaron/Score-Entropy-Discrete-Diffusion `AnalyticPredictor` |
//!
//! # Common contract
//!
//! * `logits` is `[B, L, V]` `f32` (x0-logits, or log concrete scores for SEDD), `tokens`
//!   is `[B, L]` `u32`, the mask token is any id `< V` (never assumed last);
//! * randomness is addressed by [`StepRng`]: sequence `b` draws from
//!   `RngKey::for_stream(seed, streams[b])` at `(purpose, step, position i)`; the purposes are
//!   fixed per use ([`Purpose::CATEGORICAL`] for token draws, [`Purpose::ROUTING`] for
//!   stay/jump decisions, [`Purpose::SELECTION`] for random scores). Results therefore never
//!   depend on the batch composition, the order of the rows or the number of threads;
//! * only the rows a step needs are read (e.g. the MDLM step decides first which masked
//!   positions unmask and reads only those rows); unread rows may hold anything, NaN
//!   included;
//! * inputs are validated before anything is written: on `Err` the tokens are unchanged;
//! * a step returns a [`StepOutput`]: the committed positions in `(b, i)` order with the
//!   token and its untempered log-probability at commit time, the [`RowSummary`] of every
//!   row read, and which rows were read.

mod categorical;
mod dfm;
mod llada;
mod mdlm;
mod sedd;

pub use categorical::sample_categorical;
pub use dfm::{DfmEulerStep, JumpRule, dfm_euler_step, dfm_jump_probability};
pub use llada::{
    LladaStep, Scorer, ThresholdStep, llada_num_transfer_tokens, llada_step, threshold_step,
};
pub use mdlm::{MdlmStep, mdlm_ancestral_step, mdlm_stay_probability};
pub use sedd::{SeddAbsorbingStep, sedd_absorbing_stay_probability, sedd_analytic_absorbing_step};

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayView3, ArrayViewMut2};
use rayon::prelude::*;

use super::{Backend, BatchRng, RowSpec, RowSummary};
use crate::error::{Error, Result};
use crate::rng::{CounterRng, PHILOX_LANES, Purpose, RngKey, first_uniforms};

/// The random-number addressing of one sampler step: sequence `b` draws from
/// `RngKey::for_stream(seed, streams[b])` at `(purpose, step, position)`, the purpose being
/// chosen by the step (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct StepRng<'a> {
    /// The seed.
    pub seed: u64,
    /// One stream id per sequence (its identity, e.g. a request id; not its batch row).
    pub streams: &'a [u64],
    /// The sampler step (distinct steps give independent numbers).
    pub step: u32,
}

impl<'a> StepRng<'a> {
    /// The backend addressing of these numbers under `purpose`.
    pub fn with_purpose(&self, purpose: Purpose) -> BatchRng<'a> {
        BatchRng {
            seed: self.seed,
            streams: self.streams,
            step: self.step,
            purpose,
        }
    }

    /// The uniform in `[0, 1)` of sequence `b`, position `i` under `purpose`: the first
    /// uniform of `CounterRng::new(RngKey::for_stream(seed, streams[b]), purpose, step, i)`,
    /// the number the steps use for their decisions. `None` when `b ≥ streams.len()` or
    /// `i > u32::MAX`.
    pub fn uniform(&self, purpose: Purpose, b: usize, i: usize) -> Option<f64> {
        let stream = *self.streams.get(b)?;
        let pos = u32::try_from(i).ok()?;
        let key = RngKey::for_stream(self.seed, stream);
        Some(CounterRng::new(key, purpose, self.step, pos).uniform())
    }

    /// [`StepRng::uniform`] for indices validated by the caller.
    #[inline]
    pub(crate) fn uniform_at(&self, purpose: Purpose, b: usize, i: usize) -> f64 {
        debug_assert!(b < self.streams.len() && i <= u32::MAX as usize);
        let key = RngKey::for_stream(self.seed, self.streams[b]);
        CounterRng::new(key, purpose, self.step, i as u32).uniform()
    }

    /// The routing decisions of a mixture step: `true` at the positions holding `mask_id`
    /// whose [`Purpose::ROUTING`] uniform is `≥ stay` (the positions that leave the mask
    /// and whose rows are read). The same numbers as [`StepRng::uniform`], computed with
    /// one key derivation per sequence and the sequences in parallel (rayon's current
    /// pool): `O(B·L)` work, no allocation beyond the `[B, L]` result.
    pub(crate) fn route_masked(
        &self,
        tokens: ArrayView2<'_, u32>,
        mask_id: u32,
        stay: f64,
    ) -> Array2<bool> {
        let (b, l) = tokens.dim();
        debug_assert!(b <= self.streams.len() && l as u64 <= u64::from(u32::MAX) + 1);
        let mut select = vec![false; b * l];
        if l > 0 {
            let simd = crate::backend::cpu::Simd::best();
            select.par_chunks_mut(l).enumerate().for_each(|(bi, sel)| {
                let route = Route {
                    key: RngKey::for_stream(self.seed, self.streams[bi]),
                    step: self.step,
                    mask_id,
                    stay,
                };
                route.run(simd, tokens.row(bi), sel);
            });
        }
        Array2::from_shape_vec((b, l), select).expect("b·l booleans")
    }
}

/// The routing of one sequence ([`StepRng::route_masked`]): the uniforms of
/// [`PHILOX_LANES`] consecutive positions at a time by [`first_uniforms`] (groups without
/// a masked position skipped), compiled for the fastest instruction set available (the
/// same numbers on every level: integer arithmetic, then one exact conversion).
struct Route {
    key: RngKey,
    step: u32,
    mask_id: u32,
    stay: f64,
}

impl Route {
    #[allow(unsafe_code)]
    fn run(&self, simd: crate::backend::cpu::Simd, row: ArrayView1<'_, u32>, sel: &mut [bool]) {
        use crate::backend::cpu::Simd;
        match simd {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 if Simd::Avx512.is_available() => {
                // SAFETY: `run_avx512` only needs the target features it enables, each
                // checked at run time by `is_available` just now.
                unsafe { self.run_avx512(row, sel) }
            }
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 | Simd::Avx512 if Simd::Avx2.is_available() => {
                // SAFETY: `run_avx2` only needs AVX2 and FMA, checked at run time just now.
                unsafe { self.run_avx2(row, sel) }
            }
            _ => self.run_impl(row, sel),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn run_avx2(&self, row: ArrayView1<'_, u32>, sel: &mut [bool]) {
        self.run_impl(row, sel)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,avx512f,avx512dq,avx512vl,avx512bw")]
    fn run_avx512(&self, row: ArrayView1<'_, u32>, sel: &mut [bool]) {
        self.run_impl(row, sel)
    }

    #[inline(always)]
    fn run_impl(&self, row: ArrayView1<'_, u32>, sel: &mut [bool]) {
        let l = sel.len();
        let mut i0 = 0;
        while i0 < l {
            let n = (l - i0).min(PHILOX_LANES);
            if (i0..i0 + n).any(|i| row[i] == self.mask_id) {
                let u = first_uniforms(self.key, Purpose::ROUTING, self.step, i0 as u32);
                for j in 0..n {
                    if row[i0 + j] == self.mask_id {
                        sel[i0 + j] = u[j] >= self.stay;
                    }
                }
            }
            i0 += n;
        }
    }
}

/// One committed position of a step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Commit {
    /// Sequence (batch row).
    pub seq: usize,
    /// Position in the sequence.
    pub pos: usize,
    /// The token written.
    pub token: u32,
    /// Its untempered log-probability under the row's distribution at commit time
    /// ([`RowSummary::token_logprob`]).
    pub logprob: f64,
}

/// What a step did.
#[derive(Clone, Debug)]
pub struct StepOutput {
    /// The committed positions, in `(seq, pos)` order.
    pub commits: Vec<Commit>,
    /// `[B, L]`: the summary of every row read (default elsewhere).
    pub summaries: Array2<RowSummary>,
    /// `[B, L]`: which rows were read.
    pub read: Array2<bool>,
}

impl StepOutput {
    /// The number of rows read.
    pub fn rows_read(&self) -> usize {
        self.read.iter().filter(|&&r| r).count()
    }
}

/// The validated shape of one step.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    pub b: usize,
    pub l: usize,
    pub v: usize,
}

/// Validate `logits [B, L, V]`, the shape `[B, L]` of `tokens`, `streams` (length `B`)
/// and, if given, `mask_id < V`. Token values are checked by [`check_token_values`].
pub(crate) fn check_shapes(
    logits: &ArrayView3<'_, f32>,
    tokens_dim: (usize, usize),
    rng: &StepRng<'_>,
    mask_id: Option<u32>,
) -> Result<Dims> {
    let (b, l, v) = logits.dim();
    if b == 0 || l == 0 {
        return Err(Error::shape(
            "logits",
            "[B ≥ 1, L ≥ 1, V]",
            format!("{:?}", logits.shape()),
        ));
    }
    crate::validate::vocab("logits.V", v)?;
    if l > u32::MAX as usize {
        return Err(Error::invalid(
            "logits",
            format!("sequence length {l} exceeds u32 positions"),
        ));
    }
    if tokens_dim != (b, l) {
        return Err(Error::shape(
            "tokens",
            format!("[{b}, {l}]"),
            format!("[{}, {}]", tokens_dim.0, tokens_dim.1),
        ));
    }
    crate::validate::len("rng.streams", rng.streams.len(), b)?;
    if let Some(m) = mask_id {
        crate::validate::token("mask_id", m, v)?;
    }
    Ok(Dims { b, l, v })
}

/// Every token id `< V`.
pub(crate) fn check_token_values(tokens: &ArrayView2<'_, u32>, v: usize) -> Result<()> {
    // The maximum first (a branch-free, vectorised fold); the index only on error.
    let max = match tokens.as_slice() {
        Some(s) => s.iter().copied().fold(0, u32::max),
        None => tokens.iter().copied().fold(0, u32::max),
    };
    if (max as usize) < v {
        return Ok(());
    }
    let (index, &x) = tokens
        .iter()
        .enumerate()
        .find(|&(_, &x)| x as usize >= v)
        .expect("the maximum is out of range");
    Err(Error::TokenOutOfRange {
        arg: "tokens",
        index,
        token: x as u64,
        vocab: v,
    })
}

/// [`check_shapes`] and [`check_token_values`].
pub(crate) fn check_common(
    logits: &ArrayView3<'_, f32>,
    tokens: &ArrayView2<'_, u32>,
    rng: &StepRng<'_>,
    mask_id: Option<u32>,
) -> Result<Dims> {
    let d = check_shapes(logits, tokens.dim(), rng, mask_id)?;
    check_token_values(tokens, d.v)?;
    Ok(d)
}

/// Validate an optional `[B, L]` boolean mask.
pub(crate) fn check_mask(
    arg: &'static str,
    m: &Option<ArrayView2<'_, bool>>,
    d: Dims,
) -> Result<()> {
    if let Some(m) = m
        && m.dim() != (d.b, d.l)
    {
        return Err(Error::shape(
            arg,
            format!("[{}, {}]", d.b, d.l),
            format!("{:?}", m.shape()),
        ));
    }
    Ok(())
}

/// A temperature: finite and `≥ 0`.
pub(crate) fn check_temperature(t: f64) -> Result<f64> {
    if !(t.is_finite() && t >= 0.0) {
        return Err(Error::invalid(
            "temperature",
            format!("temperature {t} must be finite and ≥ 0"),
        ));
    }
    Ok(t)
}

/// Summarise the selected rows; returns the summaries and the selection.
pub(crate) fn summarize_selected<B: Backend + ?Sized>(
    backend: &B,
    logits: ArrayView3<'_, f32>,
    select: Array2<bool>,
    spec: &RowSpec,
    rng: &BatchRng<'_>,
) -> Result<(Array2<RowSummary>, Array2<bool>)> {
    let mut out = Array2::from_elem(select.dim(), RowSummary::default());
    if select.iter().any(|&s| s) {
        backend.summarize(logits, Some(select.view()), spec, rng, out.view_mut())?;
    }
    Ok((out, select))
}

/// Write the commits into `tokens` and package the output.
pub(crate) fn apply_commits(
    mut tokens: ArrayViewMut2<'_, u32>,
    commits: Vec<Commit>,
    summaries: Array2<RowSummary>,
    read: Array2<bool>,
) -> StepOutput {
    for c in &commits {
        tokens[[c.seq, c.pos]] = c.token;
    }
    StepOutput {
        commits,
        summaries,
        read,
    }
}

/// `0 ≤ s < t ≤ 1` (reverse-time steps of the crate's time: `t` is the current, noisier
/// time, `s` the next one).
pub(crate) fn check_times(t: f64, s: f64) -> Result<()> {
    crate::validate::time("t", t)?;
    crate::validate::time("s", s)?;
    if s >= t {
        return Err(Error::invalid(
            "s",
            format!("the next time s = {s} must be smaller than the current time t = {t}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Simd;

    /// The batched, vectorised routing gives exactly the per-position uniforms of
    /// [`StepRng::uniform`] on every instruction set, for lengths that are not multiples
    /// of [`PHILOX_LANES`] and for strided token views.
    #[test]
    fn route_masked_matches_the_scalar_uniforms() {
        let streams = [11u64, 3, 7];
        let rng = StepRng {
            seed: 99,
            streams: &streams,
            step: 4,
        };
        for l in [1usize, 7, 8, 9, 37] {
            let tokens = Array2::from_shape_fn((3, l), |(b, i)| ((b * 5 + i * 3) % 4) as u32);
            for stay in [0.0, 0.3, 0.9, 1.0] {
                let expect = Array2::from_shape_fn((3, l), |(b, i)| {
                    tokens[[b, i]] == 2
                        && rng.uniform(Purpose::ROUTING, b, i).expect("in range") >= stay
                });
                assert_eq!(rng.route_masked(tokens.view(), 2, stay), expect);
                for simd in Simd::available() {
                    for (b, &stream) in streams.iter().enumerate() {
                        let route = Route {
                            key: RngKey::for_stream(rng.seed, stream),
                            step: rng.step,
                            mask_id: 2,
                            stay,
                        };
                        let mut sel = vec![false; l];
                        route.run(simd, tokens.row(b), &mut sel);
                        assert_eq!(sel, expect.row(b).to_vec(), "{simd:?}, l = {l}");
                    }
                }
            }
            // A transposed (strided) view routes like its standard-layout copy.
            let t = Array2::from_shape_fn((l, 3), |(i, b)| tokens[[b, i]]);
            assert_eq!(
                rng.route_masked(t.t(), 2, 0.5),
                rng.route_masked(tokens.view(), 2, 0.5)
            );
        }
    }

    #[test]
    fn token_check_names_the_first_bad_index() {
        let mut tokens = Array2::<u32>::zeros((2, 5));
        assert!(check_token_values(&tokens.view(), 3).is_ok());
        tokens[[1, 2]] = 3;
        tokens[[1, 4]] = 9;
        match check_token_values(&tokens.view(), 3) {
            Err(Error::TokenOutOfRange { index, token, .. }) => assert_eq!((index, token), (7, 3)),
            other => panic!("{other:?}"),
        }
        // Strided view: logical order.
        match check_token_values(&tokens.t(), 3) {
            Err(Error::TokenOutOfRange { index, token, .. }) => assert_eq!((index, token), (5, 3)),
            other => panic!("{other:?}"),
        }
    }
}
