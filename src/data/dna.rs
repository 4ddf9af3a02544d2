//! DNA: the four bases `A C G T` and a policy for IUPAC ambiguity codes.
//!
//! Input is case-insensitive (`acgt` is read as `ACGT`; the BioMarKs amplicons are
//! lowercase). The IUPAC ambiguity codes `N R Y S W K M B D H V` are handled by an
//! [`AmbiguityPolicy`]; every other character (gaps `-`/`.`, `U`, digits, spaces) is always
//! an error, since the loaders hand over unaligned, whitespace-free DNA sequences.

use super::vocab::{Codec, Special, Vocabulary, skipped_is_error};
use crate::error::{Error, Result};

/// The IUPAC nucleotide ambiguity codes (NC-IUB 1985), upper case.
pub const IUPAC_AMBIGUITY: &str = "NRYSWKMBDHV";

/// What to do with a sequence that contains an IUPAC ambiguity code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AmbiguityPolicy {
    /// Every ambiguity code is an error naming the letter and its position.
    Reject,
    /// Drop the whole record: [`Codec::encode_record`] returns `Ok(None)` (and
    /// [`Codec::encode`] an error). The default: training sets keep only fully resolved
    /// reads, and no token of the model's alphabet stands for "unknown".
    #[default]
    SkipRecord,
    /// Map every ambiguity code to one dedicated token `N` (id 4, after `A C G T`).
    MapToN,
}

/// DNA codec: `A C G T` are ids `0..4`; with [`AmbiguityPolicy::MapToN`] `N` is id 4;
/// the requested specials follow.
#[derive(Debug, Clone)]
pub struct DnaCodec {
    policy: AmbiguityPolicy,
    vocab: Vocabulary,
}

impl DnaCodec {
    /// A codec with the given policy and special tokens appended after the bases.
    pub fn new(policy: AmbiguityPolicy, specials: &[Special]) -> Result<Self> {
        let mut syms = vec!["A", "C", "G", "T"];
        if policy == AmbiguityPolicy::MapToN {
            syms.push("N");
        }
        Ok(DnaCodec {
            policy,
            vocab: Vocabulary::new(syms, specials)?,
        })
    }

    /// The default codec for masked diffusion: [`AmbiguityPolicy::SkipRecord`] and a mask
    /// token (`A C G T <mask>`, mask id 4).
    pub fn masked() -> Self {
        // Four distinct bases and one special: cannot fail.
        Self::new(AmbiguityPolicy::SkipRecord, &[Special::Mask]).expect("fixed vocabulary")
    }

    /// The ambiguity policy.
    pub fn policy(&self) -> AmbiguityPolicy {
        self.policy
    }

    fn encode_inner(&self, text: &str) -> Result<Option<Vec<u32>>> {
        let mut out = Vec::with_capacity(text.len());
        for (i, c) in text.chars().enumerate() {
            let u = c.to_ascii_uppercase();
            let id = match u {
                'A' => 0,
                'C' => 1,
                'G' => 2,
                'T' => 3,
                _ if IUPAC_AMBIGUITY.contains(u) => match self.policy {
                    AmbiguityPolicy::Reject => {
                        return Err(Error::invalid(
                            "text",
                            format!("IUPAC ambiguity code {c:?} at position {i} (policy Reject)"),
                        ));
                    }
                    AmbiguityPolicy::SkipRecord => return Ok(None),
                    AmbiguityPolicy::MapToN => 4,
                },
                _ => {
                    return Err(Error::invalid(
                        "text",
                        format!("{c:?} at position {i} is not a DNA base or IUPAC code"),
                    ));
                }
            };
            out.push(id);
        }
        Ok(Some(out))
    }
}

impl Codec for DnaCodec {
    fn vocab(&self) -> &Vocabulary {
        &self.vocab
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        skipped_is_error(self.encode_inner(text)?, "an IUPAC ambiguity code")
    }

    fn encode_record(&self, text: &str) -> Result<Option<Vec<u32>>> {
        self.encode_inner(text)
    }
}

/// Cut `seq` into windows of `len` tokens every `stride` tokens (the last partial window is
/// dropped), as used to turn a genome into training examples.
pub fn windows(seq: &[u32], len: usize, stride: usize) -> Result<Vec<Vec<u32>>> {
    if len == 0 {
        return Err(Error::invalid("len", "window length 0"));
    }
    if stride == 0 {
        return Err(Error::invalid("stride", "stride 0"));
    }
    if seq.len() < len {
        return Ok(Vec::new());
    }
    Ok((0..=seq.len() - len)
        .step_by(stride)
        .map(|s| seq[s..s + len].to_vec())
        .collect())
}
