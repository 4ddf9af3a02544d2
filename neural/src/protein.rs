//! Protein windows with a homology-aware train/validation/test split.
//!
//! * Letters: the crate's [`ProteinCodec`] with [`ExtrasPolicy::MapToX`] — the 20 standard
//!   amino acids (ids `0..20`, alphabetical) and `X` (id 20) for every extended letter
//!   (`B Z J X U O`: ambiguous or non-standard residues, 0.03 % of the UniProt sample), then
//!   the mask (id 21). The data vocabulary is 21, the model vocabulary 22.
//! * Sequences: each protein is cut into non-overlapping windows of exactly `L` consecutive
//!   residues from its N-terminus ([`windows`]); the tail shorter than `L` (and every protein
//!   shorter than `L`) is dropped, so every token is a residue and bits/token = bits/residue.
//! * Split by homology cluster ([`homology_clusters`], [`split_by_cluster`]): two proteins are
//!   linked when they share a `K`-mer (default 12) with at least 5 distinct residues and no
//!   `X` (low-complexity repeats such as poly-Q would otherwise chain unrelated proteins);
//!   clusters are the connected components (single linkage). A cluster is named by its
//!   lexicographically smallest protein id, and the whole cluster goes to test, validation or
//!   training by the crate's id hash ([`is_heldout`]: test iff `h < f_test`, validation iff
//!   `f_test ≤ h < f_test + f_valid`). No protein — and no protein sharing a 12-mer with it —
//!   has windows in two splits. The split is a function of the sequences and ids only, not
//!   of the file order.
//!
//! Why clusters and not ids: UniProt holds many close homologs (fragments of the same viral
//! polyprotein, orthologs). With a split by id, a held-out window usually has a homolog in
//! the training set and high-order count models win by retrieval (order-6 chains reach
//! 3.3 bits/residue against 4.18 for the unigram); with the cluster split they do not, and
//! the comparison measures modelling, not look-up.

use std::collections::HashMap;

use discrete_diffusion::data::io::Record;
use discrete_diffusion::data::split::id_hash;
use discrete_diffusion::data::{Codec, ExtrasPolicy, ProteinCodec, Special, is_heldout};
use discrete_diffusion::{Error, Result};

use crate::ngram::CodeHasher;

/// Number of residue letters (20 standard + `X`).
pub const LETTERS: usize = 21;
/// The id of `X` (every extended letter).
pub const X_TOKEN: u32 = 20;
/// The mask token.
pub const MASK_TOKEN: u32 = 21;
/// Default shared-`K`-mer length of [`homology_clusters`].
pub const DEFAULT_KMER: usize = 12;
/// Minimum number of distinct residues of a linking `K`-mer.
pub const MIN_DISTINCT: u32 = 5;

/// The codec: [`ExtrasPolicy::MapToX`] and a mask after the 21 letters.
pub fn codec() -> ProteinCodec {
    ProteinCodec::new(ExtrasPolicy::MapToX, &[Special::Mask]).expect("fixed vocabulary")
}

/// A protein: its FASTA id and its residues as tokens `< 21`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protein {
    /// FASTA id (the header's first word).
    pub id: String,
    /// Residue tokens.
    pub tokens: Vec<u32>,
}

