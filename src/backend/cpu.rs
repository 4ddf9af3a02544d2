//! The multi-threaded CPU backend: [`CpuBackend`], the [`Backend`] contract at hardware
//! speed.
//!
//! # How a row is read
//!
//! Rows (positions `(b, i)`) are distributed over a rayon thread pool; each row's result
//! depends only on its logits and its own random-number address, so 1, 2 or N threads and
//! any order of the batch give identical results. Per row:
//!
//! * **one pass over `V`** in blocks of 256 logits: block maximum and the sums
//!   `Σ exp(ℓ − m)` (and `Σ exp(ℓ − m)(ℓ − m)` for the entropy, `Σ exp((ℓ − m)/τ)` for a
//!   tempered draw) relative to the running maximum `m`, in one read of the block (the
//!   sums are recomputed from L1 in the few blocks that raise `m`), the weights of each
//!   pair of 16-id chunks added lane-wise in `f32` and accumulated in 16 `f64` lanes; the
//!   per-block maxima are rescaled once at the end ("online" log-sum-exp without a
//!   per-element rescale); argmax and the top-2 values for the margin ride along;
//! * the **inverse-CDF draw** finds its block from the stored block sums and walks only
//!   that block: `O(V/256 + 256)` work instead of a second pass over the row;
//! * excluded ids are skipped as segment boundaries (no per-element mask).
//!
//! Errors are those of the reference, for the first bad row in `(b, i)` order, and on
//! error `out` is left untouched (rows are summarised into a buffer first).
//!
//! Extra memory is `O(B·L)` (the selected positions and their summaries) plus
//! `O(V/256)` scratch per work chunk (a copy of the row, `O(V)`, only for rows that are
//! not contiguous in memory): never a `[B, L, V]` temporary (`tests/backend_memory.rs`).
//!
//! # Numerics
//!
//! `exp` is [`exp::exp_nonpositive`]: an `f32` range-reduction-plus-polynomial routine
//! with relative error `≤` [`exp::EXP_MAX_REL_ERROR`] (`9·10⁻⁸`, exhaustively measured); the
//! shift `ℓ − m` is rounded to `f32` (relative `2⁻²⁴`); each pair of weights is added in
//! `f32` (one more rounding, relative `2⁻²⁴` of the pair, i.e. of each of its terms)
//! before the `f64` accumulation. So every weight enters the sums with a relative error
//! `≤ δ = EXP_MAX_REL_ERROR + 2⁻²⁴` (`≈ 1.5·10⁻⁷`) plus the shift's `2⁻²⁴|ℓ − m|`.
//! Against the `f64` [`ReferenceBackend`](crate::backend::ReferenceBackend):
//!
//! * `argmax`, `max` are exact;
//! * `logsumexp` within `δ + 2⁻²⁴·E_p|ℓ − m|` (`≤ δ + 2⁻²⁴ ln V`, since
//!   `E_p|ℓ − m| = H − ln S ≤ ln V`), and so `token_logprob` (same token);
//! * `margin` within `margin · (δ + 2⁻²⁴ ln V)` (`p₁ − p₂ = (1 − e^{ℓ₂−m})/S` with an exact
//!   `f64` numerator);
//! * `entropy` within `δ(1 + 2A) + 2⁻²⁴(3A + A² + B)`, `A = E_p|ℓ − m|`,
//!   `B = E_p(ℓ − m)²` (first order in the per-weight errors `δ + 2⁻²⁴|ℓ − m|` and the
//!   `f32` rounding of each product `e^{ℓ−m}·(ℓ − m)`);
//! * the drawn token equals the reference's except when the uniform falls within the
//!   perturbation of a CDF boundary (a `~δ`-wide window per row; `tests/backend_cpu.rs`
//!   counts them). Temperatures are applied as `(ℓ − m)·τ⁻¹` with `τ⁻¹` rounded to `f32`
//!   and clamped to `[2⁻⁶⁰, 2⁶⁰]`.
//!
//! # Instruction sets
//!
//! The pass is compiled for SSE2 ([`Simd::Portable`]), AVX2 + FMA and AVX-512 and chosen
//! at run time with `is_x86_feature_detected!` ([`Simd::best`]); never `target-cpu=native`.
//! All paths compute the same IEEE operations in the same order and return identical bits.
//!
//! ```
//! use discrete_diffusion::backend::cpu::CpuBackend;
//! use discrete_diffusion::backend::{Backend, BatchRng, RowSpec, RowSummary};
//! use discrete_diffusion::rng::Purpose;
//! use ndarray::{Array2, Array3};
//!
//! // Row (b, i) is v·(i − 1): decreasing, flat, increasing.
//! let logits = Array3::from_shape_fn((2, 3, 5), |(_, i, v)| v as f32 * (i as f32 - 1.0));
//! let mut out = Array2::from_elem((2, 3), RowSummary::default());
//! let rng = BatchRng { seed: 7, streams: &[10, 11], step: 0, purpose: Purpose::CATEGORICAL };
//! let spec = RowSpec { temperature: 1.0, excluded: vec![4], entropy: true, margin: true };
//! let cpu = CpuBackend::with_threads(2).unwrap();
//! cpu.summarize(logits.view(), None, &spec, &rng, out.view_mut()).unwrap();
//! for ((_, i), s) in out.indexed_iter() {
//!     assert_eq!(s.argmax, if i == 2 { 3 } else { 0 }); // id 4 is excluded
//!     assert!(s.token < 4 && s.entropy > 0.0 && s.logsumexp >= s.max as f64);
//! }
//! ```

