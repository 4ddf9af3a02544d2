//! Vocabularies and codecs: round trips (proptest), special-token layout, ambiguity and
//! extended-letter policies, bad input.

use discrete_diffusion::Error;
use discrete_diffusion::data::dna::{DnaCodec, windows};
use discrete_diffusion::data::protein::{ExtrasPolicy, ProteinCodec};
use discrete_diffusion::data::{
    AmbiguityPolicy, ByteCodec, CharCodec, Codec, SmilesCodec, Special, Vocabulary,
};
use proptest::prelude::*;

#[test]
fn vocabulary_layout_and_specials() {
    let v = Vocabulary::with_layout(&[Special::Mask], ["a", "b"], &[Special::Pad, Special::Eos])
        .unwrap();
    assert_eq!(v.len(), 5);
    assert_eq!(v.mask_id().unwrap(), 0);
    assert_eq!(v.special(Special::Pad), Some(3));
    assert_eq!(v.special(Special::Bos), None);
    assert_eq!(v.id("b").unwrap(), 2);
    assert_eq!(v.symbol(4).unwrap(), "<eos>");
    assert!(v.is_special(0) && !v.is_special(1));
    assert!(matches!(
        v.symbol(5),
        Err(Error::TokenOutOfRange {
            token: 5,
            vocab: 5,
            ..
        })
    ));
    assert!(v.id("z").is_err());
    let e = v.encode(["a", "q"]).unwrap_err().to_string();
    assert!(e.contains("\"q\"") && e.contains("position 1"), "{e}");
    // No mask: an explicit error, never a guessed index.
    assert!(Vocabulary::new(["a", "b"], &[]).unwrap().mask_id().is_err());
}

#[test]
fn vocabulary_rejects_bad_tables() {
    assert!(Vocabulary::new(["a", "a"], &[]).is_err());
    assert!(Vocabulary::new(["a"], &[]).is_err());
    assert!(Vocabulary::new(["a", ""], &[]).is_err());
    assert!(Vocabulary::new(["a", "<mask>"], &[]).is_err());
    assert!(Vocabulary::new(["a", "b"], &[Special::Mask, Special::Mask]).is_err());
}

#[test]
fn dna_policies() {
    let skip = DnaCodec::masked();
    assert_eq!(skip.policy(), AmbiguityPolicy::SkipRecord);
    assert_eq!(skip.vocab().len(), 5);
    assert_eq!(skip.vocab().mask_id().unwrap(), 4);
    assert_eq!(skip.encode("acgT").unwrap(), vec![0, 1, 2, 3]);
    assert_eq!(skip.encode_record("ACNT").unwrap(), None);
    assert!(skip.encode("ACNT").is_err());

    let reject = DnaCodec::new(AmbiguityPolicy::Reject, &[]).unwrap();
    let e = reject.encode_record("ACRT").unwrap_err().to_string();
    assert!(e.contains("'R'") && e.contains("position 2"), "{e}");

    let map = DnaCodec::new(AmbiguityPolicy::MapToN, &[Special::Mask]).unwrap();
    assert_eq!(map.encode("AYNk").unwrap(), vec![0, 4, 4, 4]);
    assert_eq!(map.vocab().mask_id().unwrap(), 5);
    assert_eq!(map.decode(&[0, 4, 3]).unwrap(), "ANT");

    // Not IUPAC at all: an error under every policy.
    for c in [&skip, &reject, &map] {
        for bad in ["AC-T", "ACUT", "AC T", "AC1"] {
            assert!(c.encode_record(bad).is_err(), "{bad}");
        }
    }
    assert!(skip.decode(&[4]).is_err(), "mask has no text");
    assert!(skip.decode(&[9]).is_err());
}

#[test]
fn dna_windows() {
    let s: Vec<u32> = (0..10).collect();
    let w = windows(&s, 4, 3).unwrap();
    assert_eq!(
        w,
        vec![vec![0, 1, 2, 3], vec![3, 4, 5, 6], vec![6, 7, 8, 9]]
    );
    assert!(windows(&s, 11, 1).unwrap().is_empty());
    assert!(windows(&s, 0, 1).is_err() && windows(&s, 2, 0).is_err());
}

