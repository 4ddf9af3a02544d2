//! Shared fixtures of the `train_*` tests: exact oracles with the mask at a non-last index,
//! exact NELBOs by enumeration over masks, and summary statistics.
#![allow(dead_code, clippy::needless_range_loop)]

use discrete_diffusion::kernel::mixture::MixtureProcess;
use discrete_diffusion::model::markov::MarkovChainOracle;
use discrete_diffusion::model::oracle::{ExactPosterior, OracleDenoiser};
use discrete_diffusion::schedule::MdlmCosine;
use ndarray::Array2;

/// States `0..4`; the mask is state 1; data tokens are {0, 2, 3}.
pub const V: usize = 4;
pub const MASK: u32 = 1;
pub const DATA_IDS: [u32; 3] = [0, 2, 3];

/// An order-1 Markov chain over the 3 data tokens (perturbed by `eps`), embedded in `V`.
pub fn chain(len: usize, eps: f64) -> MarkovChainOracle {
    let initial = vec![0.5 - eps, 0.3, 0.2 + eps];
    let transition = vec![
        0.6 - eps,
        0.3,
        0.1 + eps, //
        0.2,
        0.5 + eps,
        0.3 - eps, //
        0.25,
        0.25 + eps,
        0.5 - eps,
    ];
    MarkovChainOracle::new(3, 1, len, initial, transition)
        .unwrap()
        .embed(&DATA_IDS, V)
        .unwrap()
}

pub fn mask_pi() -> Vec<f64> {
    let mut pi = vec![0.0; V];
    pi[MASK as usize] = 1.0;
    pi
}

/// The exact denoiser of `chain(len, eps)` under absorbing masking with `α = cos(πt/2)`.
pub fn oracle_denoiser(len: usize, eps: f64) -> OracleDenoiser<MarkovChainOracle, MixtureProcess> {
    let process = MixtureProcess::from_schedule(mask_pi(), MdlmCosine::new(0.0).unwrap()).unwrap();
    OracleDenoiser::new(chain(len, eps), process).unwrap()
}

/// `S(M) = Σ_{i∈M} −ln p(x0^i | x0 with M masked)` for every subset `M` (bit `i` of the
/// index = position `i` masked), from the exact f64 posterior; positions `< prompt_len` are
/// never in `M` (their entries are `NaN`).
pub fn subset_losses(oracle: &MarkovChainOracle, x0: &[u32], prompt_len: usize) -> Vec<f64> {
    let l = x0.len();
    let process = MixtureProcess::new(mask_pi(), Box::new(|_| Ok(0.5))).unwrap();
    use discrete_diffusion::kernel::NoiseProcess;
    let ch = process.channel(0.5).unwrap();
    let mut out = vec![f64::NAN; 1 << l];
    let mut post = Array2::<f64>::zeros((l, V));
    for m in 0..(1usize << l) {
        if m & ((1 << prompt_len) - 1) != 0 {
            continue;
        }
        let xt: Vec<u32> = (0..l)
            .map(|i| if m >> i & 1 == 1 { MASK } else { x0[i] })
            .collect();
        oracle
            .posterior_x0(&xt, ch.as_ref(), post.view_mut())
            .unwrap();
        out[m] = (0..l)
            .filter(|&i| m >> i & 1 == 1)
            .map(|i| -post[[i, x0[i] as usize]].ln())
            .sum();
    }
    out
}

/// Closed form `Σ_{m=1}^{A} (1/m) mean_{|M|=m} S(M)` over subsets of the answer.
pub fn nelbo_closed_form(s: &[f64], l: usize, prompt_len: usize) -> f64 {
    let a = l - prompt_len;
    let mut sum = vec![0.0; a + 1];
    let mut cnt = vec![0usize; a + 1];
    for (m, &v) in s.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        let k = m.count_ones() as usize;
        sum[k] += v;
        cnt[k] += 1;
    }
    (1..=a).map(|k| sum[k] / cnt[k] as f64 / k as f64).sum()
}

/// Gauss–Legendre nodes and weights on `[0, 1]` (Newton on `P_n`).
pub fn gauss_legendre(n: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(n);
    for i in 1..=n {
        let mut x = (std::f64::consts::PI * (i as f64 - 0.25) / (n as f64 + 0.5)).cos();
        let mut dp = 0.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=n {
                let p2 = ((2 * k - 1) as f64 * x * p1 - (k - 1) as f64 * p0) / k as f64;
                p0 = p1;
                p1 = p2;
            }
            dp = n as f64 * (x * p1 - p0) / (x * x - 1.0);
            let dx = p1 / dp;
            x -= dx;
            if dx.abs() < 1e-16 {
                break;
            }
        }
        let w = 2.0 / ((1.0 - x * x) * dp * dp);
        out.push((0.5 * (x + 1.0), 0.5 * w));
    }
    out
}

