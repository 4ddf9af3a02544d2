//! The batched first-hitting sampler: every sequence's result equals its single-sequence
//! run with the same stream, whatever the batch composition or order; bad input is an error.

use discrete_diffusion::kernel::mixture::MixtureProcess;
use discrete_diffusion::model::markov::MarkovChainOracle;
use discrete_diffusion::model::oracle::OracleDenoiser;
use discrete_diffusion::sample::ctmc::{
    FirstHitting, FirstHittingBatch, first_hitting_sample, first_hitting_sample_batch,
};
use discrete_diffusion::schedule::{Linear, MdlmCosine};
use ndarray::Array2;

const P: [f64; 9] = [0.7, 0.2, 0.1, 0.3, 0.3, 0.4, 0.05, 0.15, 0.8];
const INIT: [f64; 3] = [0.5, 0.3, 0.2];
const MASK: u32 = 1;

fn denoiser(l: usize) -> OracleDenoiser<MarkovChainOracle, MixtureProcess> {
    let chain = MarkovChainOracle::new(3, 1, l, INIT.to_vec(), P.to_vec()).unwrap();
    let oracle = chain.embed(&[0, 2, 3], 4).unwrap();
    let mut pi = vec![0.0; 4];
    pi[MASK as usize] = 1.0;
    OracleDenoiser::new(
        oracle,
        MixtureProcess::from_schedule(pi, Linear::new()).unwrap(),
    )
    .unwrap()
}

/// Start rows: fully masked, partly masked, unmasked.
fn starts(l: usize) -> Vec<Vec<u32>> {
    vec![
        vec![MASK; l],
        (0..l).map(|i| if i % 3 == 0 { 2 } else { MASK }).collect(),
        (0..l).map(|i| [0, 2, 3][i % 3]).collect(),
        (0..l).map(|i| if i < l / 2 { MASK } else { 3 }).collect(),
        vec![MASK; l],
    ]
}

#[test]
fn batch_equals_single_runs_whatever_the_composition() {
    let l = 12;
    let den = denoiser(l);
    let sched = MdlmCosine::new(1e-3).unwrap();
    let rows = starts(l);
    let streams = [7u64, 3, 11, 0, 42];
    let (seed, t_start) = (2024u64, 0.9); // < 1: partly unmasked rows are possible
    let single: Vec<(Vec<u32>, _)> = rows
        .iter()
        .zip(streams)
        .map(|(r, stream)| {
            let mut x = r.clone();
            let cfg = FirstHitting {
                mask_id: MASK,
                t_start,
                seed,
                stream,
            };
            let out = first_hitting_sample(&sched, &den, &mut x, &cfg).unwrap();
            (x, out)
        })
        .collect();
    let cfg = FirstHittingBatch {
        mask_id: MASK,
        t_start,
        seed,
    };
    // The whole batch, the batch reversed, and a sub-batch.
    let orders: [Vec<usize>; 3] = [vec![0, 1, 2, 3, 4], vec![4, 3, 2, 1, 0], vec![3, 1]];
    for order in orders {
        let mut tokens = Array2::<u32>::zeros((order.len(), l));
        for (j, &r) in order.iter().enumerate() {
            tokens
                .row_mut(j)
                .assign(&ndarray::ArrayView1::from(&rows[r]));
        }
        let st: Vec<u64> = order.iter().map(|&r| streams[r]).collect();
        let out = first_hitting_sample_batch(&sched, &den, tokens.view_mut(), &st, &cfg).unwrap();
        let most = order.iter().map(|&r| single[r].1.nfe).max().unwrap();
        assert_eq!(out.calls, most, "one call per round");
        for (j, &r) in order.iter().enumerate() {
            assert_eq!(tokens.row(j).to_vec(), single[r].0, "row {r} in {order:?}");
            assert_eq!(out.sequences[j], single[r].1, "row {r} in {order:?}");
            assert!(tokens.row(j).iter().all(|&t| t != MASK));
        }
    }
    // An unmasked row costs nothing.
    assert_eq!(single[2].1.nfe, 0);
}

#[test]
fn bad_inputs_are_errors() {
    let l = 4;
    let den = denoiser(l);
    let sched = Linear::new();
    let cfg = FirstHittingBatch {
        mask_id: MASK,
        t_start: 1.0,
        seed: 1,
    };
    let mut tokens = Array2::<u32>::from_elem((2, l), MASK);
    let run = |t: &mut Array2<u32>, s: &[u64], c: &FirstHittingBatch| {
        first_hitting_sample_batch(&sched, &den, t.view_mut(), s, c)
    };
    assert!(run(&mut tokens, &[0], &cfg).is_err());
    assert!(run(&mut Array2::zeros((0, l)), &[], &cfg).is_err());
    assert!(run(&mut Array2::zeros((2, 0)), &[0, 1], &cfg).is_err());
    let bad_mask = FirstHittingBatch { mask_id: 4, ..cfg };
    assert!(run(&mut tokens, &[0, 1], &bad_mask).is_err());
    let bad_t = FirstHittingBatch {
        t_start: 1.5,
        ..cfg
    };
    assert!(run(&mut tokens, &[0, 1], &bad_t).is_err());
    let zero_t = FirstHittingBatch {
        t_start: 0.0,
        ..cfg
    };
    assert!(run(&mut tokens, &[0, 1], &zero_t).is_err());
    tokens[[1, 2]] = 9;
    assert!(run(&mut tokens, &[0, 1], &cfg).is_err());
}
