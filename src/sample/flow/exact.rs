//! Exact laws of the flow solvers on enumerable spaces (DESIGN §4, "exact oracles"): the
//! distribution of the whole sequence after every step, propagated without sampling.
//!
//! Given `X_s = x` every position moves independently (the solver draws `X_1^i` from the
//! per-position posterior and jumps per position), so one step maps a law `P` over the
//! `V^L` sequences to
//!
//! ```text
//! P'(y) = Σ_x P(x) Π_i K_i(y_i | x),
//! ```
//!
//! `K_i` the per-token step law ([`MixturePath::step_law`](crate::kernel::path::MixturePath::step_law),
//! [`MetricPath::step_law`](crate::kernel::path::MetricPath::step_law)) at the exact
//! posterior `p_{1|s}(· | x)` of an [`ExactPosterior`]. Sequences are indexed
//! lexicographically (`Σ_i x_i V^{L−1−i}`), as
//! [`EnumerationOracle`](crate::model::enumeration::EnumerationOracle). Cost
//! `O(steps · V^{2L})`; `V^L ≤ 4096`.

use ndarray::Array2;

use crate::error::{Error, Result};
use crate::kernel::{Channel, NoiseProcess};
use crate::model::oracle::ExactPosterior;
use crate::sample::flow::{MetricSolver, MixtureSolver};
use crate::schedule::Schedule;
use crate::validate;

/// Largest `V^L` the exact propagation accepts.
pub const MAX_EXACT_STATES: usize = 4096;

fn states(v: usize, l: usize) -> Result<usize> {
    u32::try_from(l)
        .ok()
        .and_then(|l| v.checked_pow(l))
        .filter(|&n| n <= MAX_EXACT_STATES)
        .ok_or_else(|| {
            Error::invalid(
                "oracle",
                format!("V^L = {v}^{l} exceeds the exact-propagation cap {MAX_EXACT_STATES}"),
            )
        })
}

fn decode(mut idx: usize, v: usize, x: &mut [u32]) {
    for xi in x.iter_mut().rev() {
        *xi = (idx % v) as u32;
        idx /= v;
    }
}

/// Propagate `initial` through the grid; `channel(s)` gives the posterior channel at flow
/// time `s`, `token_law(k, z, p1, out)` the per-token law of step `k`.
fn propagate<'p, C, K>(
    oracle: &dyn ExactPosterior,
    vocab: usize,
    initial: &[f64],
    grid: &[f64],
    channel: C,
    mut token_law: K,
) -> Result<Vec<Vec<f64>>>
where
    C: Fn(f64) -> Result<Box<dyn Channel + 'p>>,
    K: FnMut(usize, u32, &[f64], &mut [f64]) -> Result<()>,
{
    if oracle.vocab_size() != vocab {
        return Err(Error::shape(
            "oracle",
            format!("vocab_size {vocab} (the path's)"),
            format!("vocab_size {}", oracle.vocab_size()),
        ));
    }
    let l = oracle.seq_len();
    let n = states(vocab, l)?;
    validate::len("initial", initial.len(), n)?;
    validate::distribution("initial", initial, validate::SIMPLEX_TOL)?;
    let mut laws = vec![initial.to_vec()];
    let mut x = vec![0u32; l];
    let mut post = Array2::<f64>::zeros((l, vocab));
    let mut tok = vec![vec![0.0; vocab]; l];
    let mut buf = Vec::with_capacity(n);
    let mut tmp = Vec::with_capacity(n);
    for (k, &s) in grid.iter().enumerate().take(grid.len() - 1) {
        let ch = channel(s)?;
        let cur = laws.last().cloned().unwrap_or_default();
        let mut next = vec![0.0; n];
        for (idx, &p) in cur.iter().enumerate() {
            if p == 0.0 {
                continue;
            }
            decode(idx, vocab, &mut x);
            match oracle.posterior_x0(&x, ch.as_ref(), post.view_mut()) {
                Ok(()) => {}
                Err(e) => return Err(e),
            }
            for (i, law) in tok.iter_mut().enumerate() {
                let row = post.row(i);
                token_law(k, x[i], row.as_slice().unwrap_or(&row.to_vec()), law)?;
            }
            buf.clear();
            buf.push(p);
            for law in &tok {
                tmp.clear();
                for &b in &buf {
                    tmp.extend(law.iter().map(|q| b * q));
                }
                std::mem::swap(&mut buf, &mut tmp);
            }
            next.iter_mut().zip(&buf).for_each(|(o, b)| *o += b);
        }
        laws.push(next);
    }
    Ok(laws)
}

/// The exact law of [`MixtureSolver`] over the `V^L` sequences after each step
/// (`grid.len()` laws, the first `initial`), with `p_{1|s}` the exact posterior of `oracle`
/// under the path ([`MixturePath::noise_process`](crate::kernel::path::MixturePath::noise_process)
/// at crate time `1 − s`). Honors carry-over, mask exclusion, `div_free`, the jump rule and
/// the final step exactly as the sampler does.
///
/// # Errors
/// `V^L > 4096`, an oracle with another `V`, `initial` of length `≠ V^L` or not a
/// distribution, a reachable state of zero probability under the path (e.g. an initial law
/// off the source's support), and the path's step
/// errors.
pub fn mixture_solver_laws<S: Schedule + Clone + 'static>(
    solver: &MixtureSolver<S>,
    oracle: &dyn ExactPosterior,
    initial: &[f64],
) -> Result<Vec<Vec<f64>>> {
    let path = solver.path();
    let v = path.vocab_size();
    let process = path.noise_process()?;
    let grid = solver.grid();
    let last = solver.num_steps() - 1;
    let mask = path.mask_id();
    let mut p1 = vec![0.0; v];
    propagate(
        oracle,
        v,
        initial,
        grid,
        |s| process.channel(1.0 - s),
        |k, z, post, out| {
            if solver.carry_over() && Some(z) != mask {
                out.iter_mut().for_each(|o| *o = 0.0);
                out[z as usize] = 1.0;
                return Ok(());
            }
            p1.copy_from_slice(post);
            if let (true, Some(m)) = (solver.exclude_mask(), mask) {
                p1[m as usize] = 0.0;
                let z1: f64 = p1.iter().sum();
                if z1 <= 0.0 {
                    return Err(Error::ZeroProbability {
                        what: "posterior without the mask".into(),
                    });
                }
                p1.iter_mut().for_each(|q| *q /= z1);
            }
            if k == last {
                out.copy_from_slice(&p1);
                return Ok(());
            }
            path.step_law(
                grid[k],
                grid[k + 1],
                z,
                &p1,
                solver.div_free_at(grid[k])?,
                solver.rule(),
                out,
            )
        },
    )
}

/// The exact law of [`MetricSolver`] after each step, as [`mixture_solver_laws`], with
/// the posterior of `oracle` under the metric path's channel.
///
/// # Errors
/// As [`mixture_solver_laws`].
pub fn metric_solver_laws(
    solver: &MetricSolver,
    oracle: &dyn ExactPosterior,
    initial: &[f64],
) -> Result<Vec<Vec<f64>>> {
    let path = solver.path();
    let grid = solver.grid();
    let last = solver.num_steps() - 1;
    propagate(
        oracle,
        path.vocab_size(),
        initial,
        grid,
        |s| path.channel(1.0 - s),
        |k, z, post, out| {
            if k == last {
                out.copy_from_slice(post);
                return Ok(());
            }
            path.corrector_step_law(
                grid[k],
                grid[k + 1],
                z,
                post,
                solver.corrector().at(grid[k])?,
                solver.rule(),
                out,
            )
        },
    )
}
