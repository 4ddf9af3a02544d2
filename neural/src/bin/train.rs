//! Train the transformer denoiser on a real data set and compare its held-out NELBO with
//! order-k n-gram baselines; writes a Markdown report (`docs/neural.md` for proteins,
//! `docs/neural-smiles.md` for SMILES).
//!
//! ```text
//! cargo run --release -p discrete-diffusion-neural --bin train -- --dataset protein --minutes 11
//! cargo run --release -p discrete-diffusion-neural --bin train -- --dataset smiles --minutes 8
//! ```
//!
//! Options, with their defaults: `--dataset protein|smiles` (protein), `--data DIR`
//! (`../shared/data` from the repository root, else the nearest ancestor's `shared/data`),
//! `--minutes M` (5), `--steps N` (none), `--len L` (protein 128, smiles 57), `--d-model`
//! (128), `--layers` (2), `--heads` (4), `--batch` (protein 32, smiles 64), `--lr` (protein
//! 3e-3, smiles 2e-3), `--weighting time|count|token` (protein token, smiles time; see
//! `train::TrainWeighting`), `--test-seqs`
//! (1000), `--draws` (16), `--max-order` (protein 6, smiles 7), `--markov-train N` (all),
//! `--kmer K` (12, proteins: the shared-k-mer length of the homology clusters), `--seed` (0),
//! `--out FILE` (see above).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use discrete_diffusion::data::io::load_fasta;
use discrete_diffusion::data::is_heldout;
use discrete_diffusion::kernel::mixture::MixtureProcess;
use discrete_diffusion::model::markov::MarkovChainOracle;
use discrete_diffusion::model::oracle::{ExactPosterior, OracleDenoiser};
use discrete_diffusion::schedule::Linear;
use discrete_diffusion_neural::data::{CharVocab, encode_all, load_moses};
use discrete_diffusion_neural::model::{TransformerConfig, TransformerDenoiser};
use discrete_diffusion_neural::ngram::NGram;
use discrete_diffusion_neural::protein;
use discrete_diffusion_neural::train::{TrainConfig, TrainWeighting, Trainer, heldout_nelbo};

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[derive(Clone, Copy, PartialEq)]
enum Dataset {
    Protein,
    Smiles,
}

struct Args {
    dataset: Dataset,
    data: Option<PathBuf>,
    minutes: f64,
    steps: Option<usize>,
    len: usize,
    d_model: usize,
    layers: usize,
    heads: usize,
    batch: usize,
    lr: f64,
    weighting: TrainWeighting,
    test_seqs: usize,
    draws: usize,
    max_order: usize,
    markov_train: Option<usize>,
    kmer: usize,
    seed: u64,
    out: PathBuf,
}

fn parse() -> Res<(Args, String)> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let dataset = match raw.iter().position(|a| a == "--dataset") {
        Some(i) => match raw.get(i + 1).map(String::as_str) {
            Some("protein") => Dataset::Protein,
            Some("smiles") => Dataset::Smiles,
            other => return Err(format!("--dataset protein|smiles, got {other:?}").into()),
        },
        None => Dataset::Protein,
    };
    let prot = dataset == Dataset::Protein;
    let mut a = Args {
        dataset,
        data: None,
        minutes: 5.0,
        steps: None,
        len: if prot { 128 } else { 57 },
        d_model: 128,
        layers: 2,
        heads: 4,
        batch: if prot { 32 } else { 64 },
        lr: if prot { 3e-3 } else { 2e-3 },
        weighting: if prot {
            TrainWeighting::TokenMean
        } else {
            TrainWeighting::Time
        },
        test_seqs: 1000,
        draws: 16,
        max_order: if prot { 6 } else { 7 },
        markov_train: None,
        kmer: protein::DEFAULT_KMER,
        seed: 0,
        out: PathBuf::from(if prot {
            "docs/neural.md"
        } else {
            "docs/neural-smiles.md"
        }),
    };
    let mut it = raw.iter();
    while let Some(flag) = it.next() {
        let val = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dataset" => {}
            "--data" => a.data = Some(PathBuf::from(val)),
            "--minutes" => a.minutes = val.parse()?,
            "--steps" => a.steps = Some(val.parse()?),
            "--len" => a.len = val.parse()?,
            "--d-model" => a.d_model = val.parse()?,
            "--layers" => a.layers = val.parse()?,
            "--heads" => a.heads = val.parse()?,
            "--batch" => a.batch = val.parse()?,
            "--lr" => a.lr = val.parse()?,
            "--weighting" => {
                a.weighting = match val.as_str() {
                    "time" => TrainWeighting::Time,
                    "count" => TrainWeighting::MaskCount,
                    "token" => TrainWeighting::TokenMean,
                    other => {
                        return Err(format!("--weighting time|count|token, got {other}").into());
                    }
                }
            }
            "--test-seqs" => a.test_seqs = val.parse()?,
            "--draws" => a.draws = val.parse()?,
            "--max-order" => a.max_order = val.parse()?,
            "--markov-train" => a.markov_train = Some(val.parse()?),
            "--kmer" => a.kmer = val.parse()?,
            "--seed" => a.seed = val.parse()?,
            "--out" => a.out = PathBuf::from(val),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok((a, raw.join(" ")))
}

