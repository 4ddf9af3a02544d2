//! SMILES: the Schwaller et al. (2019) tokenizer on known strings, and the validity
//! checker on known valid and invalid molecules.

use discrete_diffusion::data::datasets::molecules_default;
use discrete_diffusion::data::smiles_check::{BondKind, check_smiles, parse_smiles};
use discrete_diffusion::data::{Codec, SmilesCodec, Special, is_valid_smiles, tokenize_smiles};

#[test]
fn tokenizer_known_examples() {
    assert_eq!(
        tokenize_smiles("CC(=O)Oc1ccccc1C(=O)O").unwrap(),
        vec![
            "C", "C", "(", "=", "O", ")", "O", "c", "1", "c", "c", "c", "c", "c", "1", "C", "(",
            "=", "O", ")", "O"
        ]
    );
    assert_eq!(
        tokenize_smiles("Br[C@@H](Cl)c1cc[nH]c1%12").unwrap(),
        vec![
            "Br", "[C@@H]", "(", "Cl", ")", "c", "1", "c", "c", "[nH]", "c", "1", "%12"
        ]
    );
    assert_eq!(
        tokenize_smiles("[Na+].[O-]C(=O)C/C=C\\C").unwrap(),
        vec![
            "[Na+]", ".", "[O-]", "C", "(", "=", "O", ")", "C", "/", "C", "=", "C", "\\", "C"
        ]
    );
    // Characters outside the pattern are errors, not silently dropped.
    for bad in ["", "CXC", "C C", "C[NH", "Cä"] {
        assert!(tokenize_smiles(bad).is_err(), "{bad:?}");
    }
    let e = tokenize_smiles("CCX").unwrap_err().to_string();
    assert!(e.contains("'X'") && e.contains("byte 2"), "{e}");
}

#[test]
fn codec_fits_sorted_vocabulary() {
    let c = SmilesCodec::fit(["CCO", "c1ccccc1Cl"], &[Special::Mask]).unwrap();
    assert_eq!(c.vocab().symbols(), &["1", "C", "Cl", "O", "c", "<mask>"]);
    assert_eq!(c.encode("ClCO").unwrap(), vec![2, 1, 3]);
    assert!(c.encode("CN").is_err());
    assert!(SmilesCodec::fit(["CC", "C?X"], &[]).is_err());
    assert!(SmilesCodec::fit(Vec::<&str>::new(), &[]).is_err());
}

#[test]
fn valid_molecules() {
    for s in [
        "C",
        "CCO",
        "C=C",
        "C#N",
        "c1ccccc1",
        "c1ccc2ccccc2c1",
        "c1ccoc1",
        "c1cc[nH]c1",
        "Cn1ccnc1",
        "c1ccncc1",
        "O=c1cc[nH]cc1",
        "C[n+]1ccccc1",
        "[O-][n+]1ccccc1",
        "c1ccc(-c2ccccc2)cc1",
        "c1ccccc1c1ccccc1",
        "C1CC1",
        "C%12CC%12",
        "N[C@@H](C)C(=O)O",
        "F/C=C/F",
        "[Na+].[Cl-]",
        "[NH4+]",
        "CS(=O)(=O)N",
        "O=P(O)(O)O",
        "C[N+](C)(C)C",
        "[2H]C",
        "c1cc2cccc3c4cccc5cccc(c(c1)c23)c54",
        "C1=CC=CC=C1",
        "[CH3]",
        "*C",
        "OB(O)c1ccccc1",
        "c1ccc2c(c1)ccc1ccccc12",
        "c1ccsc1",
        "n1ccccc1",
        "c1cnc[nH]1",
        "C12CC1C2",
        "ClC(Cl)(Cl)Cl",
    ] {
        assert!(check_smiles(s).is_ok(), "{s}: {:?}", check_smiles(s));
    }
}

#[test]
fn invalid_molecules_with_reasons() {
    for (s, why) in [
        ("", "empty"),
        ("C(", "unclosed '('"),
        ("C)", "')'"),
        ("C()C", "empty branch"),
        ("(C)C", "'('"),
        ("C1CC", "never closed"),
        ("C11", "own atom"),
        ("C12CC12", "duplicates"),
        ("C=1CC-1", "conflicting"),
        ("C=", "ends with"),
        ("=C", "no atom before"),
        ("C==C", "two bond"),
        ("C..C", "'.'"),
        ("C.", "ends with"),
        ("CXC", "unexpected character"),
        ("C[Xx]", "element"),
        ("C[C", "malformed"),
        ("C%1C", "two digits"),
        ("C(=O)(=O)C", "valence"),
        ("FF(F)", "valence"),
        ("O=O=O", "valence"),
        ("C[N+](C)(C)(C)C", "valence"),
        ("c1cccc1", "Kekulé"),
        ("c1ccccc1c", "outside a ring"),
        ("c", "outside a ring"),
        ("C:C", "non-aromatic"),
    ] {
        let e = check_smiles(s).expect_err(s);
        assert!(e.reason.contains(why), "{s}: {e}");
    }
    assert!(!is_valid_smiles("c1ccccc1C(C)(C)(C)C"));
}

#[test]
fn graph_of_a_parse() {
    let g = parse_smiles("C1=CC=CC=C1O").unwrap();
    assert_eq!(g.atoms.len(), 7);
    assert_eq!(g.bonds.len(), 7);
    let doubles = g.bonds.iter().filter(|b| b.2 == BondKind::Double).count();
    assert_eq!(doubles, 3);
    let g = parse_smiles("c1ccccc1").unwrap();
    assert!(g.bonds.iter().all(|b| b.2 == BondKind::Aromatic));
    assert!(g.atoms.iter().all(|a| a.aromatic && a.element == "C"));
    let a = &parse_smiles("[13CH2-:7]").unwrap().atoms[0];
    assert_eq!((a.hcount, a.charge, a.bracket), (2, -1, true));
}

#[test]
fn every_embedded_molecule_is_valid() {
    let d = molecules_default().unwrap();
    assert!(d.len() == 10_000);
    for m in d.train.iter().chain(&d.heldout) {
        check_smiles(&m.smiles).unwrap_or_else(|e| panic!("{}: {e}", m.smiles));
    }
}

mod props {
    use discrete_diffusion::data::smiles_check::check_smiles;
    use proptest::prelude::*;

    proptest! {
        /// Arbitrary text (and SMILES-like noise) never panics the checker.
        #[test]
        fn checker_never_panics(s in "\\PC{0,60}", t in "[CNOcnos()=#123%\\[\\]H+@-]{0,60}") {
            let _ = check_smiles(&s);
            let _ = check_smiles(&t);
        }
    }
}
