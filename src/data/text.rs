//! Text: byte-level and character-level codecs.
//!
//! [`ByteCodec`] maps each UTF-8 byte to its value (ids `0..256`), so every string encodes
//! and the vocabulary never needs fitting; decoding errors if the bytes are not UTF-8.
//! [`CharCodec`] is fitted on a corpus: one token per distinct Unicode scalar value, in
//! code-point order, so the same corpus always gives the same ids.

use std::collections::BTreeSet;

use super::vocab::{Codec, Special, Vocabulary};
use crate::error::{Error, Result};

/// Byte-level codec: ids `0..256` are the byte values, specials follow from 256.
#[derive(Debug, Clone)]
pub struct ByteCodec {
    vocab: Vocabulary,
}

impl ByteCodec {
    /// The 256 byte tokens (spelled `<0x00>` … `<0xFF>`) and the given specials after them.
    pub fn new(specials: &[Special]) -> Result<Self> {
        Ok(ByteCodec {
            vocab: Vocabulary::new((0..=255u8).map(|b| format!("<0x{b:02X}>")), specials)?,
        })
    }
}

impl Codec for ByteCodec {
    fn vocab(&self) -> &Vocabulary {
        &self.vocab
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(text.bytes().map(u32::from).collect())
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        let mut bytes = Vec::with_capacity(ids.len());
        for (i, &t) in ids.iter().enumerate() {
            if t >= 256 {
                crate::validate::token("ids", t, self.vocab.len())?;
                return Err(Error::invalid(
                    "ids",
                    format!("special token id {t} at position {i} has no text"),
                ));
            }
            bytes.push(t as u8);
        }
        String::from_utf8(bytes)
            .map_err(|e| Error::invalid("ids", format!("bytes are not UTF-8: {e}")))
    }
}

/// Character-level codec with a fitted vocabulary.
#[derive(Debug, Clone)]
pub struct CharCodec {
    vocab: Vocabulary,
}

impl CharCodec {
    /// One token per distinct character of `corpus`, in code-point order, then `specials`.
    /// Errors if the corpus has fewer than two distinct characters and no specials.
    pub fn fit(corpus: &str, specials: &[Special]) -> Result<Self> {
        let set: BTreeSet<char> = corpus.chars().collect();
        Ok(CharCodec {
            vocab: Vocabulary::new(set.into_iter().map(String::from), specials)?,
        })
    }
}

impl Codec for CharCodec {
    fn vocab(&self) -> &Vocabulary {
        &self.vocab
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut buf = [0u8; 4];
        text.chars()
            .enumerate()
            .map(|(i, c)| {
                self.vocab.get(c.encode_utf8(&mut buf)).ok_or_else(|| {
                    Error::invalid(
                        "text",
                        format!("character {c:?} at position {i} is not in the fitted vocabulary"),
                    )
                })
            })
            .collect()
    }
}
