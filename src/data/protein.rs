//! Proteins: the 20 standard amino acids and a policy for the extended IUPAC letters.
//!
//! Input is case-insensitive. The extended letters are `B` (Asx: D or N), `Z` (Glx: E or
//! Q), `J` (Xle: I or L), `X` (unknown), `U` (selenocysteine) and `O` (pyrrolysine); their
//! fate is set by [`ExtrasPolicy`]. A single trailing `*` (translation stop, as in Prodigal
//! `.faa` output) is removed before encoding; a `*` anywhere else, gaps (`-`, `.`) and every
//! other character are errors.

use super::vocab::{Codec, Special, Vocabulary, skipped_is_error};
use crate::error::{Error, Result};

/// The 20 standard amino acids in alphabetical one-letter order (ids `0..20`).
pub const STANDARD: &str = "ACDEFGHIKLMNPQRSTVWY";
/// The extended letters, in the order they take ids `20..26` under [`ExtrasPolicy::Keep`].
pub const EXTRAS: &str = "XBZJUO";

/// What to do with a sequence containing `B Z J X U O`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExtrasPolicy {
    /// Each extended letter is its own token (ids 20..26 = `X B Z J U O`). The default, as
    /// in the ESM and EvoDiff protein vocabularies: no record is lost and nothing is guessed.
    #[default]
    Keep,
    /// Every extended letter becomes `X` (id 20).
    MapToX,
    /// Drop the record ([`Codec::encode_record`] gives `Ok(None)`).
    SkipRecord,
    /// An extended letter is an error naming it and its position.
    Reject,
}

/// Protein codec: standard letters, then the extras the policy keeps, then the specials.
#[derive(Debug, Clone)]
pub struct ProteinCodec {
    policy: ExtrasPolicy,
    vocab: Vocabulary,
}

impl ProteinCodec {
    /// A codec with the given policy and specials appended after the letters.
    pub fn new(policy: ExtrasPolicy, specials: &[Special]) -> Result<Self> {
        let mut syms: Vec<String> = STANDARD.chars().map(String::from).collect();
        match policy {
            ExtrasPolicy::Keep => syms.extend(EXTRAS.chars().map(String::from)),
            ExtrasPolicy::MapToX => syms.push("X".into()),
            _ => {}
        }
        Ok(ProteinCodec {
            policy,
            vocab: Vocabulary::new(syms, specials)?,
        })
    }

    /// [`ExtrasPolicy::Keep`] with a mask token (26 letters, mask id 26).
    pub fn masked() -> Self {
        Self::new(ExtrasPolicy::Keep, &[Special::Mask]).expect("fixed vocabulary")
    }

    /// The policy for extended letters.
    pub fn policy(&self) -> ExtrasPolicy {
        self.policy
    }

    fn encode_inner(&self, text: &str) -> Result<Option<Vec<u32>>> {
        let body = text.strip_suffix('*').unwrap_or(text);
        let mut out = Vec::with_capacity(body.len());
        for (i, c) in body.chars().enumerate() {
            let u = c.to_ascii_uppercase();
            if let Some(p) = STANDARD.find(u) {
                out.push(p as u32);
                continue;
            }
            if c.is_ascii() && EXTRAS.contains(u) {
                match self.policy {
                    ExtrasPolicy::Keep => out.push(20 + EXTRAS.find(u).unwrap_or(0) as u32),
                    ExtrasPolicy::MapToX => out.push(20),
                    ExtrasPolicy::SkipRecord => return Ok(None),
                    ExtrasPolicy::Reject => {
                        return Err(Error::invalid(
                            "text",
                            format!(
                                "extended amino-acid letter {c:?} at position {i} (policy Reject)"
                            ),
                        ));
                    }
                }
                continue;
            }
            return Err(Error::invalid(
                "text",
                format!("{c:?} at position {i} is not an amino-acid letter"),
            ));
        }
        Ok(Some(out))
    }
}

impl Codec for ProteinCodec {
    fn vocab(&self) -> &Vocabulary {
        &self.vocab
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        skipped_is_error(self.encode_inner(text)?, "an extended amino-acid letter")
    }

    fn encode_record(&self, text: &str) -> Result<Option<Vec<u32>>> {
        self.encode_inner(text)
    }
}