use std::sync::Arc;

use ndarray::{ArrayView2, ArrayView3, ArrayViewMut2, s};
use rayon::prelude::*;

use crate::backend::{Backend, BatchRng, RowSpec, RowSummary, check_summarize_args};
use crate::error::{Error, Result};

#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod exp;
mod kernel;
#[cfg(test)]
mod pass_tests;
mod row;
mod simd;

pub use simd::Simd;

use kernel::{BLOCK, BlockRec, Mode};

/// Logits per block of the pass (shared with the CUDA backend, which mirrors the blocks).
#[allow(dead_code)]
pub(crate) const BLOCK_LEN: usize = BLOCK;
use row::{RowAt, RowParams};

/// Inverse temperatures are clamped to `[2⁻⁶⁰, 2⁶⁰]` so that `(ℓ − m)·τ⁻¹` is never
/// `0·∞`.
pub(crate) const INV_TAU_RANGE: (f64, f64) = (8.673_617_379_884_035e-19, 1.152_921_504_606_847e18);

/// Work chunks per thread (load balance; results do not depend on it).
const CHUNKS_PER_THREAD: usize = 16;

/// The multi-threaded, SIMD CPU implementation of [`Backend`] (see the module docs).
#[derive(Clone, Debug)]
pub struct CpuBackend {
    pool: Option<Arc<rayon::ThreadPool>>,
    simd: Simd,
}

impl Default for CpuBackend {
    fn default() -> Self {
        CpuBackend::new()
    }
}

impl CpuBackend {
    /// On rayon's global thread pool with the fastest available instruction set.
    pub fn new() -> Self {
        CpuBackend {
            pool: None,
            simd: Simd::best(),
        }
    }

    /// On a thread pool of its own with `threads` threads.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `threads = 0`; [`Error::Numerical`] if the pool
    /// cannot be created.
    pub fn with_threads(threads: usize) -> Result<Self> {
        if threads == 0 {
            return Err(Error::invalid("threads", "threads = 0: need at least 1"));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| Error::Numerical {
                what: "rayon::ThreadPoolBuilder",
                reason: e.to_string(),
            })?;
        Ok(CpuBackend::with_pool(Arc::new(pool)))
    }

    /// On a caller's thread pool.
    pub fn with_pool(pool: Arc<rayon::ThreadPool>) -> Self {
        CpuBackend {
            pool: Some(pool),
            simd: Simd::best(),
        }
    }

    /// The same backend on instruction set `simd` (results are identical on every level;
    /// this is for testing and benchmarking).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if this machine cannot run `simd`.
    pub fn with_simd(mut self, simd: Simd) -> Result<Self> {
        if !simd.is_available() {
            return Err(Error::invalid(
                "simd",
                format!("{simd:?} is not supported by this CPU"),
            ));
        }
        self.simd = simd;
        Ok(self)
    }

    /// The instruction set in use.
    pub fn simd(&self) -> Simd {
        self.simd
    }

    /// The number of threads rows are spread over.
    pub fn threads(&self) -> usize {
        match &self.pool {
            Some(p) => p.current_num_threads(),
            None => rayon::current_num_threads(),
        }
    }
}

