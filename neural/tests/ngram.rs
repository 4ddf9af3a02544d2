//! The sparse n-gram equals the crate's `MarkovChainOracle::fit` (same estimator), and its
//! exact −log p(x) agrees with the Monte Carlo NELBO on the oracle posterior.

use discrete_diffusion::model::markov::MarkovChainOracle;
use discrete_diffusion::model::oracle::ExactPosterior;
use discrete_diffusion_neural::ngram::NGram;

fn corpus() -> Vec<Vec<u32>> {
    (0..40u32)
        .map(|s| {
            (0..9u32)
                .map(|i| (s * 7 + i * i * 3 + (s ^ i)) % 4)
                .collect()
        })
        .collect()
}

#[test]
fn matches_markov_chain_oracle_fit() {
    let data = corpus();
    for k in 0..=3 {
        for c in [0.0, 0.05, 1.0] {
            let ng = NGram::fit(data.iter(), k, 4, c).unwrap();
            let oracle = MarkovChainOracle::fit(data.iter(), k, 4, 9, c).unwrap();
            for x in data.iter().chain(&[vec![3, 3, 3, 3, 3, 3, 3, 3, 3]]) {
                let a = ng.log_prob(x).unwrap();
                let b = oracle.log_prob_x0(x).unwrap();
                assert!(
                    (a - b).abs() < 1e-10 || (a == b),
                    "k = {k}, c = {c}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn probabilities_sum_to_one() {
    // Over all 3^4 sequences of length 4 with V = 3.
    let data: Vec<Vec<u32>> = vec![vec![0, 1, 2, 0], vec![1, 1, 0, 2], vec![2, 0, 0, 1]];
    for k in 0..=2 {
        let ng = NGram::fit(data.iter(), k, 3, 0.3).unwrap();
        let mut total = 0.0;
        for code in 0..81u32 {
            let x: Vec<u32> = (0..4).map(|j| (code / 3u32.pow(j)) % 3).collect();
            total += ng.log_prob(&x).unwrap().exp();
        }
        assert!((total - 1.0).abs() < 1e-12, "k = {k}: {total}");
    }
}

#[test]
fn rejects_bad_input() {
    let data = corpus();
    assert!(NGram::fit([vec![0u32, 3]], 1, 3, 0.1).is_err()); // token 3 ≥ V
    assert!(NGram::fit(data.iter(), 1, 4, -1.0).is_err());
    assert!(NGram::fit(Vec::<Vec<u32>>::new(), 1, 4, 0.1).is_err());
    assert!(NGram::fit(data.iter(), 8, 4, 0.1).is_ok());
    assert!(NGram::fit(data.iter(), 40, 4, 0.1).is_err()); // overflow (and too short)
    let ng = NGram::fit(data.iter(), 2, 4, 0.1).unwrap();
    assert!(ng.log_prob(&[0]).is_err());
    assert!(ng.log_prob(&[0, 1, 9]).is_err());
}
