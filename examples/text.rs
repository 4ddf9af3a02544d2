//! Text: character-level generation with LLaDA's semi-autoregressive low-confidence
//! decoding and Fast-dLLM's threshold decoding, both over the **exact** denoiser of a
//! character Markov chain; quality (likelihood under a separately fitted higher-order
//! model, distinct-n) against the number of denoiser calls (NFE).
//!
//! Run: `cargo run --release --example text` (`-- --quick` for the CI mode, `--seed N`,
//! `--samples N`, `--max-order K`, `--data PATH`). The embedded default corpus is this
//! crate's own README and docs (`data::datasets::text_default`: prose we may redistribute);
//! Shakespeare comes from `scripts/fetch_data.sh`: `--data target/data/text/shakespeare`.
//! The output says which corpus was used. Writes `target/results/text.json`.
//!
//! 1. Data: paragraphs with the fixed 10 % held-out split, lower-cased onto a 36-character
//!    alphabet (`a–z`, space, newline, `.,;:'!?-`; anything else becomes a space, runs of
//!    spaces collapse), joined by blank lines and cut into windows of `L = 64` characters.
//!    The small alphabet is what makes the exact denoiser affordable: its cost per
//!    sequence is `O(L·V^{k+1})`.
//! 2. Model: `MarkovChainOracle::fit` of order 1..=K (default 2) chosen by held-out
//!    likelihood, embedded next to a mask token; `OracleDenoiser` under an absorbing
//!    process gives the exact `p(x_0^i | x_t)` (the chain given the revealed characters).
//! 3. Samplers (`sample::presets`, run by `sample::driver`, one run per sequence so that
//!    adaptive NFE is per sequence): `llada` with 4 blocks of 16 at several step counts, in
//!    random order (with one token per step this is exact sampling of the chain: each
//!    token is drawn from its exact conditional given those revealed) and in LLaDA's
//!    low-confidence order, at temperature 1, plus LLaDA's default greedy draw once; and
//!    `fast_dllm_threshold` at two thresholds (its NFE adapts).
//! 4. Quality: NLL per character under an order-`min(K + 1, 3)` chain fitted separately
//!    on the training windows (the "evaluator", smoothing chosen by held-out likelihood),
//!    and under the generating chain itself (its exact log-likelihood); distinct-1/2 of words. Baselines: held-out windows (`data`)
//!    and exact left-to-right draws of the generating chain (`markov-ancestral`).

mod apps2_common;

use std::time::Instant;

use apps2_common::{
    Args, Results, Row, bar, chain_draws, distinct_n, nll_per_token, secs, select_order,
};
use discrete_diffusion::Error;
use discrete_diffusion::backend::cpu::CpuBackend;
use discrete_diffusion::data::datasets::{text_default, text_from_path};
use discrete_diffusion::kernel::mixture::MixtureProcess;
use discrete_diffusion::model::markov::MarkovChainOracle;
use discrete_diffusion::model::oracle::OracleDenoiser;
use discrete_diffusion::sample::driver::{NoHook, SamplerConfig, run};
use discrete_diffusion::sample::presets::{LladaLayout, fast_dllm_threshold, llada};
use ndarray::Array2;
use rayon::prelude::*;

const USAGE: &str = "usage: text [--quick] [--seed N] [--samples N] [--max-order K] [--data PATH]";
const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz \n.,;:'!?-";
const L: usize = 64;
const BLOCK: usize = 16;
const PSEUDOCOUNT: f64 = 0.01;

/// Lower-case onto [`ALPHABET`]; other characters become spaces; runs of spaces collapse.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = if ALPHABET.contains(c) { c } else { ' ' };
        if !(c == ' ' && out.ends_with(' ')) {
            out.push(c);
        }
    }
    out
}

fn ids(text: &str) -> Vec<u32> {
    text.chars()
        .map(|c| ALPHABET.chars().position(|a| a == c).expect("normalized") as u32)
        .collect()
}

fn show(ids: &[u32]) -> String {
    let a: Vec<char> = ALPHABET.chars().collect();
    ids.iter()
        .map(|&i| a.get(i as usize).copied().unwrap_or('_'))
        .collect()
}

/// Paragraphs normalized, joined by blank lines, cut into windows of `L` characters.
fn windows(paragraphs: &[String]) -> Vec<Vec<u32>> {
    let joined: Vec<String> = paragraphs.iter().map(|p| normalize(p)).collect();
    ids(&joined.join("\n\n"))
        .chunks_exact(L)
        .map(<[u32]>::to_vec)
        .collect()
}

