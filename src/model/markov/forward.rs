//! The linear-space fast path of the Markov oracle's forward–backward (parent module docs,
//! *Numerics*): the scaled prediction, filtering and smoothing recursions over the `V^k`
//! contexts, and the in-place emission step that keeps every feasible product from
//! underflowing. When one of its precision checks fails, the callers redo the work with
//! the log-space fallback of [`super::logspace`].

use ndarray::ArrayViewMut2;

use super::*;

impl MarkovChainOracle {
    /// `r = V^{k−1}` (1 for `k = 0`): the successor of context `h` on token `u` is
    /// `(h mod r)·V + u`, and the predecessors of `h'` are `a·r + ⌊h'/V⌋`, `a ∈ 0..V`.
    pub(super) fn shift(&self) -> usize {
        (self.initial.len() / self.vocab).max(1)
    }

    /// Add `g` to `out[j, digit_j(h)]` for every token `j < k` of the initial `k`-gram `h`.
    pub(super) fn scatter_digits(&self, h: usize, g: f64, out: &mut ArrayViewMut2<'_, f64>) {
        let v = self.vocab;
        let mut rem = h;
        for j in (0..self.order).rev() {
            out[[j, rem % v]] += g;
            rem /= v;
        }
    }

    /// `ln α̃_{k−1}(h) = ln π(h) + Σ_{j<k, j ≠ skip} ln e_j(digit_j(h))` into `out`
    /// (length `V^k`), from log emissions `le` (`[L, V]`). Run once per call: `O(k V^k)`.
    pub(super) fn log_initial_weights(&self, le: &[f64], skip: Option<usize>, out: &mut [f64]) {
        let (v, k) = (self.vocab, self.order);
        for (h, a) in out.iter_mut().enumerate() {
            let mut w = self.initial[h].ln();
            let mut rem = h;
            for j in (0..k).rev() {
                if w == f64::NEG_INFINITY {
                    break;
                }
                if skip != Some(j) {
                    w += le[j * v + rem % v];
                }
                rem /= v;
            }
            *a = w;
        }
    }

    /// The linear prediction step `out(h') = Σ_{h → h'} alpha(h) P(h, last(h'))`
    /// (`O(V^{k+1})`, no transcendental functions).
    pub(super) fn predict(&self, alpha: &[f64], out: &mut [f64]) {
        let v = self.vocab;
        let r = self.shift();
        out.iter_mut().for_each(|x| *x = 0.0);
        for (h, (&a, row)) in alpha
            .iter()
            .zip(self.transition.chunks_exact(v))
            .enumerate()
        {
            if a == 0.0 {
                continue;
            }
            let base = (h % r) * v;
            out[base..base + v]
                .iter_mut()
                .zip(row)
                .for_each(|(d, &q)| *d += a * q);
        }
    }

    /// Forward pass (`k ≥ 1`) over log emissions `le` (`[L, V]`): the filtered laws
    /// `α̂_m` (each summing to 1) for the hidden positions `m = 0..n`, `n = L − k + 1`
    /// (token `i = k − 1 + m`), and the log scales `ln c_m`: `α̂_m ∝ s_m ⊙ e_i` with the
    /// linear prediction `s_m = predict(α̂_{m−1})` and the emission applied by
    /// [`emit_in_place`]. `None` when some `c_m` is 0 or a precision check of the module
    /// docs' *Numerics* fails; callers then redo the work with the log-space fallback.
    pub(super) fn forward(&self, le: &[f64]) -> Option<Forward> {
        let (v, k, l) = (self.vocab, self.order, self.len);
        debug_assert!(k >= 1);
        let s = self.initial.len();
        let n = l - k + 1;
        let mut alpha = vec![0.0; n * s];
        let mut c = vec![0.0; n];
        let mut lw = vec![0.0; s];
        let mut scratch = vec![0.0; v];
        self.log_initial_weights(le, None, &mut lw);
        let mut shift = exp_shifted(&lw, &mut alpha[..s]);
        for m in 0..n {
            if m > 0 {
                let (prev, cur) = alpha.split_at_mut(m * s);
                let cur = &mut cur[..s];
                let prev = &prev[(m - 1) * s..];
                self.predict(prev, cur);
                if !covers(prev, cur) {
                    return None;
                }
                let i = k - 1 + m;
                let safe;
                (shift, safe) = emit_in_place(cur, &le[i * v..(i + 1) * v], &mut scratch);
                if !safe {
                    return None;
                }
            }
            let cur = &mut alpha[m * s..(m + 1) * s];
            let total: f64 = cur.iter().sum();
            if shift == f64::NEG_INFINITY || total <= 0.0 || !total.is_finite() {
                return None;
            }
            let inv = 1.0 / total;
            cur.iter_mut().for_each(|a| *a *= inv);
            c[m] = shift + total.ln();
        }
        Some(Forward { alpha, c })
    }

