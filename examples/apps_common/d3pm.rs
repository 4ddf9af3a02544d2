//! D3PM held-out NELBO of the protein example: the VLB of a similarity-kernel D3PM whose
//! `p̃` is an exact Markov posterior, for the joint and the posterior-mixture reverse forms.

use discrete_diffusion::kernel::ForwardKernel;
use discrete_diffusion::kernel::posterior::{PosteriorWorkspace, q_posterior};
use discrete_diffusion::kernel::similarity::Similarity;
use discrete_diffusion::loss::d3pm::{D3pmWorkspace, Decoder, decoder_nll, posterior_kl, prior_kl};
use discrete_diffusion::math::softmax_into;
use discrete_diffusion::model::Denoiser;
use discrete_diffusion::model::markov::MarkovChainOracle;
use discrete_diffusion::model::oracle::OracleDenoiser;
use discrete_diffusion::rng::{CounterRng, Purpose, RngKey, sample_masses};
use discrete_diffusion::sample::d3pm::{ReverseForm, reverse_probs};
use ndarray::{Array1, Array2, Array3};

use super::progress;

/// `S[W, W]` (W is the last letter of the alphabetical order).
pub fn w_self(k: &Similarity) -> f64 {
    let v = k.vocab_size();
    k.matrix()[[v - 1, v - 1]]
}

/// Mean over the 20 letters of `L_T = KL(q(x_T | x_0) ‖ uniform)`, in bits.
pub fn mean_prior_bits(k: &Similarity) -> discrete_diffusion::Result<f64> {
    let v = k.vocab_size();
    let mut ws = D3pmWorkspace::new(v);
    let mut s = 0.0;
    for x in 0..v as u32 {
        s += prior_kl(k, x, &mut ws)?;
    }
    Ok(s / v as f64 / std::f64::consts::LN_2)
}

pub fn second_eigenvalue(k: &Similarity) -> f64 {
    let mut e: Vec<f64> = k.eigenvalues().to_vec();
    e.sort_by(|a, b| b.total_cmp(a));
    e.get(1).copied().unwrap_or(f64::NAN)
}

/// Monte Carlo D3PM NELBO in bits per residue: for each window, `L_T` exactly and
/// `T · L_{t−1}` at `draws` sampled steps `t ~ U{1..T}` (`L_0` at `t = 1`), with
/// `x_t ~ q(x_t | x_0)` and the exact x0 posterior as `p̃`, for both reverse forms.
pub fn d3pm_nelbo(
    kernel: &Similarity,
    model: &OracleDenoiser<MarkovChainOracle, Similarity>,
    seqs: &[Vec<u32>],
    draws: usize,
    seed: u64,
) -> discrete_diffusion::Result<D3pmNelbo> {
    let big_t = kernel.num_steps();
    let v = kernel.vocab_size();
    let l = seqs[0].len();
    let mut ws = D3pmWorkspace::new(v);
    let mut pws = PosteriorWorkspace::new(v);
    let (mut joint, mut mixture, mut prior) = (Vec::new(), Vec::new(), 0.0);
    let (mut row, mut p0, mut q, mut p) = (vec![0.0; v], vec![0.0; v], vec![0.0; v], vec![0.0; v]);
    let mut logits = Array3::<f32>::zeros((1, l, v));
    let pb = progress((seqs.len() * draws) as u64, "D3PM NELBO");
    for (n, x0) in seqs.iter().enumerate() {
        let key = RngKey::for_stream(seed, n as u64);
        let mut lt = 0.0;
        for &x in x0 {
            lt += prior_kl(kernel, x, &mut ws)?;
        }
        prior += lt;
        let (mut wj, mut wm) = (lt, lt);
        for d in 0..draws {
            let u = CounterRng::new(key, Purpose::TIME, d as u32, 0).uniform();
            let t = ((u * big_t as f64) as usize).min(big_t - 1) + 1;
            let mut xt = Array2::<u32>::zeros((1, l));
            for (i, &x) in x0.iter().enumerate() {
                kernel.cumulative_row(t, x, &mut row)?;
                let u = CounterRng::new(key, Purpose::FORWARD_NOISE, d as u32, i as u32).uniform();
                xt[[0, i]] = sample_masses(&row, u)?.token;
            }
            let times = Array1::from_elem(1, t as f64 / big_t as f64);
            model.logits(xt.view(), times.view(), logits.view_mut())?;
            let (mut tj, mut tm) = (0.0, 0.0);
            for (i, &x) in x0.iter().enumerate() {
                let lg = logits.slice(ndarray::s![0, i, ..]);
                let y = xt[[0, i]];
                if t == 1 {
                    let l0 = decoder_nll(
                        kernel,
                        y,
                        x,
                        lg.as_slice().unwrap_or(&[]),
                        Decoder::Direct,
                        &mut ws,
                        None,
                    )?;
                    tj += l0;
                    tm += l0;
                } else {
                    tj +=
                        posterior_kl(kernel, t, y, x, lg.as_slice().unwrap_or(&[]), &mut ws, None)?;
                    softmax_into(lg, &mut p0)?;
                    q_posterior(kernel, t, y, x, &mut pws, &mut q)?;
                    reverse_probs(kernel, t, y, &p0, ReverseForm::PosteriorMixture, &mut p)?;
                    tm += kl(&q, &p);
                }
            }
            wj += big_t as f64 * tj / draws as f64;
            wm += big_t as f64 * tm / draws as f64;
            pb.inc(1);
        }
        joint.push(wj);
        mixture.push(wm);
    }
    pb.finish_and_clear();
    // Mean and standard error over windows, per residue in bits.
    let scale = l as f64 * std::f64::consts::LN_2;
    let mean_se = |v: &[f64]| {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        (m / scale, (var / n).sqrt() / scale)
    };
    Ok(D3pmNelbo {
        joint: mean_se(&joint),
        mixture: mean_se(&mixture),
        prior: prior / seqs.len() as f64 / scale,
    })
}

/// D3PM held-out NELBO (bits per residue) of the two reverse forms, and its `L_T` part.
pub struct D3pmNelbo {
    /// Mean and standard error (over windows).
    pub joint: (f64, f64),
    /// Mean and standard error (over windows).
    pub mixture: (f64, f64),
    pub prior: f64,
}

/// `KL(q ‖ p)` in nats (`+∞` if `p` misses mass of `q`).
fn kl(q: &[f64], p: &[f64]) -> f64 {
    q.iter()
        .zip(p)
        .filter(|(a, _)| **a > 0.0)
        .map(|(&a, &b)| {
            if b > 0.0 {
                a * (a / b).ln()
            } else {
                f64::INFINITY
            }
        })
        .sum::<f64>()
        .max(0.0)
}
