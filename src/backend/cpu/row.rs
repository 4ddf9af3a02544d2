//! One row of the CPU backend: the pass ([`kernel::pass`]), then `O(V/BLOCK)` scalar work
//! to rescale the block sums to the row maximum, and the inverse-CDF draw, which finds its
//! block from the block sums and walks only that block (≤ [`BLOCK`] logits, in cache).
//!
//! The draw's total and the walk's running sum over blocks are the same sequence of
//! `f64` additions, so the walk's cumulative sum ends exactly at the total; inside the
//! chosen block the running sum is recomputed left to right, and if rounding keeps it
//! below the target the block's last positive-weight id is taken (as the reference does
//! at `u → 1`). A zero-weight id (excluded, `−∞`, or below the `exp` cut-off) is never
//! drawn.
//!
//! [`BLOCK`]: super::kernel::BLOCK

use super::kernel::{self, BLOCK, BlockRec, Mode, Simd};
use crate::backend::RowSummary;
use crate::error::{Error, Result};

/// Per-call constants shared by every row.
pub(crate) struct RowParams<'a> {
    /// The dispatch level.
    pub level: Simd,
    /// Which accumulators the pass needs.
    pub mode: Mode,
    /// The allowed segments `[a, b)` (complement of the excluded ids).
    pub segs: &'a [(usize, usize)],
    /// The excluded ids, sorted, deduplicated.
    pub excluded: &'a [u32],
    /// `τ⁻¹` in `f32` (1 unless `mode.temper`).
    pub inv_tau: f32,
    /// Whether a token is drawn (`τ > 0`).
    pub draw: bool,
}

/// Where a row sits, for error messages.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowAt {
    /// Batch index.
    pub b: usize,
    /// Position.
    pub i: usize,
    /// Flat index of the row's first logit in the `[B, L, V]` tensor.
    pub base: usize,
}

/// The summary of one row (`u` is the row's uniform; `blocks` is scratch).
pub(crate) fn summarize_row(
    row: &[f32],
    p: &RowParams<'_>,
    blocks: &mut Vec<BlockRec>,
    u: f64,
    at: RowAt,
) -> Result<RowSummary> {
    let out = kernel::pass(p.level, p.mode, row, p.segs, p.inv_tau, blocks);
    let bad_excluded = p.excluded.iter().any(|&e| {
        let x = row[e as usize];
        x.is_nan() || x == f32::INFINITY
    });
    let m = out.m as f64;
    let inv = p.inv_tau as f64;
    // Rescale the block sums to the row maximum (one exp per distinct block maximum).
    let (mut s, mut st, mut t) = (0.0f64, 0.0f64, 0.0f64);
    let mut scale = Scale::default();
    for blk in blocks.iter() {
        let (f, ft, d) = scale.at(blk.m, m, inv, p.mode.temper);
        s += f * blk.s;
        if p.mode.entropy {
            t += f * (blk.t + d * blk.s);
        }
        if p.mode.temper {
            st += ft * blk.st;
        }
    }
    if out.nan || bad_excluded || out.m == f32::INFINITY || !s.is_finite() || !st.is_finite() {
        return Err(first_non_finite(row, at));
    }
    if out.m == f32::NEG_INFINITY {
        return Err(Error::invalid(
            "logits",
            format!("row ({}, {}) has no finite allowed logit", at.b, at.i),
        ));
    }
    let ln_s = s.ln();
    let lse = m + ln_s;
    let mut summary = RowSummary {
        argmax: out.argmax as u32,
        max: out.m,
        logsumexp: lse,
        token: out.argmax as u32,
        token_logprob: m - lse,
        ..RowSummary::default()
    };
    if p.mode.top2 {
        summary.margin = (1.0 - (out.second as f64 - m).exp()) / s;
    }
    if p.mode.entropy {
        summary.entropy = (ln_s - t / s).max(0.0);
    }
    if p.draw {
        let total = if p.mode.temper { st } else { s };
        let token = draw(row, p, blocks, m, u * total).unwrap_or(out.argmax);
        summary.token = token as u32;
        summary.token_logprob = row[token] as f64 - lse;
    }
    Ok(summary)
}

/// The rescaling factors `exp(m_k − m)` and `exp((m_k − m)·τ⁻¹)` of a block maximum
/// `m_k`, recomputed only when `m_k` changes (identically in the totals and the walk).
#[derive(Default)]
struct Scale {
    last: Option<f32>,
    f: f64,
    ft: f64,
    d: f64,
}

impl Scale {
    #[inline]
    fn at(&mut self, mk: f32, m: f64, inv: f64, temper: bool) -> (f64, f64, f64) {
        if self.last != Some(mk) {
            self.last = Some(mk);
            self.d = mk as f64 - m;
            self.f = self.d.exp();
            self.ft = if temper { (self.d * inv).exp() } else { self.f };
        }
        (self.f, self.ft, self.d)
    }
}

/// The inverse-CDF walk: the first id whose cumulative weight exceeds `target`.
/// (`None` only if no block has positive weight, which the maximum's block rules out.)
fn draw(row: &[f32], p: &RowParams<'_>, blocks: &[BlockRec], m: f64, target: f64) -> Option<usize> {
    let temper = p.mode.temper;
    let mut scale = Scale::default();
    let mut cum = 0.0f64;
    let mut last_positive = None;
    for (k, blk) in blocks.iter().enumerate() {
        let (f, ft, _) = scale.at(blk.m, m, p.inv_tau as f64, temper);
        let (fk, w) = if temper {
            (ft, ft * blk.st)
        } else {
            (f, f * blk.s)
        };
        if w > 0.0 {
            last_positive = Some(k);
            let next = cum + w;
            if next > target {
                return Some(walk_block(row, blk, p, (target - cum) / fk));
            }
            cum = next;
        }
    }
    // Rounding at u → 1: the last positive weight (the maximum's block always has one).
    last_positive.map(|k| walk_block(row, &blocks[k], p, f64::INFINITY))
}

/// The first id of the block whose running weight (relative to the block maximum)
/// exceeds `rem`, else the block's last positive-weight id.
///
/// The weights are computed first, on the pass's instruction set (vectorised), then
/// summed left to right in `f64`.
fn walk_block(row: &[f32], blk: &BlockRec, p: &RowParams<'_>, rem: f64) -> usize {
    let mut ws = [0f32; BLOCK];
    let ws = &mut ws[..blk.len];
    let xb = &row[blk.start..blk.start + blk.len];
    super::simd::weights(p.level, xb, blk.m, p.inv_tau, p.mode.temper, ws);
    let mut c = 0.0f64;
    let mut last = blk.start;
    for (j, &w) in ws.iter().enumerate() {
        if w > 0.0 {
            last = blk.start + j;
            c += w as f64;
            if c > rem {
                return last;
            }
        }
    }
    last
}

/// The error for the first NaN or `+∞` of a row (the reference's error, same index).
#[cold]
fn first_non_finite(row: &[f32], at: RowAt) -> Error {
    match row.iter().position(|x| x.is_nan() || *x == f32::INFINITY) {
        Some(k) => Error::NonFinite {
            arg: "logits",
            index: at.base + k,
            value: row[k] as f64,
        },
        None => Error::Numerical {
            what: "CpuBackend::summarize",
            reason: format!("row ({}, {}) summed to a non-finite value", at.b, at.i),
        },
    }
}