/// Quality metrics of `L`-character samples.
fn quality(
    gen_chain: &MarkovChainOracle,
    eval: &MarkovChainOracle,
    seqs: &[Vec<u32>],
) -> Result<Vec<(String, f64)>, Error> {
    let words: Vec<Vec<String>> = seqs
        .iter()
        .map(|s| show(s).split_whitespace().map(String::from).collect())
        .collect();
    Ok(vec![
        ("nll_eval".into(), nll_per_token(eval, seqs)?),
        ("nll_model".into(), nll_per_token(gen_chain, seqs)?),
        ("distinct_1".into(), distinct_n(&words, 1).unwrap_or(0.0)),
        ("distinct_2".into(), distinct_n(&words, 2).unwrap_or(0.0)),
    ])
}

fn main() -> Result<(), Error> {
    let args = Args::parse(USAGE)?;
    let n = args.samples.unwrap_or(if args.quick { 8 } else { 48 });
    let max_order = args.max_order.unwrap_or(2).min(3);
    let (data, corpus) = match &args.data {
        None => (
            text_default()?,
            "this crate's README and docs (embedded default)".to_string(),
        ),
        Some(p) => (text_from_path(p, 0.1)?, format!("{}", p.display())),
    };
    let (train, heldout) = (windows(&data.train), windows(&data.heldout));
    println!(
        "corpus: {corpus}\n  {} train / {} held-out paragraphs -> {} / {} windows of {L} characters over {} symbols",
        data.train.len(),
        data.heldout.len(),
        train.len(),
        heldout.len(),
        ALPHABET.chars().count()
    );
    if train.is_empty() || heldout.is_empty() {
        return Err(Error::invalid(
            "data",
            "fewer than one window of text in the train or held-out part",
        ));
    }
    let v = ALPHABET.chars().count();
    let (chain, orders) = select_order(&train, &heldout, v, L, max_order, PSEUDOCOUNT)?;
    let eval_order = (chain.order() + 1).min(3);
    // The evaluator's smoothing is chosen by held-out likelihood too (order 3 has 36³
    // contexts, many unseen in a small corpus).
    let mut eval: Option<(MarkovChainOracle, f64, f64)> = None;
    for c in [0.001, 0.01, 0.1, 1.0] {
        let e = MarkovChainOracle::fit(&train, eval_order, v, L, c)?;
        let x = nll_per_token(&e, &heldout)?;
        if eval.as_ref().is_none_or(|b| x < b.1) {
            eval = Some((e, x, c));
        }
    }
    let (eval, eval_nll, eval_c) = eval.expect("four candidates");
    println!(
        "  held-out NLL per character (nats): {}; generating with order {}; evaluator: order {eval_order}, add-{eval_c}, held-out {eval_nll:.4}",
        orders,
        chain.order()
    );
    let mask = v as u32; // the mask is one past the alphabet here (any index would do)
    let oracle = chain.embed(&(0..v as u32).collect::<Vec<_>>(), v + 1)?;
    let mut e_mask = vec![0.0; v + 1];
    e_mask[v] = 1.0;
    // LLaDA's network ignores time, and block b > 0 restarts its grid at t = 1 with earlier
    // blocks already revealed, which the masking process α(1) = 0 calls impossible. Under
    // any absorbing process with 0 < α < 1 the exact posterior p(x_0 | x_t) is the chain
    // conditioned on the revealed tokens, whatever α is: a constant α = 1/2 gives exactly it.
    let process = MixtureProcess::new(e_mask, Box::new(|_| Ok(0.5)))?;
    let denoiser = OracleDenoiser::new(oracle, process)?;
    let model = format!("markov-{}-exact", chain.order());

    let mut results = Results {
        domain: "text".into(),
        dataset: corpus.clone(),
        rows: Vec::new(),
        notes: vec![
            format!(
                "Corpus: {corpus}; lower-cased onto the 36-symbol alphabet {ALPHABET:?}, windows of {L} characters."
            ),
            format!(
                "Exact denoiser: order-{} character Markov chain (held-out NLL/char by order: {}), add-{PSEUDOCOUNT} counts; the exact posterior given the revealed characters (time-independent, as LLaDA's network).",
                chain.order(),
                orders
            ),
            format!(
                "Lower NLL is not better quality: confidence-ordered and greedy decoding are mode-seeking (NLL below the data's, low distinct-n); closeness to the data row in both NLL and distinct-n is the target. The data row uses {} evenly spaced held-out windows (distinct-n depends on the sample size).",
                n.min(heldout.len())
            ),
            "NFE is per sequence (each sequence decoded by its own driver run); Fast-dLLM's adapts.".to_string(),
            format!(
                "nll_eval: NLL per character (nats) under a separately fitted order-{eval_order} chain (add-{eval_c} counts chosen by held-out NLL, {eval_nll:.4} on held-out windows); nll_model: under the generating chain (its exact likelihood). distinct_n over words."
            ),
            format!(
                "LLaDA / Fast-dLLM: no prompt, {} blocks of {BLOCK}, mask kept in the softmax as in the anchors (its exact probability is 0).",
                L / BLOCK
            ),
            format!("{n} samples per sampler, seed {}.", args.seed),
        ],
    };
    let add = |results: &mut Results,
               sampler: String,
               seqs: &[Vec<u32>],
               nfe: Option<f64>,
               wall: f64|
     -> Result<(), Error> {
        let metrics = quality(&chain, &eval, seqs)?;
        results.rows.push(Row {
            model: model.clone(),
            sampler,
            metrics,
            nfe,
            wall_s: wall,
        });
        Ok(())
    };
    // distinct-n depends on the number of words pooled: the data row uses `n` held-out
    // windows, evenly spaced, like every sampler.
    let data_rows: Vec<Vec<u32>> = (0..n.min(heldout.len()))
        .map(|j| heldout[j * heldout.len() / n.min(heldout.len())].clone())
        .collect();
    add(&mut results, "data".into(), &data_rows, None, 0.0)?;
    let t0 = Instant::now();
    let draws = chain_draws(&chain, n, args.seed);
    add(
        &mut results,
        "markov-ancestral".into(),
        &draws,
        None,
        secs(t0),
    )?;

    let layout = |steps| LladaLayout {
        prompt_len: 0,
        gen_length: L,
        block_length: BLOCK,
        steps,
    };
    let mut runs: Vec<(String, SamplerConfig)> = Vec::new();
    // LLaDA with random order (`remasking='random'`: one token per step is then exact
    // ancestral sampling of the chain) and with low-confidence order, at temperature 1;
    // LLaDA's default greedy draw once; Fast-dLLM's threshold rule at temperature 1.
    let steps: &[usize] = if args.quick { &[16] } else { &[8, 16, 32, 64] };
    for (order, random) in [("random", true), ("lowconf", false)] {
        for &s in steps {
            let cfg = llada(mask, layout(s), 1.0, random)?;
            runs.push((format!("llada-{order}-T1-{s}"), cfg));
        }
    }
    if !args.quick {
        let cfg = llada(mask, layout(32), 0.0, false)?;
        runs.push(("llada-lowconf-greedy-32".into(), cfg));
    }
    let thresholds: &[f64] = if args.quick { &[0.9] } else { &[0.9, 0.5] };
    for &tau in thresholds {
        let cfg = fast_dllm_threshold(mask, layout(L / BLOCK), 1.0, tau)?;
        runs.push((format!("fast-dllm-thr{tau}-T1"), cfg));
    }
    // One driver run per sequence (streams[b] = b, the same numbers as one batched run),
    // so that an adaptive decoder's NFE is the sequence's own, not the batch maximum.
    let backend = CpuBackend::new();
    let mut examples = Vec::new();
    for (name, cfg) in runs {
        let pb = bar(n, &format!("{name} (sequences)"));
        let t0 = Instant::now();
        let out: Vec<(Vec<u32>, usize)> = (0..n as u64)
            .into_par_iter()
            .map(|b| {
                let mut x = Array2::from_elem((1, L), mask);
                let rep = run(
                    &mut NoHook(&denoiser),
                    &backend,
                    &cfg,
                    x.view_mut(),
                    None,
                    args.seed,
                    &[b],
                    &mut (),
                )?;
                pb.inc(1);
                Ok((x.into_raw_vec_and_offset().0, rep.nfe))
            })
            .collect::<Result<_, Error>>()?;
        let wall = secs(t0);
        pb.finish_and_clear();
        let nfe = out.iter().map(|o| o.1).sum::<usize>() as f64 / n as f64;
        let seqs: Vec<Vec<u32>> = out.into_iter().map(|o| o.0).collect();
        examples.push((name.clone(), show(&seqs[0])));
        add(&mut results, name, &seqs, Some(nfe), wall)?;
    }

    println!("\nsamples (first sequence of each sampler, newlines shown as ⏎):");
    println!(
        "  {:<26} {}",
        "markov-ancestral",
        show(&draws[0]).replace('\n', "⏎")
    );
    for (name, s) in &examples {
        println!("  {name:<26} {}", s.replace('\n', "⏎"));
    }
    println!("\nquality versus NFE ({corpus}):");
    results.print_table(&["nll_eval", "nll_model", "distinct_1", "distinct_2"]);
    let path = results
        .write()
        .map_err(|e| Error::invalid("results", e.to_string()))?;
    println!();
    results.print_notes();
    println!("\nwrote {}", path.display());
    Ok(())
}
