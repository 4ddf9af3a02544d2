//! The common token ↔ id table and the [`Codec`] trait every domain implements.
//!
//! A [`Vocabulary`] is an ordered list of distinct symbols; a symbol's id is its position.
//! Special tokens ([`Special`]: mask, pad, bos, eos) are ordinary entries with reserved
//! spellings (`<mask>`, `<pad>`, `<bos>`, `<eos>`); where they sit is chosen by the caller
//! (before or after the data symbols) and read back with [`Vocabulary::special`]. The mask
//! index is therefore always explicit, never assumed to be the last id (crate convention).

use std::collections::HashMap;

use crate::error::{Error, Result};

/// A reserved, non-data token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Special {
    /// The absorbing state of masked diffusion, spelled `<mask>`.
    Mask,
    /// Padding for batching sequences of unequal length, spelled `<pad>`.
    Pad,
    /// Beginning of sequence, spelled `<bos>`.
    Bos,
    /// End of sequence, spelled `<eos>`.
    Eos,
}

impl Special {
    /// The reserved spelling of this token.
    pub fn symbol(self) -> &'static str {
        match self {
            Special::Mask => "<mask>",
            Special::Pad => "<pad>",
            Special::Bos => "<bos>",
            Special::Eos => "<eos>",
        }
    }

    fn from_symbol(s: &str) -> Option<Special> {
        match s {
            "<mask>" => Some(Special::Mask),
            "<pad>" => Some(Special::Pad),
            "<bos>" => Some(Special::Bos),
            "<eos>" => Some(Special::Eos),
            _ => None,
        }
    }
}

/// An ordered table of distinct symbols: id `i` ↔ `symbols()[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocabulary {
    symbols: Vec<String>,
    index: HashMap<String, u32>,
    specials: [Option<u32>; 4],
}

fn slot(s: Special) -> usize {
    match s {
        Special::Mask => 0,
        Special::Pad => 1,
        Special::Bos => 2,
        Special::Eos => 3,
    }
}