    /// Backward pass: calls `visit(m, β̂_m, s_m)` for `m = n − 1, …, 0`, with `β̂_m`
    /// linear, proportional to `p(x_t^{>i} | h_i = h)` (`β̂_{n−1} = 1`) and scaled so its
    /// maximum is 1,
    ///
    /// ```text
    /// β̂_{m−1}(h) ∝ Σ_u P(h, u) [e_i(u) β̂_m((h mod r) V + u)],
    /// ```
    ///
    /// the bracket formed by [`emit_in_place`]. With `loo`, `s_m` is the one-step
    /// prediction (`s_0 = π`, `s_m = predict(α̂_{m−1})`, one more `O(V^{k+1})` pass per
    /// step); otherwise `s_m` is empty. `β̂_m` is kept only on the contexts of positive
    /// prior probability ([`prior_support`]), so an unreachable context (whose `β` may be
    /// far larger) never sets the scale. `false` if a precision check (module docs,
    /// *Numerics*) fails.
    pub(super) fn backward(
        &self,
        le: &[f64],
        fw: &Forward,
        loo: bool,
        mut visit: impl FnMut(usize, &[f64], &[f64]),
    ) -> bool {
        let (v, k) = (self.vocab, self.order);
        let s = self.initial.len();
        let n = fw.c.len();
        let r = self.shift();
        let mut beta = vec![1.0; s];
        let mut emitted = vec![0.0; s];
        let mut pred = Vec::new();
        let mut scratch = vec![0.0; v];
        let prediction = |m: usize, out: &mut Vec<f64>| {
            out.resize(s, 0.0);
            if m == 0 {
                out.copy_from_slice(&self.initial);
            } else {
                self.predict(&fw.alpha[(m - 1) * s..m * s], out);
            }
        };
        if loo {
            prediction(n - 1, &mut pred);
        }
        for m in (0..n).rev() {
            visit(m, &beta, &pred);
            if m > 0 {
                let i = k - 1 + m;
                emitted.copy_from_slice(&beta);
                if !emit_in_place(&mut emitted, &le[i * v..(i + 1) * v], &mut scratch).1 {
                    return false;
                }
                if loo {
                    prediction(m - 1, &mut pred);
                }
                let reach = &self.support[(m - 1) * s..m * s];
                let mut max = 0.0f64;
                for (h, (b, row)) in beta
                    .iter_mut()
                    .zip(self.transition.chunks_exact(v))
                    .enumerate()
                {
                    *b = if reach[h] {
                        let base = (h % r) * v;
                        row.iter()
                            .zip(&emitted[base..base + v])
                            .map(|(&q, &x)| q * x)
                            .sum()
                    } else {
                        0.0
                    };
                    max = max.max(*b);
                }
                // `emitted` has maximum 1 and rows of `P` sum to 1: a maximum below the
                // floor means the lost (underflowed) terms might not be negligible.
                if max < PRODUCT_FLOOR || !max.is_finite() {
                    return false;
                }
                let inv = 1.0 / max;
                beta.iter_mut().for_each(|b| *b *= inv);
            }
        }
        true
    }

