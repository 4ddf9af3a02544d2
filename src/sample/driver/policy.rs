//! One step of each policy over the driver's state.

use ndarray::{Array2, Array3, ArrayView2, s};

use super::{Changes, Policy, SamplerConfig, State, StepPlace, StopRule, unmask};
use crate::backend::steps::{
    Commit, DfmEulerStep, MdlmStep, StepRng, dfm_euler_step, mdlm_ancestral_step,
};
use crate::backend::{Backend, RowSpec};
use crate::error::Result;
use crate::sample::remask::{RemdmSigma, remdm_conf_sigmas, remdm_sigma, remdm_step};
use crate::schedule::Kappa;

/// Run the policy on the current logits; returns reveals and remaskings.
#[allow(clippy::too_many_arguments)]
pub(super) fn policy_step<B: Backend + ?Sized>(
    backend: &B,
    config: &SamplerConfig,
    spec: &RowSpec,
    st: &mut State<'_>,
    cand: ArrayView2<'_, bool>,
    at_start: &[usize],
    place: StepPlace,
    (a, e): (usize, usize),
    rng: &StepRng<'_>,
) -> Result<Changes> {
    let (b, l) = cand.dim();
    let block_view = |x: &Array3<f32>| x.slice(s![.., a..e, ..]).to_owned();
    let shift = |mut c: Vec<Commit>| {
        c.iter_mut().for_each(|c| c.pos += a);
        c
    };
    match &config.policy {
        Policy::Unmask(u) => {
            let mut p = unmask::plan(
                backend,
                st.logits.view(),
                st.original.as_ref().map(|o| o.view()),
                cand,
                u,
                spec,
                at_start,
                place,
                rng,
            )?;
            for bi in 0..b {
                let idx: Vec<usize> = (0..l).filter(|&i| cand[[bi, i]]).collect();
                let mut all = false;
                for r in &config.stop {
                    match *r {
                        StopRule::EntropyBelow(tau) => {
                            all |= idx.iter().all(|&i| p.summaries[[bi, i]].entropy < tau);
                        }
                        StopRule::ArgmaxStable(n) => {
                            let mut ok = true;
                            for &i in &idx {
                                let am = p.summaries[[bi, i]].argmax;
                                let (prev, cnt) = st.stable[[bi, i]];
                                let cnt = if prev == am { cnt + 1 } else { 1 };
                                st.stable[[bi, i]] = (am, cnt);
                                ok &= cnt >= n;
                            }
                            all |= ok;
                        }
                        StopRule::MaxNfe(_) => {}
                    }
                }
                if all && !idx.is_empty() {
                    p.chosen[bi] = idx;
                }
            }
            Ok((
                unmask::commit(&mut st.tokens, &p.summaries, &p.chosen, config.mask_id),
                Vec::new(),
            ))
        }
        Policy::Ancestral { schedule } => {
            let lg = block_view(&st.logits);
            let mut tk = st.tokens.slice_mut(s![.., a..e]);
            let params = MdlmStep {
                mask_id: config.mask_id,
                t: place.t,
                s: place.s,
            };
            let out =
                mdlm_ancestral_step(backend, &**schedule, lg.view(), tk.view_mut(), &params, rng)?;
            Ok((shift(out.commits), Vec::new()))
        }
        Policy::Jump { schedule, rule } => {
            let lg = block_view(&st.logits);
            let mut tk = st.tokens.slice_mut(s![.., a..e]);
            let kappa = Kappa::convex(&**schedule);
            let params = DfmEulerStep {
                mask_id: config.mask_id,
                s: 1.0 - place.t,
                s_next: 1.0 - place.s,
                rule: *rule,
                final_step: place.step + 1 == place.steps,
                exclude_mask: true,
            };
            let out = dfm_euler_step(backend, &kappa, lg.view(), tk.view_mut(), &params, rng)?;
            Ok((shift(out.commits), Vec::new()))
        }
        Policy::Remdm { schedule, sigma } => {
            let (at, as_) = (schedule.alpha(place.t)?, schedule.alpha(place.s)?);
            let sg = remdm_sigma(*sigma, at, as_)?;
            let sig = if *sigma == RemdmSigma::Confidence {
                let mut out = Array2::zeros((b, l));
                for bi in 0..b {
                    let conf: Vec<f64> = (a..e)
                        .map(|i| {
                            if st.fixed[[bi, i]] {
                                f64::NEG_INFINITY
                            } else {
                                st.conf[[bi, i]]
                            }
                        })
                        .collect();
                    for (j, x) in remdm_conf_sigmas(&conf, sg.max)?.into_iter().enumerate() {
                        out[[bi, a + j]] = x;
                    }
                }
                out
            } else {
                Array2::from_elem((b, l), sg.used)
            };
            remdm_apply(backend, config, st, sig, (at, as_), (a, e), rng)
        }
        Policy::RemdmLoop(lp) => {
            let ls = lp.step(place.t, place.s)?;
            let sig = Array2::from_elem((b, l), ls.sigma);
            remdm_apply(
                backend,
                config,
                st,
                sig,
                (ls.alpha_t, ls.alpha_s),
                (a, e),
                rng,
            )
        }
    }
}

fn remdm_apply<B: Backend + ?Sized>(
    backend: &B,
    config: &SamplerConfig,
    st: &mut State<'_>,
    sigma: Array2<f64>,
    alphas: (f64, f64),
    (a, e): (usize, usize),
    rng: &StepRng<'_>,
) -> Result<Changes> {
    let (b, l) = sigma.dim();
    let elig = Array2::from_shape_fn((b, l), |(bi, i)| i >= a && i < e && !st.fixed[[bi, i]]);
    let (out, remasked) = remdm_step(
        backend,
        st.logits.view(),
        st.tokens.view_mut(),
        Some(elig.view()),
        sigma.view(),
        alphas,
        config.mask_id,
        rng,
    )?;
    for &(bi, i) in &remasked {
        st.conf[[bi, i]] = f64::NEG_INFINITY;
    }
    for c in &out.commits {
        st.conf[[c.seq, c.pos]] = -c.logprob.exp();
    }
    Ok((out.commits, remasked))
}
