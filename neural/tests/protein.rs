//! Protein data handling: encoding, windows, homology clusters, the split by cluster, the
//! held-out window choice, the composition model, and the mask-count training weights.

use discrete_diffusion::data::io::Record;
use discrete_diffusion::data::{Codec, Special};
use discrete_diffusion_neural::protein::{
    LETTERS, MASK_TOKEN, Protein, X_TOKEN, all_windows, codec, composition_nll, encode_records,
    homology_clusters, one_window_each, split_by_cluster, windows,
};
use discrete_diffusion_neural::train::mask_count_coefficients;
use ndarray::Array2;

fn rec(id: &str, seq: &str) -> Record {
    Record {
        id: id.to_string(),
        seq: seq.to_string(),
    }
}

fn prot(id: &str, seq: &str) -> Protein {
    encode_records(&[rec(id, seq)]).unwrap().remove(0)
}

/// A deterministic pseudo-random protein of `n` standard residues (`salt` picks it).
fn random_seq(n: usize, salt: u64) -> String {
    let letters: Vec<char> = "ACDEFGHIKLMNPQRSTVWY".chars().collect();
    let mut h = salt.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            h ^= h << 13;
            h ^= h >> 7;
            h ^= h << 17;
            letters[(h % 20) as usize]
        })
        .collect()
}

#[test]
fn encoding_round_trip_and_extras() {
    let c = codec();
    assert_eq!(c.vocab().len(), LETTERS + 1);
    assert_eq!(c.vocab().special(Special::Mask), Some(MASK_TOKEN));
    let s = "MKTAYIAKQRQISFVKSHFSRQ";
    let p = prot("a", s);
    assert_eq!(c.vocab().decode_concat(&p.tokens).unwrap(), s);
    // Lower case is accepted; B, Z, J, X, U, O all become X; a trailing stop is removed.
    let q = prot("b", "mkBZJXUOa*");
    assert_eq!(q.tokens.len(), 9);
    assert!(q.tokens[2..8].iter().all(|&t| t == X_TOKEN));
    assert_eq!(c.vocab().decode_concat(&q.tokens).unwrap(), "MKXXXXXXA");
    // A non-letter is an error naming the protein.
    let e = encode_records(&[rec("bad_one", "MK1A")]).unwrap_err();
    assert!(e.to_string().contains("bad_one"), "{e}");
}

#[test]
fn windows_are_exact_and_drop_the_tail() {
    let x: Vec<u32> = (0..10).collect();
    let w = windows(&x, 4);
    assert_eq!(w, vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]]);
    assert!(windows(&x, 11).is_empty());
    assert_eq!(windows(&x, 10), vec![x.clone()]);
    assert!(windows(&x, 0).is_empty());
    let ps = vec![prot("a", &random_seq(9, 1)), prot("b", &random_seq(3, 2))];
    let all = all_windows(&ps, 4);
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|w| w.len() == 4));
    assert_eq!(all[1], ps[0].tokens[4..8]);
}

#[test]
fn one_window_each_picks_one_window_of_each_long_protein() {
    let ps: Vec<Protein> = (0..30)
        .map(|i| prot(&format!("P{i}"), &random_seq(5 + 7 * i, i as u64)))
        .collect();
    let l = 16;
    let picked = one_window_each(&ps, l);
    let long: Vec<&Protein> = ps.iter().filter(|p| p.tokens.len() >= l).collect();
    assert_eq!(picked.len(), long.len());
    let mut seen_non_first = false;
    for (w, p) in picked.iter().zip(&long) {
        let ws = windows(&p.tokens, l);
        let j = ws.iter().position(|x| x == w).expect("one of its windows");
        seen_non_first |= j > 0;
    }
    assert!(seen_non_first, "the window is not always the first");
    assert_eq!(picked, one_window_each(&ps, l), "deterministic");
}

#[test]
fn clusters_link_shared_kmers_but_not_low_complexity() {
    let core = random_seq(12, 99);
    let b = format!("{}{core}", random_seq(7, 3));
    let ps = vec![
        prot(
            "a",
            &format!("{}{core}{}", random_seq(20, 1), random_seq(5, 2)),
        ),
        prot("b", &b),
        // shares an 11-mer only with a: not linked at k = 12.
        prot(
            "c",
            &format!(
                "{}{}{}",
                &core[..11],
                if core.ends_with('A') { 'C' } else { 'A' },
                random_seq(30, 4)
            ),
        ),
        // links to b through another 12-mer (transitivity).
        prot("d", &format!("{}{}", random_seq(3, 5), &b[..12])),
        // poly-Q and a shared k-mer with X do not link.
        prot("e", &format!("{}{}", "Q".repeat(20), random_seq(10, 6))),
        prot("f", &format!("{}{}", random_seq(10, 7), "Q".repeat(20))),
        prot("g", &format!("X{}", &core[1..])),
        prot("h", &format!("{}X{}", random_seq(4, 8), &core[1..])),
    ];
    let r = homology_clusters(&ps, 12).unwrap();
    assert_eq!(r[0], 0);
    assert_eq!(r[1], 0);
    assert_eq!(r[3], 0, "d joins through b");
    assert_eq!(r[2], 2, "an 11-mer does not link at k = 12");
    assert_eq!((r[4], r[5]), (4, 5), "low-complexity repeats do not link");
    assert_eq!((r[6], r[7]), (6, 7), "k-mers with X do not link");
    assert!(homology_clusters(&ps, 0).is_err());
    assert!(homology_clusters(&ps, 15).is_err());
    let bad = vec![Protein {
        id: "z".into(),
        tokens: vec![0, 21, 3],
    }];
    assert!(homology_clusters(&bad, 2).is_err());
}