    /// Token posteriors (`loo = false`) or leave-one-out posteriors (`loo = true`) into
    /// `out`, each row normalised. `false` when `p_t(x_t) = 0`.
    ///
    /// Position `i = k − 1 + m ≥ k` gets `Σ_{last(h) = v} α̂_m(h) β̂_m(h)`, and its
    /// leave-one-out row the same with the prediction `s_m` (the emission at `i` left out):
    /// `p(x_0^i = v, x_t^{−i}) ∝ Σ_{last(h) = v} [Σ_{h' → h} α̂_{i−1}(h') P(h', v)]
    /// β̂_i(h)`. The first `k` tokens come from `α̃_{k−1}(h) β̂_0(h)`, with `e_j` left out of
    /// `α̃` for the leave-one-out row `j < k` (formed in log space, once per call). Each
    /// product of two linear factors is formed by [`weigh`], so a conflict between the
    /// past and the future cannot underflow a feasible row.
    pub(super) fn smooth(&self, le: &[f64], loo: bool, out: &mut ArrayViewMut2<'_, f64>) -> bool {
        let (v, k) = (self.vocab, self.order);
        out.fill(0.0);
        if k == 0 {
            let mut lw = vec![0.0; v];
            let mut w = vec![0.0; v];
            for (i, lei) in le.chunks_exact(v).enumerate() {
                // ln π_u + ln e_u, shifted by the maximum: a tiny prior mass times a tiny
                // emission must not underflow to an impossible observation.
                lw.iter_mut()
                    .zip(self.transition[..v].iter().zip(lei))
                    .for_each(|(w, (a, b))| *w = a.ln() + b);
                if exp_shifted(&lw, &mut w) == f64::NEG_INFINITY {
                    return false;
                }
                if loo {
                    w.copy_from_slice(&self.transition[..v]);
                }
                out.row_mut(i).iter_mut().zip(&w).for_each(|(o, &p)| *o = p);
            }
            return normalise_rows(out);
        }
        let Some(fw) = self.forward(le) else {
            return self.log_smooth(le, loo, out);
        };
        let s = self.initial.len();
        let mut lw = vec![0.0; s];
        let mut w = vec![0.0; s];
        let mut accurate = true;
        let complete = self.backward(le, &fw, loo, |m, beta, pred| {
            if m == 0 {
                let skips: Vec<Option<usize>> = if loo {
                    (0..k).map(Some).collect()
                } else {
                    vec![None]
                };
                for skip in skips {
                    self.log_initial_weights(le, skip, &mut lw);
                    lw.iter_mut().zip(beta).for_each(|(x, &b)| *x += b.ln());
                    exp_shifted(&lw, &mut w);
                    match skip {
                        Some(j) => {
                            let place = v.pow((k - 1 - j) as u32);
                            for (h, &g) in w.iter().enumerate() {
                                out[[j, (h / place) % v]] += g;
                            }
                        }
                        None => {
                            for (h, &g) in w.iter().enumerate() {
                                if g != 0.0 {
                                    self.scatter_digits(h, g, out);
                                }
                            }
                        }
                    }
                }
            } else {
                let forward = if loo {
                    pred
                } else {
                    &fw.alpha[m * s..(m + 1) * s]
                };
                accurate &= weigh(forward, beta, &mut w);
                let mut row = out.row_mut(k - 1 + m);
                for chunk in w.chunks_exact(v) {
                    row.iter_mut().zip(chunk).for_each(|(o, &g)| *o += g);
                }
            }
        });
        if complete && accurate && normalise_rows(out) {
            return true;
        }
        self.log_smooth(le, loo, out)
    }
}

