//! The log-space fallback of the Markov oracle's forward–backward (parent module docs,
//! *Numerics*): `ln α̂`, `ln β̂` and log-sum-exp transition sums, used when the linear fast
//! path's precision checks fail. `O(L·V^{k+1})` exponentials; its only `ZeroProbability` is
//! `p_t(x_t) = 0` exactly.

use ndarray::ArrayViewMut2;

use super::*;

/// The log-space forward variables of the fallback: `ln α̂` (`[n, V^k]`, each row
/// log-normalised) and `ln c` (`[n]`).
pub(super) struct LogForward {
    pub(super) alpha: Vec<f64>,
    pub(super) c: Vec<f64>,
}

impl MarkovChainOracle {
    /// The prediction step of the log-space fallback (module docs, *Numerics*),
    /// `out(h') = ln Σ_{h → h'} exp(la(h)) P(h, last(h'))`, over the `V` predecessors
    /// `h = a·r + ⌊h'/V⌋` of each `h'` (`k ≥ 1`); `buf` has length `V`.
    pub(super) fn log_predict(&self, lt: &[f64], la: &[f64], out: &mut [f64], buf: &mut [f64]) {
        let v = self.vocab;
        let r = self.shift();
        for (hn, o) in out.iter_mut().enumerate() {
            let (b, u) = (hn / v, hn % v);
            for (a, t) in buf.iter_mut().enumerate() {
                let h = a * r + b;
                *t = la[h] + lt[h * v + u];
            }
            *o = log_sum_exp(buf);
        }
    }

    /// Forward pass in log space (`k ≥ 1`) over log emissions `le` (`[L, V]`): the
    /// normalised `ln α̂_m` (`LSE_h ln α̂_m(h) = 0`) for the hidden positions `m = 0..n`,
    /// `n = L − k + 1` (token `i = k − 1 + m`), and the log scales `ln c_m`. `None` when
    /// some `c_m = 0`, i.e. `p_t(x_t) = 0`.
    pub(super) fn log_forward(&self, lt: &[f64], le: &[f64]) -> Option<LogForward> {
        let (v, k, l) = (self.vocab, self.order, self.len);
        debug_assert!(k >= 1);
        let s = self.initial.len();
        let n = l - k + 1;
        let mut alpha = vec![0.0; n * s];
        let mut c = vec![0.0; n];
        let mut buf = vec![0.0; v];
        self.log_initial_weights(le, None, &mut alpha[..s]);
        for m in 0..n {
            if m > 0 {
                let (prev, cur) = alpha.split_at_mut(m * s);
                let cur = &mut cur[..s];
                self.log_predict(lt, &prev[(m - 1) * s..], cur, &mut buf);
                let i = k - 1 + m;
                let ei = &le[i * v..(i + 1) * v];
                for (h, a) in cur.iter_mut().enumerate() {
                    *a += ei[h % v];
                }
            }
            let cur = &mut alpha[m * s..(m + 1) * s];
            let total = log_sum_exp(cur);
            if !total.is_finite() {
                return None;
            }
            cur.iter_mut().for_each(|a| *a -= total);
            c[m] = total;
        }
        Some(LogForward { alpha, c })
    }

    /// Backward pass in log space: calls `visit(m, ln β̂_m)` for `m = n − 1, …, 0`, with
    /// `ln β̂_{m−1}(h) = ln Σ_u P(h, u) e_i(u) β̂_m((h mod r) V + u) − ln c_m`.
    pub(super) fn log_backward(
        &self,
        lt: &[f64],
        le: &[f64],
        fw: &LogForward,
        mut visit: impl FnMut(usize, &[f64]),
    ) {
        let (v, k) = (self.vocab, self.order);
        let s = self.initial.len();
        let r = self.shift();
        let mut beta = vec![0.0; s];
        let mut beta_prev = vec![0.0; s];
        let mut buf = vec![0.0; v];
        for m in (0..fw.c.len()).rev() {
            visit(m, &beta);
            if m > 0 {
                let i = k - 1 + m;
                let ei = &le[i * v..(i + 1) * v];
                let c = fw.c[m];
                for (h, bp) in beta_prev.iter_mut().enumerate() {
                    let base = (h % r) * v;
                    for (u, t) in buf.iter_mut().enumerate() {
                        *t = lt[h * v + u] + ei[u] + beta[base + u];
                    }
                    *bp = log_sum_exp(&buf) - c;
                }
                std::mem::swap(&mut beta, &mut beta_prev);
            }
        }
    }