#[test]
fn split_keeps_clusters_whole_and_ignores_file_order() {
    // 400 families of 3 homologs each (a shared 20-residue core), 200 singletons.
    let mut ps = Vec::new();
    for f in 0..400u64 {
        let core = random_seq(20, 10_000 + f);
        for m in 0..3u64 {
            let s = format!(
                "{}{core}{}",
                random_seq(30, 100_000 + f * 3 + m),
                random_seq(40, 200_000 + f * 3 + m)
            );
            ps.push(prot(&format!("F{f}_{m}"), &s));
        }
    }
    for s in 0..200u64 {
        ps.push(prot(&format!("S{s}"), &random_seq(90, 50_000 + s)));
    }
    let roots = homology_clusters(&ps, 12).unwrap();
    let split = split_by_cluster(ps.clone(), &roots, 0.1, 0.1).unwrap();
    assert_eq!(split.clusters, 600);
    assert_eq!(split.largest, 3);
    let part = |id: &str| -> usize {
        [&split.train, &split.valid, &split.test]
            .iter()
            .position(|s| s.iter().any(|p| p.id == id))
            .unwrap()
    };
    for f in 0..400 {
        let p0 = part(&format!("F{f}_0"));
        for m in 1..3 {
            assert_eq!(part(&format!("F{f}_{m}")), p0, "family {f} split");
        }
    }
    let n = ps.len() as f64;
    let (te, va) = (split.test.len() as f64 / n, split.valid.len() as f64 / n);
    // Whole clusters move: sd = √(0.09 Σ size²)/1400 = √(0.09 · 3800)/1400 ≈ 0.013.
    assert!(
        (te - 0.1).abs() < 0.06 && (va - 0.1).abs() < 0.06,
        "{te} {va}"
    );
    // Reversing the file gives the same assignment of every protein.
    let mut rev = ps.clone();
    rev.reverse();
    let rroots = homology_clusters(&rev, 12).unwrap();
    let rsplit = split_by_cluster(rev, &rroots, 0.1, 0.1).unwrap();
    let ids = |v: &[Protein]| {
        let mut x: Vec<String> = v.iter().map(|p| p.id.clone()).collect();
        x.sort();
        x
    };
    assert_eq!(ids(&split.test), ids(&rsplit.test));
    assert_eq!(ids(&split.valid), ids(&rsplit.valid));
    assert_eq!(ids(&split.train), ids(&rsplit.train));
    // Bad arguments.
    assert!(split_by_cluster(ps.clone(), &roots[1..], 0.1, 0.1).is_err());
    assert!(split_by_cluster(ps.clone(), &roots, 0.6, 0.6).is_err());
    assert!(split_by_cluster(ps, &roots, 0.1, -0.1).is_err());
}

#[test]
fn composition_model_is_exchangeable_and_normalised() {
    let pi = [0.5, 0.3, 0.2];
    let a = 2.5;
    // Normalised over all 3^4 sequences of length 4.
    let mut total = 0.0;
    for code in 0..81u32 {
        let x: Vec<u32> = (0..4).map(|i| (code / 3u32.pow(i)) % 3).collect();
        total += (-composition_nll(&x, &pi, a).unwrap()).exp();
    }
    assert!((total - 1.0).abs() < 1e-12, "{total}");
    // The same in every order, and equal to the Dirichlet-multinomial formula.
    let x = [2, 0, 0, 1, 2, 0];
    let perm = [0, 0, 0, 1, 2, 2];
    let (u, w) = (
        composition_nll(&x, &pi, a).unwrap(),
        composition_nll(&perm, &pi, a).unwrap(),
    );
    assert!((u - w).abs() < 1e-12);
    // Π_v Γ(n_v + aπ_v)/Γ(aπ_v) / (Γ(n + a)/Γ(a)) by rising factorials.
    let rising = |z: f64, n: usize| (0..n).map(|j| z + j as f64).product::<f64>();
    let p = rising(a * 0.5, 3) * rising(a * 0.3, 1) * rising(a * 0.2, 2) / rising(a, 6);
    assert!((u + p.ln()).abs() < 1e-12);
    // Errors.
    assert!(composition_nll(&x, &pi, 0.0).is_err());
    assert!(composition_nll(&[3], &pi, a).is_err());
    assert!(composition_nll(&[1], &[1.0, 0.0], a).is_err());
    assert!(composition_nll(&[0], &[1.0, f64::NAN], a).is_err());
    assert!(composition_nll(&[0], &[1.5, -0.5], a).is_err());
}

#[test]
fn mask_count_coefficients_divide_by_the_realised_count() {
    let m = 9;
    let xt = Array2::from_shape_vec((3, 4), vec![9, 1, 9, 9, 0, 1, 2, 3, 9, 9, 9, 9]).unwrap();
    let c = mask_count_coefficients(xt.view(), m);
    let third = 1.0 / 3.0;
    let exp = [
        third / 3.0,
        0.0,
        third / 3.0,
        third / 3.0,
        0.0,
        0.0,
        0.0,
        0.0,
        third / 4.0,
        third / 4.0,
        third / 4.0,
        third / 4.0,
    ];
    for (a, b) in c.iter().zip(exp) {
        assert!((*a as f64 - b).abs() < 1e-7, "{c:?}");
    }
}