/// `x(h) ← x(h) e(last(h)) / exp(shift)` in place for `x ≥ 0` of length a multiple of
/// `V = le.len()` (so `last(h) = h mod V`), with the emission known by its logarithm
/// `le = ln e` and `shift = max_h ln(x(h) e(last(h)))`, returned (`-inf`, and `x` all 0,
/// when every product is 0). The largest result is 1 up to rounding, and no feasible
/// product underflows because `e` is tiny: the emission is applied per token as the
/// factor `f(u) = exp(le(u) − shift)`, finite since `le(u) − shift ≤ −ln max_{last(h)=u}
/// x(h)`; a token whose largest `x` is subnormal falls back to `exp(ln x + le − shift)`
/// per state. Cost `O(len)` multiplications plus `O(V)` logarithms and exponentials.
/// `scratch` has length `V`.
pub(super) fn emit_in_place(x: &mut [f64], le: &[f64], scratch: &mut [f64]) -> (f64, bool) {
    let v = le.len();
    debug_assert_eq!(x.len() % v, 0);
    let xmax = scratch;
    xmax.iter_mut().for_each(|m| *m = 0.0);
    for chunk in x.chunks_exact(v) {
        xmax.iter_mut()
            .zip(chunk)
            .for_each(|(m, &xh)| *m = m.max(xh));
    }
    let shift = xmax
        .iter()
        .zip(le)
        .filter(|&(&m, &l)| m > 0.0 && l > f64::NEG_INFINITY)
        .map(|(&m, &l)| m.ln() + l)
        .fold(f64::NEG_INFINITY, f64::max);
    if shift == f64::NEG_INFINITY {
        x.iter_mut().for_each(|xh| *xh = 0.0);
        return (shift, false);
    }
    // A state lost to underflow in `x` (below `2^{−1022} max x`) times the largest
    // emission stays negligible against `exp(shift)` unless the emission moved the mass
    // onto states more than `2^{60}` below the maximum of `x`.
    let x_all = xmax.iter().fold(0.0f64, |m, &x| m.max(x));
    let le_max = le.iter().fold(f64::NEG_INFINITY, |m, &l| m.max(l));
    let safe = shift >= x_all.ln() + le_max + PRODUCT_FLOOR.ln();
    // Per-token factor; -1 marks a token handled per state.
    let factor = xmax;
    for (f, &l) in factor.iter_mut().zip(le) {
        *f = if *f == 0.0 || l == f64::NEG_INFINITY {
            0.0
        } else if *f >= f64::MIN_POSITIVE {
            (l - shift).exp()
        } else {
            -1.0
        };
    }
    for chunk in x.chunks_exact_mut(v) {
        for ((xh, &f), &l) in chunk.iter_mut().zip(factor.iter()).zip(le) {
            *xh = if f >= 0.0 {
                *xh * f
            } else if *xh > 0.0 {
                (xh.ln() + l - shift).exp()
            } else {
                0.0
            };
        }
    }
    (shift, safe)
}

/// Whether the linear prediction `next` from `prev` kept its precision: its maximum is at
/// least `2^{−60} max prev`, so the contributions of states of `prev` lost to underflow are
/// negligible.
pub(super) fn covers(prev: &[f64], next: &[f64]) -> bool {
    let pmax = prev.iter().fold(0.0f64, |m, &x| m.max(x));
    let nmax = next.iter().fold(0.0f64, |m, &x| m.max(x));
    nmax > 0.0 && nmax >= pmax * PRODUCT_FLOOR
}

/// `out(h) = a(h) b(h)` for non-negative `a`, `b`; `true` when the largest product is at
/// least `2^{−60} max a · max b`. Then every product lost to underflow, or to the
/// underflow of one factor relative to its maximum, is below f64's range relative to the
/// largest and the row is accurate; `false` flags the past and the future disagreeing
/// beyond f64's range, for the log-space fallback.
pub(super) fn weigh(a: &[f64], b: &[f64], out: &mut [f64]) -> bool {
    let amax = a.iter().fold(0.0f64, |m, &x| m.max(x));
    let bmax = b.iter().fold(0.0f64, |m, &x| m.max(x));
    let mut max = 0.0f64;
    for (o, (&x, &y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x * y;
        max = max.max(*o);
    }
    max > 0.0 && max >= amax * bmax * PRODUCT_FLOOR
}

/// `2^{−60}`: below this fraction of `max a · max b`, [`weigh`] flags a product row.
const PRODUCT_FLOOR: f64 = 8.673_617_379_884_035e-19;

/// Divide every row by its sum (each row holds positive weights whose largest is 1 up to
/// the scatter into `V` bins); `false` if some row has no positive mass.
pub(super) fn normalise_rows(out: &mut ArrayViewMut2<'_, f64>) -> bool {
    for mut row in out.rows_mut() {
        let total: f64 = row.sum();
        if total <= 0.0 || !total.is_finite() {
            return false;
        }
        row.mapv_inplace(|x| x / total);
    }
    true
}

/// The forward variables: the filtered laws `α̂_m` (`[n, V^k]`, each row summing to 1) and
/// the log scales `ln c_m` (`[n]`).
pub(super) struct Forward {
    pub(super) alpha: Vec<f64>,
    pub(super) c: Vec<f64>,
}
