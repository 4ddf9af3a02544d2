//! SELFIES: tokenizer, codec, and the decoder against pairs produced by the reference
//! `selfies` 2.2.0 package (`tests/fixtures/data/selfies_pairs.tsv`: documentation
//! examples, 150 MOSES molecules and 250 random symbol strings, some with `.`).

use discrete_diffusion::data::datasets::molecules_default;
use discrete_diffusion::data::selfies::{bonding_capacity, decode_selfies, split_selfies};
use discrete_diffusion::data::smiles_check::{check_smiles, parse_smiles};
use discrete_diffusion::data::{Codec, SelfiesCodec, Special};

fn pairs() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/data/selfies_pairs.tsv"
    ))
    .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let mut f = l.split('\t');
            let k = f.next().unwrap().to_string();
            let a = f.next().unwrap().to_string();
            let b = f.next().unwrap_or("").to_string();
            (k, a, b)
        })
        .collect()
}

#[test]
fn decoder_matches_reference_on_every_fixture_pair() {
    let ps = pairs();
    assert!(ps.len() >= 400);
    let mut bad = Vec::new();
    for (kind, sf, smi) in &ps {
        let got = decode_selfies(sf).unwrap();
        if &got != smi {
            bad.push(format!("{kind}: {sf} -> {got} (want {smi})"));
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad[..bad.len().min(10)].join("\n")
    );
}

#[test]
fn documented_examples() {
    assert_eq!(decode_selfies("[C][=C][F]").unwrap(), "C=CF");
    assert_eq!(
        decode_selfies("[C][=C][C][=C][C][=C][Ring1][=Branch1]").unwrap(),
        "C1=CC=CC=C1"
    );
    // Over-capacity bonds are clipped: F takes one bond, so derivation stops.
    assert_eq!(decode_selfies("[F][=C][C]").unwrap(), "FCC");
    assert_eq!(decode_selfies("[C][F][C]").unwrap(), "CF");
    // A ring onto an existing bond raises its order; a ring at the first atom is skipped.
    assert_eq!(decode_selfies("[C][C][Ring1][C]").unwrap(), "C=C");
    assert_eq!(decode_selfies("[N][Ring1][C]").unwrap(), "N");
    // A branch at state <= 1 is skipped and reads no index symbol.
    assert_eq!(decode_selfies("[C][Branch1][C][C]").unwrap(), "CC");
    assert_eq!(decode_selfies("").unwrap(), "");
    assert_eq!(decode_selfies("[C][nop][O]").unwrap(), "CO");
    assert_eq!(decode_selfies("[C].[O]").unwrap(), "C.O");
    assert_eq!(bonding_capacity("C", 0), 4);
    assert_eq!(bonding_capacity("Fe", 2), 8);
}

#[test]
fn decoded_molecules_are_valid_smiles() {
    // Valid by construction: every decoded string parses as SMILES; decoded drug-like
    // molecules also pass the chemistry checks (random strings may hold charged
    // hypervalent atoms that the SELFIES default constraints allow and RDKit's do not).
    for (kind, sf, _) in pairs() {
        let smi = decode_selfies(&sf).unwrap();
        if smi.is_empty() {
            continue;
        }
        parse_smiles(&smi).unwrap_or_else(|e| panic!("{sf} -> {smi}: {e}"));
        if kind != "random" {
            check_smiles(&smi).unwrap_or_else(|e| panic!("{sf} -> {smi}: {e}"));
        }
    }
}

#[test]
fn embedded_selfies_decode_to_the_same_heavy_atoms_as_their_smiles() {
    let d = molecules_default().unwrap();
    for m in d.train.iter().take(500) {
        let sf = m.selfies.as_deref().unwrap();
        let dec = check_smiles(&decode_selfies(sf).unwrap()).unwrap();
        let orig = check_smiles(&m.smiles).unwrap();
        let count = |g: &discrete_diffusion::data::smiles_check::SmilesGraph| {
            let mut v: Vec<_> = g.atoms.iter().map(|a| a.element.clone()).collect();
            v.sort();
            v
        };
        assert_eq!(count(&dec), count(&orig), "{} / {sf}", m.smiles);
        assert_eq!(dec.bonds.len(), orig.bonds.len(), "{}", m.smiles);
    }
}

#[test]
fn tokenizer_and_codec() {
    assert_eq!(
        split_selfies("[C][=C].[Cl]").unwrap(),
        vec!["[C]", "[=C]", ".", "[Cl]"]
    );
    let c = SelfiesCodec::fit(["[C][=C][F]", "[O][C]"], &[Special::Mask]).unwrap();
    assert_eq!(c.vocab().len(), 5);
    assert_eq!(c.vocab().mask_id().unwrap(), 4);
    let ids = c.encode("[F][C][=C]").unwrap();
    assert_eq!(c.decode(&ids).unwrap(), "[F][C][=C]");
    assert!(c.encode("[N]").is_err());
}

#[test]
fn malformed_input_is_an_error() {
    for bad in [
        "[C",
        "C[O]",
        "[C]x",
        "[]",
        "[C[O]]",
        "[Xy]",
        "[CH9]",
        "[=Branch4]",
    ] {
        assert!(decode_selfies(bad).is_err(), "{bad}");
    }
    let deep = "[C][C][Branch1][C]".repeat(3000);
    let _ = decode_selfies(&deep); // no panic either way
}

mod props {
    use discrete_diffusion::data::selfies::decode_selfies;
    use discrete_diffusion::data::smiles_check::parse_smiles;
    use proptest::prelude::*;

    const ALPHABET: [&str; 24] = [
        "[C]",
        "[=C]",
        "[#C]",
        "[N]",
        "[=N]",
        "[O]",
        "[=O]",
        "[F]",
        "[Cl]",
        "[S]",
        "[=S]",
        "[P]",
        "[B]",
        "[N+1]",
        "[O-1]",
        "[C@@H1]",
        "[Ring1]",
        "[=Ring1]",
        "[Ring2]",
        "[Branch1]",
        "[=Branch1]",
        "[Branch2]",
        "[#Branch1]",
        ".",
    ];

    proptest! {
        /// Every string over the robust alphabet decodes, and to well-formed SMILES.
        #[test]
        fn any_symbol_string_decodes_to_smiles(ix in proptest::collection::vec(0usize..24, 0..80)) {
            let s: String = ix.iter().map(|&i| ALPHABET[i]).collect();
            let smi = decode_selfies(&s).unwrap();
            if !smi.is_empty() && !smi.starts_with('.') && !smi.ends_with('.') && !smi.contains("..") {
                prop_assert!(parse_smiles(&smi).is_ok(), "{} -> {}", s, smi);
            }
        }

        /// Arbitrary text never panics the decoder.
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,60}") {
            let _ = decode_selfies(&s);
        }
    }
}
