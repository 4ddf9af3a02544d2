//! Loaders on the embedded data and on small files written here (plain and gzip), the
//! fixed split, and bad input.

use std::io::Write;
use std::path::PathBuf;

use discrete_diffusion::data::datasets::{
    self, DEFAULT_HELDOUT_FRACTION, dna_default, lambda_genome, molecules_default, protein_default,
    text_corpus, text_default,
};
use discrete_diffusion::data::dna::windows;
use discrete_diffusion::data::io::{load_csv_column, load_fasta, load_text, read_fasta};
use discrete_diffusion::data::split::id_hash;
use discrete_diffusion::data::{
    Codec, Dataset, DnaCodec, ProteinCodec, SelfiesCodec, Special, is_heldout,
};
use flate2::Compression;
use flate2::write::GzEncoder;

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "dd-data-{tag}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_gz(path: &PathBuf, text: &str) {
    let mut e = GzEncoder::new(std::fs::File::create(path).unwrap(), Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap();
}

#[test]
fn embedded_dna_and_protein() {
    let d = dna_default().unwrap();
    assert_eq!(d.len(), 3000);
    let frac = d.heldout.len() as f64 / d.len() as f64;
    // Binomial(3000, 0.1): sd ≈ 0.0055; 5 sd either side.
    assert!((frac - DEFAULT_HELDOUT_FRACTION).abs() < 0.03, "{frac}");
    let codec = DnaCodec::masked();
    let enc = d
        .clone()
        .try_filter_map(|r| codec.encode_record(&r.seq))
        .unwrap();
    assert_eq!(enc.len(), 3000, "the amplicons are fully resolved ACGT");

    let p = protein_default().unwrap();
    assert_eq!(p.len(), 2000);
    let codec = ProteinCodec::masked();
    let enc = p.try_filter_map(|r| codec.encode_record(&r.seq)).unwrap();
    assert_eq!(enc.len(), 2000);

    let g = lambda_genome().unwrap();
    assert_eq!(g.seq.len(), 48_502);
    let ids = DnaCodec::masked().encode(&g.seq).unwrap();
    assert_eq!(windows(&ids, 1024, 512).unwrap().len(), 93);
}

#[test]
fn embedded_molecules_and_text() {
    let m = molecules_default().unwrap();
    assert_eq!(m.len(), 10_000);
    let codec = SelfiesCodec::fit(
        m.train.iter().map(|x| x.selfies.as_deref().unwrap()),
        &[Special::Mask],
    )
    .unwrap();
    assert!(codec.vocab().len() <= 40, "{}", codec.vocab().len());

    let corpus = text_corpus();
    assert!(corpus.contains("discrete-diffusion"));
    let t = text_default().unwrap();
    assert!(t.train.len() > 50 && !t.heldout.is_empty());
    assert!(
        t.train
            .iter()
            .chain(&t.heldout)
            .all(|p| !p.trim().is_empty())
    );
}

#[test]
fn split_is_fixed_and_deterministic() {
    // Pinned values: the split must never change between versions or platforms.
    assert_eq!(id_hash(""), PINNED_EMPTY);
    assert_eq!(id_hash("sp|P69905|HBA_HUMAN"), PINNED_HBA);
    assert!(is_heldout("x", 1.0).unwrap() && !is_heldout("x", 0.0).unwrap());
    // Monotone in the fraction: a held-out record stays held out as the fraction grows.
    for i in 0..500 {
        let id = format!("rec{i}");
        if is_heldout(&id, 0.1).unwrap() {
            assert!(is_heldout(&id, 0.2).unwrap());
        }
    }
    // Independent of order and of the other records.
    let recs: Vec<(String, u32)> = (0..1000).map(|i| (format!("id{i}"), i)).collect();
    let a = Dataset::split(recs.clone(), 0.25).unwrap();
    let mut rev = recs.clone();
    rev.reverse();
    let mut b = Dataset::split(rev, 0.25).unwrap();
    b.heldout.reverse();
    assert_eq!(a.heldout, b.heldout);
    let d1 = dna_default().unwrap();
    let d2 = dna_default().unwrap();
    assert_eq!(d1, d2);
    assert!(is_heldout("x", 1.5).is_err() && is_heldout("x", f64::NAN).is_err());
    assert!(Dataset::split(recs, -0.1).is_err());
}

// Computed independently (Python) from the definition in `data::split`.
const PINNED_EMPTY: u64 = 17_665_956_581_633_026_203;
const PINNED_HBA: u64 = 17_790_077_341_091_060_133;

#[test]
fn fasta_plain_and_gzip_files() {
    let dir = temp_dir("fasta");
    let text = ">s1 first record\nACGT\nacg\n>s2\n\n>s3 x\nNNNA\n";
    let plain = dir.join("a.fa");
    std::fs::write(&plain, text).unwrap();
    let gz = dir.join("a.fa.weird-extension");
    write_gz(&gz, text);
    for p in [&plain, &gz] {
        let r = load_fasta(p).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].id.as_str(), r[0].seq.as_str()), ("s1", "ACGTacg"));
        assert_eq!(r[1].seq, "");
        assert_eq!(r[2].id, "s3");
    }
    let d = datasets::dna_from_path(&gz, 0.5).unwrap();
    assert_eq!(d.len(), 3);
    let codec = DnaCodec::masked();
    let enc = d.try_filter_map(|r| codec.encode_record(&r.seq)).unwrap();
    assert_eq!(enc.len(), 2, "the NNNA record is skipped");
    assert!(read_fasta(&b""[..]).unwrap().is_empty());
    assert!(read_fasta(&b"ACGT\n>x\nA\n"[..]).is_err());
    assert!(load_fasta(dir.join("missing.fa")).is_err());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn csv_and_text_files() {
    let dir = temp_dir("csv");
    let csv = dir.join("m.csv.gz");
    write_gz(
        &csv,
        "SMILES,SPLIT\nCCO,train\nc1ccccc1,test\n\"C(=O)O\",train\n",
    );
    assert_eq!(
        load_csv_column(&csv, "SMILES").unwrap(),
        vec!["CCO", "c1ccccc1", "C(=O)O"]
    );
    let e = load_csv_column(&csv, "smiles").unwrap_err().to_string();
    assert!(e.contains("no column"), "{e}");
    let d = datasets::smiles_from_path(&csv, "SMILES", 0.0).unwrap();
    assert_eq!(d.train.len(), 3);
    let ragged = dir.join("r.csv");
    std::fs::write(&ragged, "A,B\n1,2\n3\n").unwrap();
    assert!(load_csv_column(&ragged, "B").is_err());

    let tdir = dir.join("texts");
    std::fs::create_dir(&tdir).unwrap();
    std::fs::write(tdir.join("b.txt"), "second\n\npara three\n").unwrap();
    write_gz(&tdir.join("a.txt.gz"), "first para\nline two\n");
    std::fs::write(tdir.join("ignored.md"), "nope").unwrap();
    let all = load_text(&tdir).unwrap();
    assert!(all.starts_with("first para") && !all.contains("nope"));
    let t = datasets::text_from_path(&tdir, 0.0).unwrap();
    assert_eq!(
        t.train,
        vec!["first para\nline two", "second", "para three"]
    );
    assert!(load_text(dir.join("nothing-here")).is_err());
    std::fs::remove_dir_all(dir).unwrap();
}