const MOSES_TRAIN: &str = "molecules/moses_train.csv.gz";
const MOSES_TEST: &str = "molecules/moses_test.csv.gz";
const UNIPROT: &str = "protein/mmseqs2_uniprot_DB.fasta.gz";

/// `../shared/data` from the repository root, else the nearest ancestor's `shared/data`.
fn find_data(file: &str) -> Res<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in root.canonicalize()?.ancestors() {
        let p = dir.join("shared/data");
        if p.join(file).exists() {
            return Ok(p);
        }
    }
    Err(format!("no shared/data/{file} above the repository; pass --data").into())
}

fn mean_se(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

/// Sequences of one data set, all of length `L`, and how they were made.
struct Prepared {
    train: Vec<Vec<u32>>,
    valid: Vec<Vec<u32>>,
    test: Vec<Vec<u32>>,
    /// Data vocabulary (without the mask).
    vd: usize,
    mask: u32,
    /// The "Data" paragraph of the report.
    description: String,
    /// Proteins: the best chain under a split by protein id (see [`id_split_markov`]).
    id_split: Option<String>,
}

/// Best order-k chain (c and k on validation) when the proteins are split by their own id
/// (10 % test, 10 % validation, as `data::is_heldout`) instead of by homology cluster: the
/// same windows, the same estimator. Returns the report's paragraph.
fn id_split_markov(proteins: &[protein::Protein], args: &Args) -> Res<String> {
    let l = args.len;
    let (mut tr, mut va, mut te) = (Vec::new(), Vec::new(), Vec::new());
    for p in proteins {
        if is_heldout(&p.id, 0.1)? {
            te.push(p.clone());
        } else if is_heldout(&p.id, 0.2)? {
            va.push(p.clone());
        } else {
            tr.push(p.clone());
        }
    }
    let (train, valid) = (protein::all_windows(&tr, l), protein::all_windows(&va, l));
    let mut test = protein::one_window_each(&te, l);
    test.truncate(args.test_seqs);
    let mut rows = Vec::new();
    let mut best = (f64::INFINITY, 0, 0.0, 0.0);
    for k in 0..=args.max_order {
        let (m, bk) = fit_chain(&train, &valid, k, protein::LETTERS)?;
        let t: f64 = test
            .iter()
            .map(|x| m.log_prob(x).map(|lp| -lp))
            .sum::<Result<f64, _>>()?
            / test.len() as f64;
        let bits = |n: f64| n / std::f64::consts::LN_2 / l as f64;
        rows.push(format!("k = {k}: {:.4}", bits(t)));
        if bk.0 < best.0 {
            best = (bk.0, k, bk.1, bits(t));
        }
    }
    Ok(format!(
        "With a split by protein id instead of by cluster (10 % / 10 % by `data::is_heldout` on each id, one \
         window per test protein, {} test windows), the chains' test NELBO is {} bits/token; the best on \
         validation is order {} (c = {}) at {:.4} bits/token: held-out proteins then have close homologs in the \
         training set and high-order counts retrieve them. That is why the split here is by homology cluster.",
        test.len(),
        rows.join(", "),
        best.1,
        best.2,
        best.3
    ))
}

/// The add-c pseudocounts the order-k chains are tuned over.
const PSEUDOCOUNTS: [f64; 6] = [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0];

/// The order-`k` chain fitted by counting on `train`, with the pseudocount of
/// [`PSEUDOCOUNTS`] that minimises the mean validation NLL; returns it with
/// `(valid nats/sequence, c)`.
fn fit_chain(
    train: &[Vec<u32>],
    valid: &[Vec<u32>],
    k: usize,
    vocab: usize,
) -> Res<(NGram, (f64, f64))> {
    let mut m = NGram::fit(train.iter(), k, vocab, PSEUDOCOUNTS[0])?;
    let mut best = (f64::INFINITY, PSEUDOCOUNTS[0]);
    for c in PSEUDOCOUNTS {
        m.set_pseudocount(c)?;
        let nll: f64 = valid
            .iter()
            .map(|x| m.log_prob(x).map(|lp| -lp))
            .sum::<Result<f64, _>>()?
            / valid.len() as f64;
        if nll < best.0 {
            best = (nll, c);
        }
    }
    m.set_pseudocount(best.1)?;
    Ok((m, best))
}

fn prepare_smiles(args: &Args, data: &Path) -> Res<Prepared> {
    let l = args.len;
    let train_txt = load_moses(&data.join(MOSES_TRAIN), None)?;
    let test_txt = load_moses(&data.join(MOSES_TEST), Some(args.test_seqs))?;
    let vocab = CharVocab::from_texts(&train_txt)?;
    let (mut train, dropped_train) = encode_all(&vocab, &train_txt, l);
    let valid = train.split_off(train.len().saturating_sub(10_000));
    let (test, dropped_test) = encode_all(&vocab, &test_txt, l);
    let description = format!(
        "* Data: MOSES SMILES (`{MOSES_TRAIN}`, `{MOSES_TEST}` of `shared/data`, MIT). \
         {} characters plus an end token, padded to L = {l} tokens (SMILES longer than {l}: {dropped_train} \
         training and {dropped_test} test strings dropped), mask token = {}, V = {}. \
         {} training sequences; the last 10,000 of the training file are a validation split (choice of k and c); \
         the first {} of the test split are the held-out set. Bits/token count the end-padding tokens too.",
        vocab.chars().len(),
        vocab.mask_token(),
        vocab.model_vocab(),
        train.len(),
        test.len()
    );
    Ok(Prepared {
        train,
        valid,
        test,
        vd: vocab.data_vocab(),
        mask: vocab.mask_token(),
        description,
        id_split: None,
    })
}

fn prepare_protein(args: &Args, data: &Path) -> Res<Prepared> {
    let l = args.len;
    let records = load_fasta(data.join(UNIPROT))?;
    let proteins = protein::encode_records(&records)?;
    let n_prot = proteins.len();
    let id_split = Some(id_split_markov(&proteins, args)?);
    let residues: usize = proteins.iter().map(|p| p.tokens.len()).sum();
    let roots = protein::homology_clusters(&proteins, args.kmer)?;
    let split = protein::split_by_cluster(proteins, &roots, 0.1, 0.1)?;
    let train = protein::all_windows(&split.train, l);
    let valid = protein::all_windows(&split.valid, l);
    let mut test = protein::one_window_each(&split.test, l);
    let test_prot = test.len();
    test.truncate(args.test_seqs);
    let kept = (train.len() + valid.len() + protein::all_windows(&split.test, l).len()) * l;
    let description = format!(
        "* Data: UniProtKB sample `{UNIPROT}` of `shared/data` ({n_prot} proteins, {residues} residues; CC BY 4.0). \
         Letters: the crate's `data::ProteinCodec` with `ExtrasPolicy::MapToX` (20 standard amino acids, and `X` for \
         every `B Z J X U O`), mask token = {}, V = {}. Sequences: non-overlapping windows of exactly L = {l} residues \
         from each protein's N-terminus; the shorter tail (and proteins shorter than {l}) dropped, so every token is a \
         residue and bits/token = bits/residue ({kept} of {residues} residues kept). \
         Split by homology cluster (`neural::protein`): proteins sharing a {}-mer with ≥ 5 distinct residues are \
         linked, single-linkage clusters ({} clusters, the largest {} proteins) go whole to test (10 %), validation \
         (10 %) or training by the hash of their smallest id: {} / {} / {} proteins, {} training and {} validation \
         windows. Held-out set: one window per test protein (window number = id hash mod #windows, so the windows \
         are independent), the first {} of {test_prot}. Network and baselines see exactly the same windows.",
        protein::MASK_TOKEN,
        protein::LETTERS + 1,
        args.kmer,
        split.clusters,
        split.largest,
        split.train.len(),
        split.valid.len(),
        split.test.len(),
        train.len(),
        valid.len(),
        test.len()
    );
    Ok(Prepared {
        train,
        valid,
        test,
        vd: protein::LETTERS,
        mask: protein::MASK_TOKEN,
        description,
        id_split,
    })
}

fn main() -> Res<()> {
    let (args, argline) = parse()?;
    let (file, name) = match args.dataset {
        Dataset::Protein => (UNIPROT, "protein"),
        Dataset::Smiles => (MOSES_TRAIN, "smiles"),
    };
    let data = match &args.data {
        Some(d) => d.clone(),
        None => find_data(file)?,
    };
    let t0 = Instant::now();
    let l = args.len;
    let prep = match args.dataset {
        Dataset::Protein => prepare_protein(&args, &data)?,
        Dataset::Smiles => prepare_smiles(&args, &data)?,
    };
    let Prepared {
        train,
        valid,
        test,
        vd,
        mask,
        description,
        id_split,
    } = prep;
    let v = vd + 1;
    if train.is_empty() || valid.is_empty() || test.len() < 2 {
        return Err("empty split: check --len and the data".into());
    }
    eprintln!(
        "data ({name}): {} train, {} valid, {} test sequences of length {l}; V = {v} ({:.0} s)",
        train.len(),
        valid.len(),
        test.len(),
        t0.elapsed().as_secs_f64()
    );
    let to_bits = |nats: f64| nats / std::f64::consts::LN_2;
    let markov_train = &train[..args.markov_train.unwrap_or(train.len()).min(train.len())];

    // ---- n-gram baselines: k = 0..=max_order, c chosen on the validation split.
    let mut markov = Vec::new(); // (k, c, valid nats/seq, test per-seq nats, #ngrams)
    for k in 0..=args.max_order {
        let (m, best) = fit_chain(markov_train, &valid, k, vd)?;
        let test_nll: Vec<f64> = test
            .iter()
            .map(|x| m.log_prob(x).map(|lp| -lp))
            .collect::<Result<_, _>>()?;
        eprintln!(
            "order {k}: c = {}, valid {:.4} bits/token, test {:.4} bits/token ({:.0} s)",
            best.1,
            to_bits(best.0) / l as f64,
            to_bits(mean_se(&test_nll).0) / l as f64,
            t0.elapsed().as_secs_f64()
        );
        markov.push((k, best.1, best.0, test_nll, m.num_ngrams()));
    }
    let best_k = markov
        .iter()
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .map(|r| r.0)
        .unwrap_or(0);

    // ---- proteins: the exchangeable composition model (Dirichlet-multinomial), exact; a
    // non-Markov reference that uses the window's own amino-acid composition.
    let composition = if args.dataset == Dataset::Protein {
        let mut pi = vec![0f64; vd];
        train.iter().flatten().for_each(|&t| pi[t as usize] += 1.0);
        let tot: f64 = pi.iter().sum();
        pi.iter_mut()
            .for_each(|p| *p = (*p + 1.0) / (tot + vd as f64));
        let nll = |set: &[Vec<u32>], a: f64| -> Res<Vec<f64>> {
            Ok(set
                .iter()
                .map(|x| protein::composition_nll(x, &pi, a))
                .collect::<Result<_, _>>()?)
        };
        let mut best = (f64::INFINITY, 0.0);
        for a in [10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0] {
            let m = mean_se(&nll(&valid, a)?).0;
            if m < best.0 {
                best = (m, a);
            }
        }
        let t = nll(&test, best.1)?;
        eprintln!(
            "composition a = {}: valid {:.4}, test {:.4} bits/token",
            best.1,
            to_bits(best.0) / l as f64,
            to_bits(mean_se(&t).0) / l as f64
        );
        Some((best.1, best.0, t))
    } else {
        None
    };

    // ---- the crate's MarkovChainOracle: the same numbers for small k, and the Monte Carlo
    // NELBO estimator (the one used for the network) on its exact posterior.
    let mut oracle_rows = Vec::new(); // (k, max |Δ log p|, exact mean, MC mean, MC se)
    let n_mc = 100.min(test.len());
    for row in markov.iter().filter(|r| (1..=2).contains(&r.0)) {
        let (k, c) = (row.0, row.1);
        let chain = MarkovChainOracle::fit(markov_train.iter(), k, vd, l, c)?;
        let ids: Vec<u32> = (0..vd as u32).collect();
        let chain = chain.embed(&ids, v)?;
        let max_diff = test
            .iter()
            .zip(&row.3)
            .map(|(x, ngram_nll)| Ok((chain.log_prob_x0(x)? + ngram_nll).abs()))
            .collect::<Res<Vec<f64>>>()?
            .into_iter()
            .fold(0.0, f64::max);
        let mut pi = vec![0.0; v];
        pi[mask as usize] = 1.0;
        let oracle = OracleDenoiser::new(chain, MixtureProcess::from_schedule(pi, Linear::new())?)?;
        let mc = heldout_nelbo(&oracle, &test[..n_mc], mask, args.draws, args.seed + 1, 64)?;
        let exact = mean_se(&row.3[..n_mc]).0;
        let (mc_m, mc_se) = mean_se(
            &mc.iter()
                .zip(&row.3[..n_mc])
                .map(|(a, b)| a - b)
                .collect::<Vec<_>>(),
        );
        eprintln!(
            "oracle order {k}: max |Δ log p| = {max_diff:.2e}, MC − exact = {mc_m:.3} ± {mc_se:.3} nats/seq"
        );
        oracle_rows.push((k, max_diff, exact, exact + mc_m, mc_se));
    }

    // ---- the network.
    let cfg = TransformerConfig {
        vocab: v,
        mask_token: mask,
        seq_len: l,
        d_model: args.d_model,
        n_layers: args.layers,
        n_heads: args.heads,
        d_ff: 4 * args.d_model,
    };
    let model = TransformerDenoiser::new(cfg, args.seed)?;
    let params = model.num_params();
    let tc = TrainConfig {
        batch_size: args.batch,
        lr: args.lr,
        seed: args.seed,
        weighting: args.weighting,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(model, tc)?;
    let mut curve = Vec::new();
    let mut acc = (0.0, 0usize);
    let t_train = Instant::now();
    let secs = trainer.train(&train, args.steps, args.minutes * 60.0, |s, loss| {
        acc.0 += loss;
        acc.1 += 1;
        if s % 50 == 0 || s <= 3 {
            let avg = acc.0 / acc.1 as f64;
            eprintln!(
                "step {s}: train loss {:.4} bits/token ({:.0} s)",
                to_bits(avg),
                t_train.elapsed().as_secs_f64()
            );
            curve.push((s, to_bits(avg)));
            acc = (0.0, 0);
        }
    })?;
    let steps = trainer.steps();
    let model = trainer.into_model();
    let t_eval = Instant::now();
    let nn = heldout_nelbo(&model, &test, mask, args.draws, args.seed + 1, 64)?;
    let eval_secs = t_eval.elapsed().as_secs_f64();
    let (nn_m, nn_se) = mean_se(&nn);
    let best = &markov[best_k];
    let diff: Vec<f64> = nn.iter().zip(&best.3).map(|(a, b)| a - b).collect();
    let (d_m, d_se) = mean_se(&diff);
    eprintln!(
        "network: {:.4} ± {:.4} bits/token; best n-gram (k = {best_k}) {:.4}; difference {:.4} ± {:.4}",
        to_bits(nn_m) / l as f64,
        to_bits(nn_se) / l as f64,
        to_bits(mean_se(&best.3).0) / l as f64,
        to_bits(d_m) / l as f64,
        to_bits(d_se) / l as f64
    );

    // ---- the report.
    let loss_desc = match args.weighting {
        TrainWeighting::Time => {
            "`w(t) Σ_masked CE / L` with `ElboWeight::Elbo` (= 1/t), equal to `loss::masked::masked_diffusion_loss` / L \
             (`neural/tests/loss.rs`)"
        }
        TrainWeighting::MaskCount => {
            "`(1/n) Σ_masked CE` with n the realised number of masked tokens (`train::TrainWeighting::MaskCount`: \
             unbiased for NELBO/(L + 1) since n is uniform on {0, …, L} under t ~ U[0, 1], so it has the NELBO's \
             minimiser; dividing by the realised n removes its Binomial fluctuation around tL from the weight)"
        }
        TrainWeighting::TokenMean => {
            "the plain mean CE over all masked tokens of the batch (`train::TrainWeighting::TokenMean`: not \
             proportional to the NELBO, but each term is minimised by the exact posterior p(x_0^i | x_t), so its \
             minimiser is the NELBO's; the lowest-variance choice. The evaluation below is the true NELBO)"
        }
    };
    let bt = |nats: f64| to_bits(nats) / l as f64;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut md = String::new();
    writeln!(
        md,
        "# A trained neural denoiser against order-k Markov baselines ({})\n",
        if args.dataset == Dataset::Protein {
            "UniProt proteins"
        } else {
            "MOSES SMILES"
        }
    )?;
    writeln!(
        md,
        "Generated by `cargo run --release -p discrete-diffusion-neural --bin train -- {argline}` \
         (the `neural/` workspace member, candle on the CPU, {threads} hardware threads shared with other jobs); \
         do not edit by hand.\n"
    )?;
    writeln!(md, "## Setup\n")?;
    writeln!(md, "{description}")?;
    writeln!(
        md,
        "* Network: bidirectional transformer, d = {}, {} layers, {} heads, MLP {}, learned positions, no time input \
         (RADD), SUBS logits; {params} parameters. Training: absorbing diffusion α(t) = 1 − t, corruption by \
         `train::corrupt::corrupt_batch` (Philox counter RNG, MDLM antithetic times, t_min = 1e-3), loss \
         {loss_desc}; AdamW (lr {}, batch {}, warm-up 50, cosine to lr/10), {steps} steps in {secs:.0} s.",
        args.d_model,
        args.layers,
        args.heads,
        4 * args.d_model,
        args.lr,
        args.batch
    )?;
    writeln!(
        md,
        "* Held-out NELBO of the network: `train::elbo::ElboDraws` with LLaDA's k-stratified mask counts, {} draws \
         per sequence, through the `Denoiser` trait ({eval_secs:.0} s). It is unbiased for the model's NELBO; ± is \
         the standard error over the held-out sequences.",
        args.draws
    )?;
    writeln!(
        md,
        "* Baselines: order-k n-gram chains fitted by counting on the training split (add-c smoothing, c from \
         {{0.001, 0.01, 0.1, 1, 10, 100}} chosen on the validation split), `neural::ngram::NGram`, identical to \
         `model::markov::MarkovChainOracle::fit` (checked below). For absorbing diffusion with the exact \
         posterior the NELBO equals −log p(x), so the baselines' numbers are exact.\n"
    )?;
    writeln!(md, "## Held-out NELBO ({} test sequences)\n", test.len())?;
    writeln!(
        md,
        "| model | parameters | train time | bits/token | bits/sequence |"
    )?;
    writeln!(md, "|---|---|---|---|---|")?;
    writeln!(
        md,
        "| transformer (MDLM NELBO, MC) | {params} | {secs:.0} s | {:.4} ± {:.4} | {:.2} ± {:.2} |",
        bt(nn_m),
        bt(nn_se),
        to_bits(nn_m),
        to_bits(nn_se)
    )?;
    for (k, c, vnll, tnll, ngr) in &markov {
        let (m, se) = mean_se(tnll);
        let tag = if *k == best_k {
            " **(best on validation)**"
        } else {
            ""
        };
        writeln!(
            md,
            "| order-{k} Markov, c = {c} (exact; valid {:.4}){tag} | {ngr} n-grams | counting | {:.4} ± {:.4} | {:.2} ± {:.2} |",
            bt(*vnll),
            bt(m),
            bt(se),
            to_bits(m),
            to_bits(se)
        )?;
    }
    if let Some((a, vnll, tnll)) = &composition {
        let (m, se) = mean_se(tnll);
        writeln!(
            md,
            "| composition (Dirichlet-multinomial, a = {a}, exact; valid {:.4}; not Markov) | {vd} | counting | {:.4} ± {:.4} | {:.2} ± {:.2} |",
            bt(*vnll),
            bt(m),
            bt(se),
            to_bits(m),
            to_bits(se)
        )?;
    }
    let z = d_m / d_se;
    let verdict = if z < -3.0 {
        format!(
            "the network's held-out NELBO is LOWER than the best Markov baseline's, by {:.1} standard errors",
            -z
        )
    } else if d_m < 0.0 {
        format!(
            "the network's held-out NELBO is lower than the best Markov baseline's, but only by {:.1} standard \
             errors (not a clear win)",
            -z
        )
    } else {
        "the network does NOT beat the best Markov baseline".to_string()
    };
    writeln!(
        md,
        "\nPaired difference network − order-{best_k} Markov on the same sequences: {:.4} ± {:.4} bits/token \
         ({:.2} ± {:.2} bits/sequence): {verdict}.\n",
        bt(d_m),
        bt(d_se),
        to_bits(d_m),
        to_bits(d_se)
    )?;
    if let Some((_, _, tnll)) = &composition {
        let cd: Vec<f64> = nn.iter().zip(tnll).map(|(a, b)| a - b).collect();
        let (cm, cse) = mean_se(&cd);
        writeln!(
            md,
            "The composition row is the exchangeable Pólya-urn model `p(x_i | x_<i) = (n_<i(x_i) + a π(x_i))/(i + a)` \
             (π: training unigram, a chosen on validation; `neural::protein::composition_nll`): it uses only the \
             window's own amino-acid composition, which no Markov chain can, and shows that this signal alone is \
             worth about as much as the local context of the best chain. Paired difference network − composition: \
             {:.4} ± {:.4} bits/token.\n",
            bt(cm),
            bt(cse)
        )?;
    }
    if let Some(p) = &id_split {
        writeln!(md, "{p}\n")?;
    }
    writeln!(md, "## The same estimator on the exact Markov posterior\n")?;
    writeln!(
        md,
        "`MarkovChainOracle::fit` (the crate's dense chain) on the same data agrees with the sparse n-gram, and the \
         Monte Carlo estimator used for the network, run on `OracleDenoiser` (forward–backward posteriors), \
         reproduces the exact −log p(x) ({n_mc} test sequences, {} draws each):\n",
        args.draws
    )?;
    writeln!(
        md,
        "| order | max abs. Δ log p (dense vs sparse) | exact bits/token | MC bits/token (± s.e. of MC − exact) |"
    )?;
    writeln!(md, "|---|---|---|---|")?;
    for (k, dmax, ex, mc, se) in &oracle_rows {
        writeln!(
            md,
            "| {k} | {dmax:.1e} | {:.4} | {:.4} ± {:.4} |",
            bt(*ex),
            bt(*mc),
            bt(*se)
        )?;
    }
    writeln!(
        md,
        "\n## Training curve (mean training loss since the previous row, bits/token)\n"
    )?;
    writeln!(md, "| step | loss |")?;
    writeln!(md, "|---|---|")?;
    let stride = (curve.len() / 12).max(1);
    for (i, (s, lo)) in curve.iter().enumerate() {
        if i % stride == 0 || i + 1 == curve.len() {
            writeln!(md, "| {s} | {lo:.4} |")?;
        }
    }
    let curve_note = match args.weighting {
        TrainWeighting::Time => {
            "a one-sample NELBO estimate of the training batch with `w = 1/t` (high variance), per token"
        }
        TrainWeighting::MaskCount => {
            "a one-sample estimate of NELBO/(L + 1) of the training batch (mask-count weights)"
        }
        TrainWeighting::TokenMean => {
            "the mean masked-token cross entropy of the training batch; it weights high mask rates more \
             than the NELBO does, so it is not comparable with the held-out NELBO"
        }
    };
    writeln!(
        md,
        "\nThe training loss is {curve_note}; the held-out numbers above use the unbiased, low-variance \
         k-stratified mask-count estimator of the true NELBO.\n"
    )?;
    std::fs::write(&args.out, md)?;
    eprintln!(
        "wrote {} ({:.0} s in all)",
        args.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
