//! Regenerates `docs/samplers-flow.md`: the exact law of the discrete-flow-matching
//! solvers (no sampling) on an enumerable space with an exact oracle, and its distance to
//! the data as the number of steps grows (TV and KL, log–log slope).
//!
//! Run: `cargo run --release --example flow_report` (writes the file and prints it).

use discrete_diffusion::backend::steps::JumpRule;
use discrete_diffusion::kernel::path::{MetricBeta, MetricPath, MixturePath, SourceLaw};
use discrete_diffusion::math::kl_divergence;
use discrete_diffusion::model::enumeration::EnumerationOracle;
use discrete_diffusion::sample::flow::exact::{metric_solver_laws, mixture_solver_laws};
use discrete_diffusion::sample::flow::{CorrectorSchedule, MetricSolver, MixtureSolver};
use discrete_diffusion::schedule::Kappa;
use ndarray::Array2;
use std::fmt::Write as _;

const V: usize = 4;
const MASK: u32 = 1;
const L: usize = 3;
const STEPS: [usize; 7] = [4, 8, 16, 32, 64, 128, 256];

/// The data law of the tests (`tests/flow_laws.rs`): `{0, 2, 3}^3`, neighbours agree more
/// often, larger tokens are likelier; the mask never occurs.
fn data() -> EnumerationOracle {
    let n = V.pow(L as u32);
    let mut p = vec![0.0; n];
    for (idx, pi) in p.iter_mut().enumerate() {
        let x: Vec<usize> = (0..L)
            .map(|i| (idx / V.pow((L - 1 - i) as u32)) % V)
            .collect();
        if x.contains(&(MASK as usize)) {
            continue;
        }
        let agree = x.windows(2).filter(|w| w[0] == w[1]).count() as f64;
        let mass: f64 = x.iter().map(|&t| t as f64).sum();
        *pi = (0.9 * agree + 0.25 * mass).exp();
    }
    let z: f64 = p.iter().sum();
    p.iter_mut().for_each(|x| *x /= z);
    EnumerationOracle::new(V, L, p).expect("a valid table")
}

fn grid(n: usize) -> Vec<f64> {
    (0..=n).map(|k| k as f64 / n as f64).collect()
}

fn tv(p: &[f64], q: &[f64]) -> f64 {
    0.5 * p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum::<f64>()
}

struct Row {
    name: String,
    tv: Vec<f64>,
    kl: Vec<f64>,
}

fn slope(e: &[f64]) -> f64 {
    // Least-squares slope of ln e against ln n over the last four step counts.
    let pts: Vec<(f64, f64)> = STEPS
        .iter()
        .zip(e)
        .skip(STEPS.len() - 4)
        .map(|(&n, &x)| ((n as f64).ln(), x.ln()))
        .collect();
    let m = pts.len() as f64;
    let (sx, sy) = pts.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / m, sy / m);
    let num: f64 = pts.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let den: f64 = pts.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    num / den
}