/// Encode FASTA records with [`codec`].
///
/// Errors: a record with a character that is not an amino-acid letter (its id is named).
pub fn encode_records(records: &[Record]) -> Result<Vec<Protein>> {
    let c = codec();
    records
        .iter()
        .map(|r| {
            let tokens = c
                .encode(&r.seq)
                .map_err(|e| Error::invalid("records", format!("protein {:?}: {e}", r.id)))?;
            Ok(Protein {
                id: r.id.clone(),
                tokens,
            })
        })
        .collect()
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Single-linkage clusters of proteins sharing a `k`-mer (module docs): `out[n]` is the
/// smallest index in protein `n`'s cluster.
///
/// Errors: `k = 0`, `k > 14` (the `k`-mer code must fit 64 bits), a token `≥ 21`.
pub fn homology_clusters(proteins: &[Protein], k: usize) -> Result<Vec<usize>> {
    if k == 0 || k > 14 {
        return Err(Error::invalid("k", format!("{k} ∉ [1, 14]")));
    }
    let mut parent: Vec<usize> = (0..proteins.len()).collect();
    let mut first: HashMap<u64, usize, std::hash::BuildHasherDefault<CodeHasher>> =
        HashMap::default();
    for (n, p) in proteins.iter().enumerate() {
        if let Some(i) = p.tokens.iter().position(|&t| t as usize >= LETTERS) {
            return Err(Error::TokenOutOfRange {
                arg: "proteins",
                index: i,
                token: p.tokens[i] as u64,
                vocab: LETTERS,
            });
        }
        for w in p.tokens.windows(k) {
            let seen = w.iter().fold(0u32, |s, &t| s | 1 << t);
            if seen.count_ones() < MIN_DISTINCT || seen & (1 << X_TOKEN) != 0 {
                continue;
            }
            let code = w.iter().fold(0u64, |h, &t| h * LETTERS as u64 + t as u64);
            let f = *first.entry(code).or_insert(n);
            let (a, b) = (find(&mut parent, f), find(&mut parent, n));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    Ok((0..proteins.len()).map(|i| find(&mut parent, i)).collect())
}

/// Proteins of the three splits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProteinSplit {
    /// Training proteins.
    pub train: Vec<Protein>,
    /// Validation proteins (choice of hyper-parameters).
    pub valid: Vec<Protein>,
    /// Test proteins (the reported numbers).
    pub test: Vec<Protein>,
    /// Number of clusters.
    pub clusters: usize,
    /// Size of the largest cluster.
    pub largest: usize,
}

/// Split whole clusters (`roots` from [`homology_clusters`]) by the id hash of each
/// cluster's smallest id (module docs). Order within a split is input order.
///
/// Errors: `roots` of another length or with an index out of range; fractions outside
/// `[0, 1]` or summing to more than 1.
pub fn split_by_cluster(
    proteins: Vec<Protein>,
    roots: &[usize],
    test_fraction: f64,
    valid_fraction: f64,
) -> Result<ProteinSplit> {
    if roots.len() != proteins.len() || roots.iter().any(|&r| r >= proteins.len()) {
        return Err(Error::invalid(
            "roots",
            format!(
                "{} roots for {} proteins (or an index out of range)",
                roots.len(),
                proteins.len()
            ),
        ));
    }
    if !(0.0..=1.0).contains(&(test_fraction + valid_fraction)) || valid_fraction < 0.0 {
        return Err(Error::invalid(
            "valid_fraction",
            format!("{test_fraction} + {valid_fraction} ∉ [0, 1]"),
        ));
    }
    let mut name: HashMap<usize, &str> = HashMap::new();
    for (p, &r) in proteins.iter().zip(roots) {
        let e = name.entry(r).or_insert(&p.id);
        if p.id.as_str() < *e {
            *e = &p.id;
        }
    }
    let mut sizes: HashMap<usize, usize> = HashMap::new();
    roots
        .iter()
        .for_each(|&r| *sizes.entry(r).or_default() += 1);
    let mut dest = Vec::with_capacity(proteins.len());
    for &r in roots {
        let id = name[&r];
        dest.push(if is_heldout(id, test_fraction)? {
            2
        } else if is_heldout(id, test_fraction + valid_fraction)? {
            1
        } else {
            0
        });
    }
    let mut s = ProteinSplit {
        clusters: sizes.len(),
        largest: sizes.values().copied().max().unwrap_or(0),
        ..ProteinSplit::default()
    };
    for (p, d) in proteins.into_iter().zip(dest) {
        match d {
            2 => s.test.push(p),
            1 => s.valid.push(p),
            _ => s.train.push(p),
        }
    }
    Ok(s)
}

/// The non-overlapping windows of exactly `len` residues of `tokens`, from the start; the
/// tail shorter than `len` is dropped (module docs). `len = 0` gives no windows.
pub fn windows(tokens: &[u32], len: usize) -> Vec<Vec<u32>> {
    if len == 0 {
        return Vec::new();
    }
    tokens.chunks_exact(len).map(<[u32]>::to_vec).collect()
}

/// All windows of all `proteins`.
pub fn all_windows(proteins: &[Protein], len: usize) -> Vec<Vec<u32>> {
    proteins
        .iter()
        .flat_map(|p| windows(&p.tokens, len))
        .collect()
}

/// One window per protein that has at least one: window number `id_hash(id) mod n` (a fixed
/// function of the id), so the held-out windows come from distinct proteins and are
/// independent draws for the standard error.
pub fn one_window_each(proteins: &[Protein], len: usize) -> Vec<Vec<u32>> {
    proteins
        .iter()
        .filter_map(|p| {
            let mut w = windows(&p.tokens, len);
            if w.is_empty() {
                return None;
            }
            let j = (id_hash(&p.id) % w.len() as u64) as usize;
            Some(w.swap_remove(j))
        })
        .collect()
}

/// `−ln p(x)` under the exchangeable Dirichlet-multinomial ("composition") model with
/// prior mean `pi` (over `pi.len()` tokens) and concentration `a > 0`, by the Pólya urn:
///
/// ```text
/// p(x) = Π_i (n_{<i}(x_i) + a π(x_i)) / (i + a),     n_{<i}(v) = #{j < i : x_j = v}.
/// ```
///
/// It is the same in every order, so it is also this model's exact absorbing-diffusion
/// NELBO (every unmasking order is a chain-rule factorisation). A non-Markov reference: it
/// uses the window's own composition, which a Markov chain cannot.
///
/// Errors: `a` not finite and `> 0`; a `π` entry negative or not finite; a token
/// `≥ pi.len()`; a zero `π` entry that is used.
pub fn composition_nll(x: &[u32], pi: &[f64], a: f64) -> Result<f64> {
    if !(a.is_finite() && a > 0.0) {
        return Err(Error::invalid("a", format!("{a} must be finite and > 0")));
    }
    if let Some((v, p)) = pi
        .iter()
        .enumerate()
        .find(|(_, p)| !(p.is_finite() && **p >= 0.0))
    {
        return Err(Error::invalid(
            "pi",
            format!("π({v}) = {p} must be finite and ≥ 0"),
        ));
    }
    let mut n = vec![0f64; pi.len()];
    let mut nll = 0.0;
    for (i, &t) in x.iter().enumerate() {
        let Some(&p) = pi.get(t as usize) else {
            return Err(Error::TokenOutOfRange {
                arg: "x",
                index: i,
                token: t as u64,
                vocab: pi.len(),
            });
        };
        let q = (n[t as usize] + a * p) / (i as f64 + a);
        if q <= 0.0 {
            return Err(Error::ZeroProbability {
                what: format!("composition model: π({t}) = 0 at position {i}"),
            });
        }
        nll -= q.ln();
        n[t as usize] += 1.0;
    }
    Ok(nll)
}
