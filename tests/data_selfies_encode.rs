//! The SELFIES encoder against the reference: the embedded MOSES molecules ship with the
//! SELFIES that `selfies.encoder` 2.2.0 wrote for them.

use discrete_diffusion::data::datasets::molecules_default;
use discrete_diffusion::data::{decode_selfies, encode_selfies};

#[test]
fn encoder_matches_reference_on_embedded_molecules() {
    let d = molecules_default().unwrap();
    let mut bad = Vec::new();
    let mut n = 0;
    for m in d.train.iter().chain(&d.heldout) {
        n += 1;
        let want = m.selfies.as_deref().unwrap();
        match encode_selfies(&m.smiles) {
            Ok(got) if got == want => {}
            Ok(got) => bad.push(format!("{}: {got} (want {want})", m.smiles)),
            Err(e) => bad.push(format!("{}: {e}", m.smiles)),
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {n} differ:\n{}",
        bad.len(),
        bad[..bad.len().min(8)].join("\n")
    );
}

#[test]
fn documented_examples_and_round_trip() {
    assert_eq!(encode_selfies("C=CF").unwrap(), "[C][=C][F]");
    assert_eq!(
        encode_selfies("c1ccccc1").unwrap(),
        "[C][=C][C][=C][C][=C][Ring1][=Branch1]"
    );
    // Pairs from the reference encoder (selfies 2.2.0), incl. chirality at ring atoms.
    for (smi, sf) in [
        ("[NH4+]", "[NH4+1]"),
        ("O=C([O-])C", "[O][=C][Branch1][C][O-1][C]"),
        ("C/C=C/C", "[C][/C][=C][/C]"),
        (
            "N[C@@H](C)C(=O)O",
            "[N][C@@H1][Branch1][C][C][C][=Branch1][C][=O][O]",
        ),
        ("C1CC1", "[C][C][C][Ring1][Ring1]"),
        (
            "[O-][n+]1ccccc1",
            "[O-1][N+1][=C][C][=C][C][=C][Ring1][=Branch1]",
        ),
        (
            "C[C@H]1CC[C@@H](C)N1",
            "[C][C@H1][C][C][C@@H1][Branch1][C][C][N][Ring1][=Branch1]",
        ),
    ] {
        assert_eq!(encode_selfies(smi).unwrap(), sf, "{smi}");
    }
    for s in [
        "CCO",
        "C1CC1",
        "CC(C)(C)C",
        "[NH4+]",
        "O=C([O-])C",
        "C/C=C/C",
        "N[C@@H](C)C(=O)O",
    ] {
        let sf = encode_selfies(s).unwrap();
        assert!(decode_selfies(&sf).is_ok(), "{s} -> {sf}");
    }
    for s in ["C(", "c1cccc1", "*C", "C$C", "C1.C1", "FC(F)(F)(F)F"] {
        assert!(encode_selfies(s).is_err(), "{s}");
    }
}
