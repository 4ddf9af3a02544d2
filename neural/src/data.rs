//! Character vocabularies and dataset loaders (std + `flate2` only).
//!
//! A sequence of characters `c_0 … c_{n−1}` (`n ≤ L`) becomes `L` tokens: the character ids
//! followed by `L − n` copies of the end token, so every example has the fixed length `L`
//! the transformer needs and the end of a SMILES string is modelled too. Token ids:
//! `0..C` the characters (sorted), `C` the end/pad token, `C + 1` the mask token; the model
//! vocabulary is `V = C + 2`, the data vocabulary `C + 1`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use discrete_diffusion::{Error, Result};

/// A character vocabulary with an end/pad token and a mask token (module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct CharVocab {
    chars: Vec<char>,
}

impl CharVocab {
    /// The vocabulary of the characters occurring in `texts` (sorted).
    ///
    /// Errors: no character at all.
    pub fn from_texts<S: AsRef<str>>(texts: &[S]) -> Result<Self> {
        let set: BTreeSet<char> = texts.iter().flat_map(|s| s.as_ref().chars()).collect();
        if set.is_empty() {
            return Err(Error::invalid("texts", "no characters"));
        }
        Ok(CharVocab {
            chars: set.into_iter().collect(),
        })
    }

    /// The characters, in id order.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The end/pad token `C`.
    pub fn end_token(&self) -> u32 {
        self.chars.len() as u32
    }

    /// The mask token `C + 1`.
    pub fn mask_token(&self) -> u32 {
        self.chars.len() as u32 + 1
    }

    /// Number of data tokens `C + 1` (characters and the end token).
    pub fn data_vocab(&self) -> usize {
        self.chars.len() + 1
    }

    /// Model vocabulary `V = C + 2` (with the mask).
    pub fn model_vocab(&self) -> usize {
        self.chars.len() + 2
    }

    /// `text` as `len` tokens, end-padded; `None` if it is longer than `len` or contains a
    /// character outside the vocabulary.
    pub fn encode(&self, text: &str, len: usize) -> Option<Vec<u32>> {
        let mut out = Vec::with_capacity(len);
        for c in text.chars() {
            out.push(self.chars.binary_search(&c).ok()? as u32);
        }
        if out.len() > len {
            return None;
        }
        out.resize(len, self.end_token());
        Some(out)
    }

    /// Tokens back to text: characters up to the first end token; the mask shows as `_`.
    pub fn decode(&self, tokens: &[u32]) -> String {
        tokens
            .iter()
            .take_while(|&&t| t != self.end_token())
            .map(|&t| self.chars.get(t as usize).copied().unwrap_or('_'))
            .collect()
    }
}

/// Lines of a file, gunzipped when the name ends in `.gz`.
///
/// Errors: the file cannot be opened or read (reported as an invalid `path`).
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    let io = |e: std::io::Error| Error::invalid("path", format!("{}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(io)?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    BufReader::new(reader)
        .lines()
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io)
}

/// SMILES strings of a MOSES split (`moses_train.csv.gz`, `moses_test.csv.gz`): one per
/// line after the `SMILES` header, at most `limit` of them (all if `None`).
///
/// Errors: those of [`read_lines`]; a file whose first line is not `SMILES`.
pub fn load_moses(path: &Path, limit: Option<usize>) -> Result<Vec<String>> {
    let lines = read_lines(path)?;
    match lines.first() {
        Some(h) if h.trim() == "SMILES" => {}
        other => {
            return Err(Error::invalid(
                "path",
                format!(
                    "{}: expected the header `SMILES`, found {other:?}",
                    path.display()
                ),
            ));
        }
    }
    Ok(lines
        .into_iter()
        .skip(1)
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .take(limit.unwrap_or(usize::MAX))
        .collect())
}

/// Encode every text of length `≤ len` (and in the vocabulary); returns the sequences and
/// the number of texts dropped.
pub fn encode_all<S: AsRef<str>>(
    vocab: &CharVocab,
    texts: &[S],
    len: usize,
) -> (Vec<Vec<u32>>, usize) {
    let seqs: Vec<Vec<u32>> = texts
        .iter()
        .filter_map(|t| vocab.encode(t.as_ref(), len))
        .collect();
    let dropped = texts.len() - seqs.len();
    (seqs, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let v = CharVocab::from_texts(&["CC(=O)O", "c1ccccc1"]).unwrap();
        assert_eq!(v.model_vocab(), v.chars().len() + 2);
        let x = v.encode("CC(=O)O", 10).unwrap();
        assert_eq!(x.len(), 10);
        assert_eq!(x[9], v.end_token());
        assert_eq!(v.decode(&x), "CC(=O)O");
        assert!(v.encode("CC(=O)O", 3).is_none());
        assert!(v.encode("Xe", 5).is_none());
    }
}