impl Vocabulary {
    /// Data symbols in the given order followed by the `specials` in the given order.
    ///
    /// Errors if a symbol is empty, repeated, or spells a special token, if a special is
    /// repeated, or if the table has fewer than 2 entries (the crate's minimum `V`).
    pub fn new<I, S>(symbols: I, specials: &[Special]) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_layout(&[], symbols, specials)
    }

    /// `before` specials, then the data symbols, then the `after` specials.
    ///
    /// `Vocabulary::with_layout(&[Special::Mask], "ACGT".chars().map(String::from), &[])`
    /// puts the mask at id 0. Same errors as [`Vocabulary::new`].
    pub fn with_layout<I, S>(before: &[Special], symbols: I, after: &[Special]) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut v = Vocabulary {
            symbols: Vec::new(),
            index: HashMap::new(),
            specials: [None; 4],
        };
        for &s in before {
            v.push_special(s)?;
        }
        for sym in symbols {
            let sym: String = sym.into();
            if sym.is_empty() {
                return Err(Error::invalid("symbols", "empty symbol"));
            }
            if Special::from_symbol(&sym).is_some() {
                return Err(Error::invalid(
                    "symbols",
                    format!("data symbol {sym:?} spells a special token"),
                ));
            }
            v.push(sym)?;
        }
        for &s in after {
            v.push_special(s)?;
        }
        crate::validate::vocab("symbols", v.symbols.len())?;
        Ok(v)
    }

    fn push_special(&mut self, s: Special) -> Result<()> {
        if self.specials[slot(s)].is_some() {
            return Err(Error::invalid(
                "specials",
                format!("special token {} given twice", s.symbol()),
            ));
        }
        self.specials[slot(s)] = Some(self.symbols.len() as u32);
        self.push(s.symbol().to_string())
    }

    fn push(&mut self, sym: String) -> Result<()> {
        if self.index.contains_key(&sym) {
            return Err(Error::invalid(
                "symbols",
                format!("symbol {sym:?} appears twice"),
            ));
        }
        if self.symbols.len() >= u32::MAX as usize {
            return Err(Error::invalid("symbols", "more than u32::MAX symbols"));
        }
        self.index.insert(sym.clone(), self.symbols.len() as u32);
        self.symbols.push(sym);
        Ok(())
    }

    /// Number of entries `V` (data symbols and specials).
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// Always false: a vocabulary has at least two entries.
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// All entries, in id order.
    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }

    /// The id of a special token, if this vocabulary has it.
    pub fn special(&self, s: Special) -> Option<u32> {
        self.specials[slot(s)]
    }

    /// The mask id, or an error naming `vocab` if the vocabulary has no mask.
    pub fn mask_id(&self) -> Result<u32> {
        self.special(Special::Mask)
            .ok_or_else(|| Error::invalid("vocab", "vocabulary has no <mask> token"))
    }

    /// Whether `id` is one of the special tokens.
    pub fn is_special(&self, id: u32) -> bool {
        self.specials.contains(&Some(id))
    }

    /// The id of `symbol`, if present.
    pub fn get(&self, symbol: &str) -> Option<u32> {
        self.index.get(symbol).copied()
    }

    /// The id of `symbol`, or [`Error::InvalidArgument`] naming the unknown symbol.
    pub fn id(&self, symbol: &str) -> Result<u32> {
        self.get(symbol).ok_or_else(|| {
            Error::invalid(
                "symbol",
                format!("unknown symbol {symbol:?} (V = {})", self.len()),
            )
        })
    }

    /// The symbol with id `id`, or [`Error::TokenOutOfRange`].
    pub fn symbol(&self, id: u32) -> Result<&str> {
        crate::validate::token("id", id, self.len())?;
        Ok(&self.symbols[id as usize])
    }

    /// Ids of a sequence of symbols; the error names the position of the first unknown one.
    pub fn encode<'a, I>(&self, symbols: I) -> Result<Vec<u32>>
    where
        I: IntoIterator<Item = &'a str>,
    {
        symbols
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                self.get(s).ok_or_else(|| {
                    Error::invalid("symbols", format!("unknown symbol {s:?} at position {i}"))
                })
            })
            .collect()
    }

    /// Symbols of a sequence of ids, concatenated; errors on an id `≥ V`.
    pub fn decode_concat(&self, ids: &[u32]) -> Result<String> {
        crate::validate::tokens("ids", ids, self.len())?;
        Ok(ids
            .iter()
            .map(|&i| self.symbols[i as usize].as_str())
            .collect())
    }
}

/// A domain's text ↔ token-id conversion over its [`Vocabulary`].
pub trait Codec {
    /// The token table.
    fn vocab(&self) -> &Vocabulary;

    /// Token ids of `text`; any symbol the codec does not accept is an error naming it and
    /// its position. Special tokens are never produced.
    fn encode(&self, text: &str) -> Result<Vec<u32>>;

    /// Like [`Codec::encode`], but a record that the codec's policy says to *skip* gives
    /// `Ok(None)` instead of an error. Codecs without a skip policy encode strictly.
    fn encode_record(&self, text: &str) -> Result<Option<Vec<u32>>> {
        self.encode(text).map(Some)
    }

    /// The text of `ids`. Errors on an id `≥ V` and on special tokens, which have no text.
    fn decode(&self, ids: &[u32]) -> Result<String> {
        let v = self.vocab();
        crate::validate::tokens("ids", ids, v.len())?;
        if let Some(i) = ids.iter().position(|&t| v.is_special(t)) {
            return Err(Error::invalid(
                "ids",
                format!(
                    "special token {} at position {i} has no text",
                    v.symbols()[ids[i] as usize]
                ),
            ));
        }
        v.decode_concat(ids)
    }
}

/// [`Codec::encode`] of a codec with a skip policy, from its [`Codec::encode_record`]
/// result: a skipped record (`None`) is an error saying the text holds `what`.
pub(crate) fn skipped_is_error(record: Option<Vec<u32>>, what: &str) -> Result<Vec<u32>> {
    record.ok_or_else(|| {
        Error::invalid(
            "text",
            format!("sequence holds {what} (policy SkipRecord skips it)"),
        )
    })
}