#[test]
fn protein_policies() {
    let keep = ProteinCodec::masked();
    assert_eq!(keep.vocab().len(), 27);
    assert_eq!(keep.vocab().mask_id().unwrap(), 26);
    assert_eq!(keep.encode("ACY").unwrap(), vec![0, 1, 19]);
    assert_eq!(keep.encode("XBZJUO").unwrap(), vec![20, 21, 22, 23, 24, 25]);
    // One trailing stop is dropped; an inner stop or a gap is an error.
    assert_eq!(keep.encode("mk*").unwrap(), keep.encode("MK").unwrap());
    assert!(keep.encode("M*K").is_err() && keep.encode("M-K").is_err());

    let to_x = ProteinCodec::new(ExtrasPolicy::MapToX, &[]).unwrap();
    assert_eq!(to_x.vocab().len(), 21);
    assert_eq!(to_x.encode("BUO").unwrap(), vec![20, 20, 20]);
    let skip = ProteinCodec::new(ExtrasPolicy::SkipRecord, &[]).unwrap();
    assert_eq!(skip.encode_record("AXA").unwrap(), None);
    assert_eq!(skip.encode_record("AA").unwrap(), Some(vec![0, 0]));
    let reject = ProteinCodec::new(ExtrasPolicy::Reject, &[]).unwrap();
    assert!(reject.encode_record("AZ").is_err());
}

#[test]
fn text_codecs() {
    let b = ByteCodec::new(&[Special::Mask, Special::Eos]).unwrap();
    assert_eq!(b.vocab().len(), 258);
    assert_eq!(b.vocab().mask_id().unwrap(), 256);
    assert_eq!(b.encode("é").unwrap(), vec![0xC3, 0xA9]);
    assert!(b.decode(&[0xC3]).is_err(), "not UTF-8");
    assert!(b.decode(&[256]).is_err() && b.decode(&[999]).is_err());

    let c = CharCodec::fit("banana", &[Special::Mask]).unwrap();
    assert_eq!(c.vocab().symbols(), &["a", "b", "n", "<mask>"]);
    assert_eq!(c.encode("nab").unwrap(), vec![2, 0, 1]);
    let e = c.encode("bat").unwrap_err().to_string();
    assert!(e.contains("'t'") && e.contains("position 2"), "{e}");
    assert!(
        CharCodec::fit("aaa", &[]).is_err(),
        "one symbol is not a vocabulary"
    );
}

proptest! {
    #[test]
    fn dna_round_trip(s in "[ACGT]{0,200}") {
        let c = DnaCodec::masked();
        prop_assert_eq!(c.decode(&c.encode(&s).unwrap()).unwrap(), s);
    }

    #[test]
    fn dna_lowercase_is_uppercase(s in "[acgt]{1,100}") {
        let c = DnaCodec::masked();
        prop_assert_eq!(c.encode(&s).unwrap(), c.encode(&s.to_uppercase()).unwrap());
    }

    #[test]
    fn protein_round_trip(s in "[ACDEFGHIKLMNPQRSTVWYXBZJUO]{0,200}") {
        let c = ProteinCodec::masked();
        prop_assert_eq!(c.decode(&c.encode(&s).unwrap()).unwrap(), s);
    }

    #[test]
    fn byte_round_trip(s in any::<String>()) {
        let c = ByteCodec::new(&[Special::Mask]).unwrap();
        prop_assert_eq!(c.decode(&c.encode(&s).unwrap()).unwrap(), s);
    }

    #[test]
    fn char_round_trip(s in "\\PC{2,80}") {
        let c = CharCodec::fit(&s, &[Special::Mask]);
        if let Ok(c) = c {
            prop_assert_eq!(c.decode(&c.encode(&s).unwrap()).unwrap(), s);
        }
    }

    #[test]
    fn smiles_round_trip(s in "(C|c|N|n|O|Cl|Br|\\[nH\\]|\\[C@@H\\]|=|#|\\(|\\)|1|2|%12|\\.){1,60}") {
        let c = SmilesCodec::fit([s.as_str()], &[Special::Mask]).unwrap();
        prop_assert_eq!(c.decode(&c.encode(&s).unwrap()).unwrap(), s);
    }
}