fn main() -> Result<(), discrete_diffusion::Error> {
    let oracle = data();
    let n = V.pow(L as u32);
    let all_mask = (0..L).fold(0, |a, _| a * V + MASK as usize);
    let mut masked_init = vec![0.0; n];
    masked_init[all_mask] = 1.0;
    let uniform_init = vec![1.0 / n as f64; n];
    let mut rows = vec![];
    let constant = |c: f64| CorrectorSchedule::constant(c).expect("a valid constant");
    let mixture = [
        (
            "masked, CondOT, exact jump 1 − e^{−hλ}",
            SourceLaw::Mask(MASK),
            CorrectorSchedule::none(),
            JumpRule::Exponential,
        ),
        (
            "masked, CondOT, integrated (≡ MDLM)",
            SourceLaw::Mask(MASK),
            CorrectorSchedule::none(),
            JumpRule::Integrated,
        ),
        (
            "masked, CondOT, corrector c = 0.5 (remasking)",
            SourceLaw::Mask(MASK),
            constant(0.5),
            JumpRule::Exponential,
        ),
        (
            "masked, CondOT, corrector β_s = 10 s^¼(1 − s)^¼ (Gat et al.)",
            SourceLaw::Mask(MASK),
            CorrectorSchedule::gat_et_al(),
            JumpRule::Exponential,
        ),
        (
            "uniform, CondOT, exact jump",
            SourceLaw::Uniform,
            CorrectorSchedule::none(),
            JumpRule::Exponential,
        ),
        (
            "uniform, CondOT, corrector c = 0.5",
            SourceLaw::Uniform,
            constant(0.5),
            JumpRule::Exponential,
        ),
        (
            "uniform, CondOT, corrector β_s = 10 s^¼(1 − s)^¼ (Gat et al.)",
            SourceLaw::Uniform,
            CorrectorSchedule::gat_et_al(),
            JumpRule::Exponential,
        ),
        (
            "uniform, CondOT, corrector β_s = s(1 − s)",
            SourceLaw::Uniform,
            CorrectorSchedule::power(1.0, 1.0, 1.0)?,
            JumpRule::Exponential,
        ),
    ];
    for (name, source, corrector, rule) in mixture {
        let init = if matches!(source, SourceLaw::Mask(_)) {
            &masked_init
        } else {
            &uniform_init
        };
        let path = MixturePath::new(Kappa::cond_ot(), source, V)?;
        let (mut tvs, mut kls) = (vec![], vec![]);
        for &steps in &STEPS {
            let solver = MixtureSolver::new(path.clone(), grid(steps))?
                .with_rule(rule)?
                .with_corrector(corrector.clone())?;
            let laws = mixture_solver_laws(&solver, &oracle, init)?;
            let last = laws.last().expect("at least one law");
            tvs.push(tv(last, oracle.probs()));
            kls.push(kl_divergence(oracle.probs(), last)?);
        }
        rows.push(Row {
            name: name.into(),
            tv: tvs,
            kl: kls,
        });
    }
    // Metric-induced path on 1-D embeddings e_x = x (d = |x − y|), β(s) = 3 (s/(1 − s)).
    let emb = Array2::from_shape_fn((V, 1), |(x, _)| x as f64);
    let metric = MetricPath::from_embeddings(emb.view(), MetricBeta::new(3.0, 1.0)?)?;
    for (name, corrector) in [
        (
            "metric d(x, y) = ‖e_x − e_y‖ with e_x = x, β = 3s/(1 − s), kinetic optimal",
            CorrectorSchedule::none(),
        ),
        ("metric, kinetic corrector c = 0.5", constant(0.5)),
        (
            "metric, kinetic corrector β_s = 10 s^¼(1 − s)^¼",
            CorrectorSchedule::gat_et_al(),
        ),
    ] {
        let (mut tvs, mut kls) = (vec![], vec![]);
        for &steps in &STEPS {
            let solver =
                MetricSolver::new(metric.clone(), grid(steps))?.with_corrector(corrector.clone());
            let laws = metric_solver_laws(&solver, &oracle, &uniform_init)?;
            let last = laws.last().expect("at least one law");
            tvs.push(tv(last, oracle.probs()));
            kls.push(kl_divergence(oracle.probs(), last)?);
        }
        rows.push(Row {
            name: name.into(),
            tv: tvs,
            kl: kls,
        });
    }

    let mut doc = String::new();
    let w = &mut doc;
    writeln!(
        w,
        "# Discrete flow matching: exact solver laws and convergence\n"
    )
    .ok();
    writeln!(
        w,
        "Generated by `cargo run --release --example flow_report`; do not edit by hand.\n"
    )
    .ok();
    writeln!(
        w,
        "The solvers of `sample::flow` are run **in law**, not by sampling: with an exact oracle"
    )
    .ok();
    writeln!(
        w,
        "(`EnumerationOracle`, {V} states with the mask at id {MASK}, sequences of length {L}, a"
    )
    .ok();
    writeln!(
        w,
        "data law with dependence between neighbours) `sample::flow::exact` propagates the"
    )
    .ok();
    writeln!(
        w,
        "distribution over all {n} sequences through every step of a uniform flow-time grid"
    )
    .ok();
    writeln!(
        w,
        "(`P'(y) = Σ_x P(x) Π_i K_i(y_i | x)`, `K_i` the per-token step law at the exact"
    )
    .ok();
    writeln!(
        w,
        "posterior `p_{{1|s}}`). The tables give the distance of the final law to the data.\n"
    )
    .ok();
    writeln!(
        w,
        "Every step moves all positions independently given the current sequence, so even"
    )
    .ok();
    writeln!(
        w,
        "with an exact posterior and the path's own transition (`integrated`, the MDLM"
    )
    .ok();
    writeln!(
        w,
        "ancestral step) the joint law is off by the dependence between positions that jump"
    )
    .ok();
    writeln!(
        w,
        "in the same step; the error vanishes as `h → 0`. The last column is the least-squares"
    )
    .ok();
    writeln!(
        w,
        "slope of `ln error` against `ln steps` over the last four step counts (−1: first order)."
    )
    .ok();
    for line in [
        "",
        "The masked and metric paths are first order (TV ∝ h, KL ∝ h²). The uniform source",
        "approaches first order more slowly over these step counts: its noise tokens stay",
        "possible up to `s = 1`, where the rate `κ̇/(1 − κ)` diverges, so the last steps' errors",
        "do not shrink like `h²` (the slopes are consistent with `TV ∝ h log(1/h)`, not proven",
        "here). The corrector's coefficient `κ̇/κ` is singular at `s = 0` (first-step rates",
        "`≈ c/s`, handled exactly at `s = 0` by dropping the divergence-free term there) and",
        "costs a constant factor.",
        "",
        "Time-dependent correctors `β_s` (`sample::flow::CorrectorSchedule`, evaluated at the",
        "left end of each step) keep the marginals of the exact process on the path for every",
        "`s` (`tests/flow_corrector.rs`), so they too converge to the data; what they cost is",
        "discretisation error, in proportion to the rates they add. Gat et al.'s",
        "`β_s = 10 s^¼(1 − s)^¼` multiplies the rates by up to 11: on the masked path it stays",
        "first order, on the uniform source it is still pre-asymptotic at 256 steps (the local",
        "slope steepens step by step). The metric rows add the kinetic corrector",
        "`β_s(û − ǔ) = β_s β̇ p_s(x | x_1)|d(x, x_1) − d(z, x_1)|` (`kernel::path::metric`), a",
        "reversible move under `p_s(· | x_1)` on the path's own time scale `β̇`. With an exact",
        "posterior no corrector can lower these errors (the plain solver is already consistent);",
        "correctors are for imperfect models, whose errors they resample away, which this",
        "table does not measure.",
        "",
    ] {
        writeln!(w, "{line}").ok();
    }
    for (title, pick) in [("Total variation", 0), ("KL(data ‖ solver)", 1)] {
        writeln!(w, "## {title}\n").ok();
        write!(w, "| solver |").ok();
        for s in STEPS {
            write!(w, " {s} |").ok();
        }
        writeln!(w, " slope |").ok();
        write!(w, "|---|").ok();
        for _ in STEPS {
            write!(w, "---|").ok();
        }
        writeln!(w, "---|").ok();
        for r in &rows {
            let e = if pick == 0 { &r.tv } else { &r.kl };
            write!(w, "| {} |", r.name).ok();
            for x in e {
                write!(w, " {x:.2e} |").ok();
            }
            writeln!(w, " {:.2} |", slope(e)).ok();
        }
        writeln!(w).ok();
    }
    writeln!(
        w,
        "Checked by `tests/flow_laws.rs` (`final_law_converges_to_the_data_at_first_order`) and"
    )
    .ok();
    writeln!(
        w,
        "`tests/flow_corrector.rs` (`solver_with_time_dependent_corrector_converges`)."
    )
    .ok();
    std::fs::write("docs/samplers-flow.md", &doc)
        .map_err(|e| discrete_diffusion::Error::invalid("docs/samplers-flow.md", e.to_string()))?;
    print!("{doc}");
    Ok(())
}