pub fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

pub fn var(x: &[f64]) -> f64 {
    let m = mean(x);
    x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() as f64 - 1.0)
}

/// Exact moments of the per-draw value `f = w(t)·S(M)` given `t` for `α = cos(πt/2)`:
/// `(g, q) = (E[f | t], E[f² | t])`, `M` a Bernoulli(`1 − α`) subset of the answer.
pub fn cond_moments(s: &[f64], l: usize, prompt_len: usize, t: f64) -> (f64, f64) {
    use std::f64::consts::PI;
    let a = (l - prompt_len) as i32;
    let al = (PI * t / 2.0).cos();
    let mc = 2.0 * (PI * t / 4.0).sin().powi(2); // 1 − α without cancellation
    let w = (PI / 2.0) * (PI * t / 2.0).sin() / mc;
    let (mut g, mut q) = (0.0, 0.0);
    for (m, &v) in s.iter().enumerate() {
        if v.is_nan() || m == 0 {
            continue;
        }
        let k = m.count_ones() as i32;
        let p = mc.powi(k) * al.powi(a - k);
        g += p * v;
        q += p * v * v;
    }
    (w * g, w * w * q)
}

/// `∫_lo^hi f` by 48-point Gauss–Legendre.
pub fn integrate(lo: f64, hi: f64, f: impl Fn(f64) -> f64) -> f64 {
    gauss_legendre(48)
        .iter()
        .map(|&(x, w)| w * (hi - lo) * f(lo + (hi - lo) * x))
        .sum()
}

/// Exact variances of the `n`-draw time estimators: (i.i.d. uniform, MDLM antithetic,
/// shared-offset stratified), with `α = cos(πt/2)` and the ELBO weight.
pub fn exact_time_variances(s: &[f64], l: usize, prompt_len: usize, n: usize) -> (f64, f64, f64) {
    let nf = n as f64;
    let g = |t: f64| cond_moments(s, l, prompt_len, t).0;
    let q = |t: f64| cond_moments(s, l, prompt_len, t).1;
    let (mut mu, mut qq, mut anti) = (0.0, 0.0, 0.0);
    for j in 0..n {
        let (lo, hi) = (j as f64 / nf, (j + 1) as f64 / nf);
        let gj = integrate(lo, hi, g);
        let qj = integrate(lo, hi, q);
        mu += gj;
        qq += qj;
        anti += nf * qj - (nf * gj).powi(2);
    }
    let iid = (qq - mu * mu) / nf;
    let anti = anti / (nf * nf);
    let big_g = |u: f64| (0..n).map(|j| g(u + j as f64 / nf)).sum::<f64>() / nf;
    let var_g = nf * integrate(0.0, 1.0 / nf, |u| big_g(u).powi(2)) - mu * mu;
    let within = integrate(0.0, 1.0, |t| q(t) - g(t).powi(2)) / nf;
    (iid, anti, var_g + within)
}

/// Exact variances of the `n`-draw mask-count estimators: (i.i.d. counts, k-stratified).
pub fn exact_count_variances(s: &[f64], l: usize, prompt_len: usize, n: usize) -> (f64, f64) {
    let a = l - prompt_len;
    let af = a as f64;
    let (mut e1, mut e2, mut cnt) = (vec![0.0; a + 1], vec![0.0; a + 1], vec![0.0; a + 1]);
    for (m, &v) in s.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        let k = m.count_ones() as usize;
        e1[k] += v;
        e2[k] += v * v;
        cnt[k] += 1.0;
    }
    let e = |m: usize| af / m as f64 * e1[m] / cnt[m];
    let v = |m: usize| (af / m as f64).powi(2) * (e2[m] / cnt[m] - (e1[m] / cnt[m]).powi(2));
    let mu = (1..=a).map(e).sum::<f64>() / af;
    let ef2 = (1..=a).map(|m| v(m) + e(m).powi(2)).sum::<f64>() / af;
    let iid = (ef2 - mu * mu) / n as f64;
    let mut strat = 0.0;
    for k in 1..=a {
        let ms: Vec<usize> = (0..n)
            .map(|j| (k - 1 + (j as f64 * af / n as f64 + 0.5).floor() as usize) % a + 1)
            .collect();
        let cm = ms.iter().map(|&m| e(m)).sum::<f64>() / n as f64;
        let cv = ms.iter().map(|&m| v(m)).sum::<f64>() / (n * n) as f64;
        strat += (cm * cm + cv) / af;
    }
    (iid, strat - mu * mu)
}

/// Sample kurtosis `m4 / m2²`.
pub fn kurtosis(x: &[f64]) -> f64 {
    let m = mean(x);
    let n = x.len() as f64;
    let m2 = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n;
    let m4 = x.iter().map(|v| (v - m).powi(4)).sum::<f64>() / n;
    m4 / (m2 * m2)
}