/// The allowed segments `[a, b)` of `0..v` around the sorted, deduplicated `excluded`.
pub(crate) fn segments(excluded: &[u32], v: usize) -> Vec<(usize, usize)> {
    let mut segs = Vec::with_capacity(excluded.len() + 1);
    let mut a = 0usize;
    for &e in excluded {
        let e = e as usize;
        if e > a {
            segs.push((a, e));
        }
        a = e + 1;
    }
    if a < v {
        segs.push((a, v));
    }
    segs
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn summarize(
        &self,
        logits: ArrayView3<'_, f32>,
        select: Option<ArrayView2<'_, bool>>,
        spec: &RowSpec,
        rng: &BatchRng<'_>,
        mut out: ArrayViewMut2<'_, RowSummary>,
    ) -> Result<()> {
        let (_, l, v) = check_summarize_args(&logits, &select, spec, rng, &out)?;
        let keys = rng.keys();
        let mut excluded = spec.excluded.clone();
        excluded.sort_unstable();
        excluded.dedup();
        let segs = segments(&excluded, v);
        let tau = spec.temperature;
        let temper = tau > 0.0 && tau != 1.0;
        let inv_tau = if temper {
            (1.0 / tau).clamp(INV_TAU_RANGE.0, INV_TAU_RANGE.1) as f32
        } else {
            1.0
        };
        let params = RowParams {
            level: self.simd,
            mode: Mode {
                temper,
                entropy: spec.entropy,
                top2: spec.margin,
            },
            segs: &segs,
            excluded: &excluded,
            inv_tau,
            draw: tau > 0.0,
        };
        // The selected positions, flat `b·L + i`, in order.
        let selected: Vec<usize> = match &select {
            None => (0..out.len()).collect(),
            Some(sel) => sel
                .iter()
                .enumerate()
                .filter(|&(_, &on)| on)
                .map(|(k, _)| k)
                .collect(),
        };
        if selected.is_empty() {
            return Ok(());
        }
        let mut results = vec![RowSummary::default(); selected.len()];
        let chunk = selected
            .len()
            .div_ceil(self.threads() * CHUNKS_PER_THREAD)
            .max(1);
        let max_blocks = v.div_ceil(BLOCK) + segs.len() + 1;
        let logits = &logits;
        let keys = &keys;
        let params = &params;
        let mut work = || {
            results
                .par_chunks_mut(chunk)
                .zip(selected.par_chunks(chunk))
                .filter_map(|(res, pos)| {
                    let mut blocks: Vec<BlockRec> = Vec::with_capacity(max_blocks);
                    let mut copy: Vec<f32> = Vec::new();
                    for (r, &flat) in res.iter_mut().zip(pos) {
                        let (b, i) = (flat / l, flat % l);
                        let view = logits.slice(s![b, i, ..]);
                        let row: &[f32] = match view.to_slice() {
                            Some(x) => x,
                            None => {
                                copy.clear();
                                copy.extend(view.iter());
                                &copy
                            }
                        };
                        let u = rng.uniform(keys[b], i);
                        let at = RowAt {
                            b,
                            i,
                            base: flat * v,
                        };
                        match row::summarize_row(row, params, &mut blocks, u, at) {
                            Ok(sm) => *r = sm,
                            Err(e) => return Some((flat, e)),
                        }
                    }
                    None
                })
                .min_by_key(|(flat, _)| *flat)
        };
        let first_error = match &self.pool {
            Some(pool) => pool.install(work),
            None => work(),
        };
        if let Some((_, e)) = first_error {
            return Err(e);
        }
        for (&flat, r) in selected.iter().zip(&results) {
            out[[flat / l, flat % l]] = *r;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cover_the_allowed_ids() {
        assert_eq!(segments(&[], 5), vec![(0, 5)]);
        assert_eq!(segments(&[0, 4], 5), vec![(1, 4)]);
        assert_eq!(segments(&[1, 2], 5), vec![(0, 1), (3, 5)]);
        assert_eq!(segments(&[0, 1, 2, 3, 4], 5), vec![]);
    }

    #[test]
    fn inverse_temperature_bounds_are_powers_of_two() {
        assert_eq!(INV_TAU_RANGE.0, 2f64.powi(-60));
        assert_eq!(INV_TAU_RANGE.1, 2f64.powi(60));
        assert!((INV_TAU_RANGE.1 as f32).is_finite());
    }
}
