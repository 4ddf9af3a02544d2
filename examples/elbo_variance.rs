//! Variance of the masked-diffusion NELBO estimators and of VRPO's preference score, against
//! an exact oracle (order-1 Markov chain over 3 tokens, mask at index 1, `α = cos(πt/2)`).
//!
//! For each estimator: the exact variance of one estimate (computed from the exact
//! per-subset losses by quadrature), the variance measured over independent repetitions,
//! and the ratio to the i.i.d. baseline. Run with
//! `cargo run --release --example elbo_variance`; the output is pasted in
//! `docs/training.md`.

#[path = "../tests/train_common/mod.rs"]
mod train_common;

use discrete_diffusion::loss::weight::ElboWeight;
use discrete_diffusion::model::oracle::ExactPosterior;
use discrete_diffusion::rng::RngKey;
use discrete_diffusion::schedule::{Antithetic, MdlmCosine, Stratified, TimeSampler, Uniform};
use discrete_diffusion::train::elbo::{ElboSampling, nelbo_estimate};
use discrete_diffusion::train::vrpo::{VrpoConfig, vrpo_estimate};
use train_common::*;

const REPS: u64 = 4000;
const N: usize = 10;

fn main() -> discrete_diffusion::Result<()> {
    let sch = MdlmCosine::new(0.0)?;
    let uni = Uniform::new(0.0)?;
    let anti = Antithetic::new(0.0)?;
    let strat = Stratified::new(0.0)?;
    let time = |s: &'static dyn TimeSampler, sch: &'static MdlmCosine| ElboSampling::Time {
        sampler: s,
        schedule: sch,
        weight: ElboWeight::Elbo,
        masks_per_time: 1,
    };
    let (sch, uni, anti, strat): (&'static _, &'static _, &'static _, &'static _) = (
        Box::leak(Box::new(sch)),
        Box::leak(Box::new(uni)),
        Box::leak(Box::new(anti)),
        Box::leak(Box::new(strat)),
    );

    println!("## NELBO estimators ({N} draws per estimate, {REPS} repetitions)\n");
    for x0 in [vec![0u32, 2, 3, 3, 0], vec![0u32, 2, 3, 3, 0, 0, 2, 3]] {
        let l = x0.len();
        let oracle = chain(l, 0.0);
        let exact = -oracle.log_prob_x0(&x0)?;
        let s = subset_losses(&oracle, &x0, 0);
        let (x_uni, x_anti, x_strat) = exact_time_variances(&s, l, 0, N);
        let (x_cnt, x_kstrat) = exact_count_variances(&s, l, 0, N);
        let model = oracle_denoiser(l, 0.0);
        println!("x0 = {x0:?} (L = {l}), −log p(x0) = {exact:.5}\n");
        println!(
            "| estimator | mean | exact var | measured var | var ratio vs i.i.d. (exact / measured) |"
        );
        println!("|---|---|---|---|---|");
        let rows = [
            ("time, i.i.d. uniform", time(uni, sch), x_uni, x_uni),
            ("time, antithetic (MDLM)", time(anti, sch), x_anti, x_uni),
            (
                "time, stratified (VDM/MD4)",
                time(strat, sch),
                x_strat,
                x_uni,
            ),
            (
                "mask count, i.i.d.",
                ElboSampling::MaskCount { stratified: false },
                x_cnt,
                x_cnt,
            ),
            (
                "mask count, k-stratified (LLaDA)",
                ElboSampling::MaskCount { stratified: true },
                x_kstrat,
                x_cnt,
            ),
        ];
        let mut base = 0.0;
        for (k, (name, sampling, xv, xbase)) in rows.into_iter().enumerate() {
            let vals: Vec<f64> = (0..REPS)
                .map(|r| {
                    nelbo_estimate(
                        &model,
                        &x0,
                        MASK,
                        0,
                        sampling,
                        N,
                        RngKey::for_stream(2024, r),
                        0,
                    )
                    .map(|e| e.value)
                })
                .collect::<Result<_, _>>()?;
            let v = var(&vals);
            if k == 0 || k == 3 {
                base = v;
            }
            println!(
                "| {name} | {:.4} | {xv:.4} | {v:.4} | {:.2} / {:.2} |",
                mean(&vals),
                xbase / xv,
                base / v
            );
        }
        println!();
    }

    println!(
        "## VRPO preference score (β = 0.5, policy = chain perturbed by 0.08, {N} draws per ELBO, 1500 repetitions)\n"
    );
    let l = 5;
    let (win, lose) = ([0u32, 2, 3, 3, 0], [0u32, 0, 2, 3, 2]);
    let (pi, rf) = (chain(l, 0.08), chain(l, 0.0));
    let lr = |y: &[u32]| -> discrete_diffusion::Result<f64> {
        Ok(pi.log_prob_x0(y)? - rf.log_prob_x0(y)?)
    };
    let exact = 0.5 * (lr(&win)? - lr(&lose)?);
    let (policy, reference) = (oracle_denoiser(l, 0.08), oracle_denoiser(l, 0.0));
    println!("exact score {exact:.5}\n");
    println!(
        "| ELBO estimator | independent noise: mean / var | shared noise (VRPO): mean / var | var ratio |"
    );
    println!("|---|---|---|---|");
    for (name, sampling) in [
        ("time, stratified", time(strat, sch)),
        (
            "mask count, k-stratified",
            ElboSampling::MaskCount { stratified: true },
        ),
    ] {
        let mut res = Vec::new();
        for shared in [false, true] {
            let cfg = VrpoConfig {
                sampling,
                num_times: N,
                prompt_len: 0,
                mask_token: MASK,
                beta: 0.5,
                shared_noise: shared,
            };
            let vals: Vec<f64> = (0..1500u64)
                .map(|r| {
                    vrpo_estimate(
                        &policy,
                        &reference,
                        &win,
                        &lose,
                        &cfg,
                        RngKey::for_stream(77, r),
                        0,
                    )
                    .map(|e| e.loss.score)
                })
                .collect::<Result<_, _>>()?;
            res.push((mean(&vals), var(&vals)));
        }
        println!(
            "| {name} | {:+.4} / {:.4} | {:+.4} / {:.5} | {:.1} |",
            res[0].0,
            res[0].1,
            res[1].0,
            res[1].1,
            res[0].1 / res[1].1
        );
    }

    println!("\n## Allocation of a budget of 8 (time, i.i.d. uniform, 3000 repetitions)\n");
    println!("| times × masks per time | measured var | ratio to 8 × 1 |");
    println!("|---|---|---|");
    let model = oracle_denoiser(l, 0.0);
    let mut base = 0.0;
    for (n_t, per) in [(8usize, 1usize), (4, 2), (2, 4), (1, 8)] {
        let s = ElboSampling::Time {
            sampler: uni,
            schedule: sch,
            weight: ElboWeight::Elbo,
            masks_per_time: per,
        };
        let vals: Vec<f64> = (0..3000u64)
            .map(|r| {
                nelbo_estimate(&model, &win, MASK, 0, s, n_t, RngKey::for_stream(5, r), 0)
                    .map(|e| e.value)
            })
            .collect::<Result<_, _>>()?;
        let v = var(&vals);
        if n_t == 8 {
            base = v;
        }
        println!("| {n_t} × {per} | {v:.4} | {:.2} |", v / base);
    }
    Ok(())
}
