//! Alphabets, tokenizers, loaders and fixed splits for real data.
//!
//! * [`vocab`]: the common [`Vocabulary`] (token ↔ id, explicit special tokens) and the
//!   [`Codec`] trait (text ↔ ids with clear errors);
//! * domain codecs: [`dna`] (ACGT + IUPAC policy), [`protein`] (20 + extended letters
//!   policy), [`smiles`] (Schwaller et al. 2019 regex), [`selfies`] (symbols and the
//!   SELFIES → SMILES decoder), [`selfies_encode`] (SMILES → SELFIES), [`text`] (bytes,
//!   fitted characters);
//! * [`smiles_check`]: a SMILES parser and validity checker (syntax, ring closures,
//!   valence, kekulization of aromatic systems);
//! * [`io`]: FASTA (plain or gzip), CSV (plain or gzip) and text loaders;
//! * [`split`]: the fixed held-out split by a hash of the record id, and [`Dataset`];
//! * [`datasets`]: the embedded default data sets (small licence-clean subsets, see
//!   `data/README.md`) and loaders of the full sets from a path.
//!
//! See `docs/data.md` for the policies, the data provenance and the split.

pub mod datasets;
pub mod dna;
mod graph;
pub mod io;
pub mod protein;
pub mod selfies;
pub mod selfies_encode;
pub mod smiles;
pub mod smiles_check;
pub mod split;
pub mod text;
pub mod vocab;

pub use dna::{AmbiguityPolicy, DnaCodec};
pub use io::Record;
pub use protein::{ExtrasPolicy, ProteinCodec};
pub use selfies::{SelfiesCodec, decode_selfies, split_selfies};
pub use selfies_encode::encode_selfies;
pub use smiles::{SmilesCodec, tokenize_smiles};
pub use smiles_check::{SmilesError, check_smiles, is_valid_smiles};
pub use split::{Dataset, is_heldout};
pub use text::{ByteCodec, CharCodec};
pub use vocab::{Codec, Special, Vocabulary};
