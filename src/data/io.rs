//! Loaders for FASTA, CSV and plain text, each plain or gzip-compressed.
//!
//! Compression is detected from the content (the gzip magic bytes `1f 8b`), never from the
//! file name; multi-member gzip (as written by `bgzip` or by concatenation) is read whole.
//! FASTA parsing is `needletail`'s, CSV parsing the `csv` crate's, decompression `flate2`'s.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};

/// One sequence record: the identifier (the header up to the first whitespace) and the
/// sequence with line breaks removed, as read (no case change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Identifier: the FASTA header's first word.
    pub id: String,
    /// The sequence.
    pub seq: String,
}

fn io_err(arg: &'static str, e: impl std::fmt::Display) -> Error {
    Error::invalid(arg, format!("I/O error: {e}"))
}

/// Wrap `reader` in a gzip decoder if its first two bytes are the gzip magic number.
pub fn decompressed<'a, R: Read + Send + 'a>(reader: R) -> Result<Box<dyn Read + Send + 'a>> {
    let mut br = BufReader::new(reader);
    let head = br.fill_buf().map_err(|e| io_err("reader", e))?;
    if head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b {
        Ok(Box::new(MultiGzDecoder::new(br)))
    } else {
        Ok(Box::new(br))
    }
}

fn open(path: &Path) -> Result<File> {
    File::open(path)
        .map_err(|e| Error::invalid("path", format!("cannot open {}: {e}", path.display())))
}

/// All records of a FASTA stream (plain or gzip). An empty stream gives no records;
/// malformed input (e.g. text before the first `>`) is an error naming the line.
/// Headers and sequences must be UTF-8.
pub fn read_fasta<R: Read + Send>(reader: R) -> Result<Vec<Record>> {
    use needletail::errors::ParseErrorKind;
    let mut rdr = match needletail::parse_fastx_reader(reader) {
        Ok(r) => r,
        Err(e) if e.kind == ParseErrorKind::EmptyFile => return Ok(Vec::new()),
        Err(e) => return Err(Error::invalid("reader", format!("FASTA: {e}"))),
    };
    let mut out = Vec::new();
    while let Some(rec) = rdr.next() {
        let rec = rec.map_err(|e| Error::invalid("reader", format!("FASTA: {e}")))?;
        let header = std::str::from_utf8(rec.id()).map_err(|_| {
            Error::invalid("reader", format!("FASTA header {} not UTF-8", out.len()))
        })?;
        let id = header.split_whitespace().next().unwrap_or("").to_string();
        let seq = String::from_utf8(rec.seq().into_owned()).map_err(|_| {
            Error::invalid("reader", format!("FASTA record {id:?}: sequence not UTF-8"))
        })?;
        out.push(Record { id, seq });
    }
    Ok(out)
}

/// [`read_fasta`] on a file.
pub fn load_fasta(path: impl AsRef<Path>) -> Result<Vec<Record>> {
    read_fasta(open(path.as_ref())?)
}

/// The values of column `column` of a CSV stream with a header row (plain or gzip).
/// Errors if the column is missing or a row is malformed (the error names the row).
pub fn read_csv_column<R: Read + Send>(reader: R, column: &str) -> Result<Vec<String>> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(decompressed(reader)?);
    let headers = rdr
        .headers()
        .map_err(|e| Error::invalid("reader", format!("CSV header: {e}")))?;
    let col = headers.iter().position(|h| h == column).ok_or_else(|| {
        Error::invalid(
            "column",
            format!(
                "no column {column:?} (header: {:?})",
                headers.iter().collect::<Vec<_>>()
            ),
        )
    })?;
    let mut out = Vec::new();
    for (i, row) in rdr.records().enumerate() {
        let row = row.map_err(|e| Error::invalid("reader", format!("CSV row {}: {e}", i + 1)))?;
        let v = row.get(col).ok_or_else(|| {
            Error::invalid("reader", format!("CSV row {} has no column {col}", i + 1))
        })?;
        out.push(v.to_string());
    }
    Ok(out)
}

/// [`read_csv_column`] on a file.
pub fn load_csv_column(path: impl AsRef<Path>, column: &str) -> Result<Vec<String>> {
    read_csv_column(open(path.as_ref())?, column)
}

/// The whole stream as UTF-8 text (plain or gzip).
pub fn read_text<R: Read + Send>(reader: R) -> Result<String> {
    let mut s = String::new();
    decompressed(reader)?
        .read_to_string(&mut s)
        .map_err(|e| io_err("reader", e))?;
    Ok(s)
}

/// [`read_text`] on a file, or on every regular file of a directory whose name ends in
/// `.txt` or `.txt.gz`, in file-name order, joined by a blank line.
pub fn load_text(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    if !path.is_dir() {
        return read_text(open(path)?);
    }
    let mut files: Vec<_> = std::fs::read_dir(path)
        .map_err(|e| Error::invalid("path", format!("cannot list {}: {e}", path.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(".txt") || n.ends_with(".txt.gz"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::invalid(
            "path",
            format!("no .txt files in {}", path.display()),
        ));
    }
    let mut parts = Vec::with_capacity(files.len());
    for f in &files {
        parts.push(read_text(open(f)?)?);
    }
    Ok(parts.join("\n\n"))
}
