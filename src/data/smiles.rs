//! SMILES: the atom-level tokenizer of Schwaller et al. (2019) and a fitted vocabulary.
//!
//! The tokenizer is the regular expression of the Molecular Transformer (Schwaller et al.,
//! *ACS Cent. Sci.* 5, 1572, 2019): a bracket atom `[...]` is one token, `Br`/`Cl` are one
//! token, a two-digit ring bond `%nn` is one token, and every other symbol (organic atom,
//! aromatic atom, bond, branch, ring digit, `.`) is one character. Unlike the usual
//! `re.findall`, characters the expression does not match are not dropped: they are an
//! error naming the position, so `decode(encode(s)) == s` for every accepted string.
//! Syntax and valence are checked separately by [`super::smiles_check`].

use std::collections::BTreeSet;
use std::sync::OnceLock;

use regex::Regex;

use super::vocab::{Codec, Special, Vocabulary};
use crate::error::{Error, Result};

/// The Schwaller et al. (2019) SMILES token pattern.
pub const SMILES_REGEX: &str = r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|/|:|~|@|\?|>|\*|\$|%[0-9]{2}|[0-9])";

fn regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(SMILES_REGEX).expect("valid SMILES regex"))
}

/// Split `smiles` into tokens. Errors on the empty string and on any character the
/// pattern does not cover (e.g. `X`, a space, an unclosed `[`).
pub fn tokenize_smiles(smiles: &str) -> Result<Vec<&str>> {
    if smiles.is_empty() {
        return Err(Error::invalid("smiles", "empty SMILES"));
    }
    let mut out = Vec::new();
    let mut at = 0;
    for m in regex().find_iter(smiles) {
        if m.start() != at {
            return Err(untokenizable(smiles, at));
        }
        out.push(m.as_str());
        at = m.end();
    }
    if at != smiles.len() {
        return Err(untokenizable(smiles, at));
    }
    Ok(out)
}

fn untokenizable(smiles: &str, at: usize) -> Error {
    let c = smiles[at..].chars().next().unwrap_or('?');
    Error::invalid(
        "smiles",
        format!("{c:?} at byte {at} of {smiles:?} is not a SMILES token"),
    )
}

/// A SMILES codec over a fixed token vocabulary.
#[derive(Debug, Clone)]
pub struct SmilesCodec {
    vocab: Vocabulary,
}

impl SmilesCodec {
    /// A codec over the given token list (specials appended after it).
    pub fn new<I, S>(tokens: I, specials: &[Special]) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Ok(SmilesCodec {
            vocab: Vocabulary::new(tokens, specials)?,
        })
    }

    /// The vocabulary of every token in `corpus`, in lexicographic (byte) order, followed by
    /// `specials`. Errors on an empty corpus or a string that does not tokenize.
    pub fn fit<'a, I>(corpus: I, specials: &[Special]) -> Result<Self>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut set = BTreeSet::new();
        for (i, s) in corpus.into_iter().enumerate() {
            let toks = tokenize_smiles(s)
                .map_err(|e| Error::invalid("corpus", format!("record {i}: {e}")))?;
            set.extend(toks);
        }
        if set.is_empty() {
            return Err(Error::invalid("corpus", "no SMILES to fit a vocabulary on"));
        }
        Self::new(set, specials)
    }
}

impl Codec for SmilesCodec {
    fn vocab(&self) -> &Vocabulary {
        &self.vocab
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.vocab.encode(tokenize_smiles(text)?)
    }
}