    /// The log-space fallback of [`smooth`](Self::smooth) (module docs, *Numerics*), for
    /// the rare `x_t` whose past and future disagree beyond f64's range: token posteriors
    /// (`loo = false`) or leave-one-out posteriors (`loo = true`) into `out`, each row
    /// normalised, from `ln α̂`, `ln β̂` with every transition sum a log-sum-exp
    /// (`O(L V^{k+1})` exponentials). `false` when `p_t(x_t) = 0`.
    ///
    /// Leave-one-out (module docs' notation): for `i ≥ k` the emission at `i` is left out of
    /// `γ`, i.e. `p(x_0^i = v, x_t^{−i}) ∝ Σ_{last(h) = v} [Σ_{h' → h} α̂_{i−1}(h') P(h', v)]
    /// β̂_i(h)`; for `i < k` the initial weights omit `e_i`.
    ///
    /// Every row is a sum of terms known by their logarithms `ℓ(h)`; it is formed as
    /// `Σ exp(ℓ(h) − max ℓ)` and then normalised, so neither the smoothed marginals nor the
    /// leave-one-out rows (whose scale `1 / p(x_t^i | x_t^{−i})` may be far outside f64's
    /// range) underflow.
    pub(super) fn log_smooth(
        &self,
        le: &[f64],
        loo: bool,
        out: &mut ArrayViewMut2<'_, f64>,
    ) -> bool {
        let (v, k) = (self.vocab, self.order);
        debug_assert!(k >= 1);
        out.fill(0.0);
        let lt: Vec<f64> = self.transition.iter().map(|p| p.ln()).collect();
        let Some(fw) = self.log_forward(&lt, le) else {
            return false;
        };
        let s = self.initial.len();
        let mut lw = vec![0.0; s];
        let mut w = vec![0.0; s];
        let mut buf = vec![0.0; v];
        self.log_backward(&lt, le, &fw, |m, lb| {
            let la = &fw.alpha[m * s..(m + 1) * s];
            if m == 0 {
                if loo {
                    for j in 0..k {
                        self.log_initial_weights(le, Some(j), &mut lw);
                        lw.iter_mut().zip(lb).for_each(|(x, &b)| *x += b);
                        exp_shifted(&lw, &mut w);
                        let place = v.pow((k - 1 - j) as u32);
                        for (h, &g) in w.iter().enumerate() {
                            out[[j, (h / place) % v]] += g;
                        }
                    }
                } else {
                    lw.iter_mut()
                        .zip(la.iter().zip(lb))
                        .for_each(|(x, (&a, &b))| *x = a + b);
                    exp_shifted(&lw, &mut w);
                    for (h, &g) in w.iter().enumerate() {
                        if g != 0.0 {
                            self.scatter_digits(h, g, out);
                        }
                    }
                }
            } else {
                let i = k - 1 + m;
                if loo {
                    self.log_predict(&lt, &fw.alpha[(m - 1) * s..m * s], &mut lw, &mut buf);
                    lw.iter_mut().zip(lb).for_each(|(x, &b)| *x += b);
                } else {
                    lw.iter_mut()
                        .zip(la.iter().zip(lb))
                        .for_each(|(x, (&a, &b))| *x = a + b);
                }
                exp_shifted(&lw, &mut w);
                for (h, &g) in w.iter().enumerate() {
                    out[[i, h % v]] += g;
                }
            }
        });
        normalise_rows(out)
    }
}
