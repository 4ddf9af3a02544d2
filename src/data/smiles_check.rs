//! A SMILES parser and validity checker: syntax, ring closures, valence, kekulization.
//!
//! [`check_smiles`] parses OpenSMILES syntax — organic-subset atoms (`B C N O P S F Cl Br
//! I`, aromatic `b c n o p s`, `*`), bracket atoms (`[isotope symbol chirality Hn charge
//! :class]`, aromatic `se as te` too), bonds `- = # $ : / \`, branches, ring bonds `0-9`
//! and `%nn`, and `.` — and then checks that the string is a molecule:
//!
//! * **structure**: balanced, non-empty branches; no bond without an atom on both sides;
//!   every ring bond closed, not onto its own atom, not duplicating an existing bond, and
//!   with agreeing bond symbols on both ends;
//! * **valence**: the bond-order sum (plus explicit hydrogens) of every atom of a known
//!   element is at most its largest allowed valence — B 3, C 4, N 3, O 2, F/Cl/Br 1,
//!   Si 4, P 3/5/7, S 2/4/6, As 3/5, Se 2/4/6, I 1/3/5, Te 2/4/6, H 1 (RDKit's defaults);
//!   a charged atom is checked as its isoelectronic neighbour (N⁺ as C, O⁻ as F, C⁻ as N,
//!   …); elements outside the table (metals) are not checked;
//! * **aromaticity**: aromatic atoms must lie on a ring (an implicit bond between two
//!   aromatic atoms that is not in a ring is single, as in RDKit), and the aromatic system
//!   must have a Kekulé structure: the atoms that need a π bond (Apodaca's rule, as in
//!   `selfies`: an implicit-H atom whose σ valence is not already an allowed aromatic
//!   valence; a bracket atom whose free electron count is odd) must have a perfect
//!   matching over aromatic bonds.
//!
//! Stereo marks (`@`, `/`, `\`) are parsed but not checked for consistency.

use std::collections::HashMap;
use std::fmt;

use super::graph::{bridges, matching};
use super::selfies::ELEMENTS;
use crate::error::Error;

/// Why a string is not a valid SMILES: the byte position (of the offending symbol, or
/// the string's length for an error at the end) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmilesError {
    /// Byte offset into the string.
    pub position: usize,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for SmilesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid SMILES at byte {}: {}",
            self.position, self.reason
        )
    }
}

impl std::error::Error for SmilesError {}

impl From<SmilesError> for Error {
    fn from(e: SmilesError) -> Self {
        Error::invalid("smiles", e.to_string())
    }
}

/// A bond's kind as written (or implied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BondKind {
    /// `-`, `/`, `\` or an implicit bond between non-aromatic atoms.
    Single,
    /// `=`.
    Double,
    /// `#`.
    Triple,
    /// `$`.
    Quadruple,
    /// `:` or an implicit ring bond between two aromatic atoms.
    Aromatic,
}

impl BondKind {
    fn sigma_order(self) -> u32 {
        match self {
            BondKind::Single | BondKind::Aromatic => 1,
            BondKind::Double => 2,
            BondKind::Triple => 3,
            BondKind::Quadruple => 4,
        }
    }
}

/// An atom as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAtom {
    /// Element symbol, capitalised (`c` → `C`), or `*`.
    pub element: String,
    /// Written in lower case.
    pub aromatic: bool,
    /// Written in brackets.
    pub bracket: bool,
    /// Explicit hydrogen count of a bracket atom (0 if none written).
    pub hcount: u32,
    /// Formal charge.
    pub charge: i32,
    /// Byte position in the string.
    pub position: usize,
}

/// The molecular graph of a valid SMILES.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmilesGraph {
    /// Atoms in order of appearance.
    pub atoms: Vec<ParsedAtom>,
    /// Bonds `(a, b, kind)` with `a < b` atom indices (ring bonds included).
    pub bonds: Vec<(usize, usize, BondKind)>,
}

fn err<T>(position: usize, reason: impl Into<String>) -> Result<T, SmilesError> {
    Err(SmilesError {
        position,
        reason: reason.into(),
    })
}

/// Whether `smiles` is a valid SMILES by [`check_smiles`].
pub fn is_valid_smiles(smiles: &str) -> bool {
    check_smiles(smiles).is_ok()
}

/// Parse `smiles` and check its structure only (syntax, branches, ring bonds), not its
/// chemistry; the graph on success.
pub fn parse_smiles(smiles: &str) -> Result<SmilesGraph, SmilesError> {
    Parser::new(smiles).parse()
}

/// Parse and check `smiles` (see the module docs); the graph on success.
pub fn check_smiles(smiles: &str) -> Result<SmilesGraph, SmilesError> {
    let g = Parser::new(smiles).parse()?;
    check_chemistry(&g)?;
    Ok(g)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    atoms: Vec<ParsedAtom>,
    bonds: Vec<(usize, usize, Option<BondKind>, usize)>,
}

fn bond_of(c: u8) -> Option<BondKind> {
    Some(match c {
        b'-' | b'/' | b'\\' => BondKind::Single,
        b'=' => BondKind::Double,
        b'#' => BondKind::Triple,
        b'$' => BondKind::Quadruple,
        b':' => BondKind::Aromatic,
        _ => return None,
    })
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser {
            s: s.as_bytes(),
            i: 0,
            atoms: Vec::new(),
            bonds: Vec::new(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn parse(mut self) -> Result<SmilesGraph, SmilesError> {
        if self.s.is_empty() {
            return err(0, "empty string");
        }
        let mut prev: Option<usize> = None;
        let mut pending: Option<(u8, usize)> = None;
        // (atom before '(', whether the branch has an atom yet, position of '(')
        let mut branches: Vec<(usize, bool, usize)> = Vec::new();
        let mut rings: HashMap<u32, (usize, Option<u8>, usize)> = HashMap::new();
        while let Some(c) = self.peek() {
            let at = self.i;
            match c {
                b'(' => {
                    let p = prev
                        .ok_or(())
                        .or_else(|_| err(at, "'(' with no atom before it"))?;
                    if pending.is_some() {
                        return err(at, "bond symbol before '('");
                    }
                    branches.push((p, false, at));
                    self.i += 1;
                }
                b')' => {
                    let (p, has_atom, _) = branches
                        .pop()
                        .ok_or(())
                        .or_else(|_| err(at, "')' without a matching '('"))?;
                    if pending.is_some() {
                        return err(at, "bond symbol before ')'");
                    }
                    if !has_atom {
                        return err(at, "empty branch '()'");
                    }
                    prev = Some(p);
                    self.i += 1;
                }
                b'.' => {
                    if prev.is_none() || pending.is_some() {
                        return err(at, "'.' must separate two complete fragments");
                    }
                    if !branches.is_empty() {
                        return err(at, "'.' inside a branch");
                    }
                    prev = None;
                    self.i += 1;
                }
                _ if bond_of(c).is_some() => {
                    if prev.is_none() {
                        return err(at, "bond symbol with no atom before it");
                    }
                    if pending.is_some() {
                        return err(at, "two bond symbols in a row");
                    }
                    pending = Some((c, at));
                    self.i += 1;
                }
                b'0'..=b'9' | b'%' => {
                    let p = prev
                        .ok_or(())
                        .or_else(|_| err(at, "ring bond with no atom before it"))?;
                    let num = self.ring_number()?;
                    match rings.remove(&num) {
                        None => {
                            rings.insert(num, (p, pending.map(|b| b.0), at));
                        }
                        Some((q, b0, _)) => {
                            if q == p {
                                return err(at, format!("ring bond {num} closes on its own atom"));
                            }
                            let b1 = pending.map(|b| b.0);
                            let kind = match (b0, b1) {
                                (Some(x), Some(y)) if x != y && !(is_dir(x) && is_dir(y)) => {
                                    return err(
                                        at,
                                        format!("ring bond {num} has conflicting bond symbols"),
                                    );
                                }
                                (Some(x), _) | (None, Some(x)) => Some(x),
                                (None, None) => None,
                            };
                            if self
                                .bonds
                                .iter()
                                .any(|&(a, b, _, _)| (a, b) == (q.min(p), q.max(p)))
                            {
                                return err(
                                    at,
                                    format!("ring bond {num} duplicates an existing bond"),
                                );
                            }
                            self.bonds
                                .push((q.min(p), q.max(p), kind.and_then(bond_of), at));
                        }
                    }
                    pending = None;
                }
                _ => {
                    let a = self.atom()?;
                    if let Some(p) = prev {
                        let kind = pending.take().and_then(|b| bond_of(b.0));
                        self.bonds.push((p, a, kind, at));
                    }
                    if let Some(top) = branches.last_mut() {
                        top.1 = true;
                    }
                    prev = Some(a);
                }
            }
        }
        let end = self.s.len();
        if let Some((_, _, at)) = branches.last() {
            return err(*at, "unclosed '('");
        }
        if pending.is_some() || prev.is_none() {
            return err(end, "string ends with a bond or '.'");
        }
        if let Some((num, (_, _, at))) = rings.iter().min_by_key(|(_, v)| v.2) {
            return err(*at, format!("ring bond {num} is never closed"));
        }
        let atoms = self.atoms;
        let bonds = self
            .bonds
            .into_iter()
            .map(|(a, b, k, _)| {
                let k = k.unwrap_or(if atoms[a].aromatic && atoms[b].aromatic {
                    BondKind::Aromatic
                } else {
                    BondKind::Single
                });
                (a, b, k)
            })
            .collect();
        Ok(SmilesGraph { atoms, bonds })
    }

    fn ring_number(&mut self) -> Result<u32, SmilesError> {
        let at = self.i;
        if self.s[at] == b'%' {
            let d = self
                .s
                .get(at + 1..at + 3)
                .filter(|d| d.iter().all(u8::is_ascii_digit));
            let d = d
                .ok_or(())
                .or_else(|_| err(at, "'%' must be followed by two digits"))?;
            self.i += 3;
            Ok(u32::from(d[0] - b'0') * 10 + u32::from(d[1] - b'0'))
        } else {
            self.i += 1;
            Ok(u32::from(self.s[at] - b'0'))
        }
    }

    fn push_atom(
        &mut self,
        element: &str,
        aromatic: bool,
        bracket: bool,
        h: u32,
        q: i32,
        at: usize,
    ) -> usize {
        self.atoms.push(ParsedAtom {
            element: element.to_string(),
            aromatic,
            bracket,
            hcount: h,
            charge: q,
            position: at,
        });
        self.atoms.len() - 1
    }

    fn atom(&mut self) -> Result<usize, SmilesError> {
        let at = self.i;
        let c = self.s[at];
        let two = self.s.get(at..at + 2);
        let (el, arom, len) = match c {
            b'B' if two == Some(b"Br") => ("Br", false, 2),
            b'C' if two == Some(b"Cl") => ("Cl", false, 2),
            b'B' => ("B", false, 1),
            b'C' => ("C", false, 1),
            b'N' => ("N", false, 1),
            b'O' => ("O", false, 1),
            b'P' => ("P", false, 1),
            b'S' => ("S", false, 1),
            b'F' => ("F", false, 1),
            b'I' => ("I", false, 1),
            b'b' => ("B", true, 1),
            b'c' => ("C", true, 1),
            b'n' => ("N", true, 1),
            b'o' => ("O", true, 1),
            b'p' => ("P", true, 1),
            b's' => ("S", true, 1),
            b'*' => ("*", false, 1),
            b'[' => return self.bracket_atom(),
            _ => {
                let ch = std::str::from_utf8(&self.s[at..])
                    .ok()
                    .and_then(|t| t.chars().next())
                    .unwrap_or('?');
                return err(at, format!("unexpected character {ch:?}"));
            }
        };
        self.i += len;
        Ok(self.push_atom(el, arom, false, 0, 0, at))
    }

    fn digits(&mut self, max: usize) -> Option<u32> {
        let start = self.i;
        while self.i < self.s.len() && self.i - start < max && self.s[self.i].is_ascii_digit() {
            self.i += 1;
        }
        (self.i > start).then(|| {
            self.s[start..self.i]
                .iter()
                .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
        })
    }

    fn bracket_atom(&mut self) -> Result<usize, SmilesError> {
        let at = self.i;
        self.i += 1;
        let _isotope = self.digits(4);
        let rest = &self.s[self.i..];
        let (el, arom, len): (String, bool, usize) = if rest.first() == Some(&b'*') {
            ("*".into(), false, 1)
        } else if let Some(a) = ["se", "as", "te", "b", "c", "n", "o", "p", "s"]
            .iter()
            .find(|a| rest.starts_with(a.as_bytes()))
        {
            let mut e = a.to_string();
            e[..1].make_ascii_uppercase();
            (e, true, a.len())
        } else {
            let two = rest.get(..2).and_then(|t| std::str::from_utf8(t).ok());
            let one = rest.get(..1).and_then(|t| std::str::from_utf8(t).ok());
            match (two, one) {
                (Some(t), _) if ELEMENTS.contains(&t) => (t.to_string(), false, 2),
                (_, Some(o)) if ELEMENTS.contains(&o) => (o.to_string(), false, 1),
                _ => return err(at, "bracket atom without a valid element symbol"),
            }
        };
        self.i += len;
        if self.peek() == Some(b'@') {
            self.i += 1;
            if self.peek() == Some(b'@') {
                self.i += 1;
            } else if let Some(t) = self.s.get(self.i..self.i + 2)
                && [&b"TH"[..], b"AL", b"SP", b"TB", b"OH"].contains(&t)
            {
                self.i += 2;
                if self.digits(2).is_none() {
                    return err(at, "chirality class without a number");
                }
            }
        }
        let mut h = 0;
        if self.peek() == Some(b'H') {
            self.i += 1;
            h = self.digits(1).unwrap_or(1);
        }
        let mut q: i32 = 0;
        if let Some(sign @ (b'+' | b'-')) = self.peek() {
            let sgn = if sign == b'+' { 1 } else { -1 };
            self.i += 1;
            if let Some(n) = self.digits(2) {
                q = sgn * n as i32;
            } else {
                q = sgn;
                while self.peek() == Some(sign) && q.abs() < 15 {
                    q += sgn;
                    self.i += 1;
                }
            }
        }
        if self.peek() == Some(b':') {
            self.i += 1;
            if self.digits(8).is_none() {
                return err(at, "atom class ':' without a number");
            }
        }
        if self.peek() != Some(b']') {
            return err(at, "malformed bracket atom");
        }
        self.i += 1;
        Ok(self.push_atom(&el, arom, true, h, q, at))
    }
}

fn is_dir(c: u8) -> bool {
    c == b'/' || c == b'\\'
}

fn atomic_number(el: &str) -> Option<usize> {
    ELEMENTS.iter().position(|e| *e == el).map(|i| i + 1)
}

/// Allowed valences of a neutral element by atomic number (None: not checked).
fn valences(z: usize) -> Option<&'static [u32]> {
    Some(match z {
        1 => &[1],
        5 => &[3],
        6 => &[4],
        7 => &[3],
        8 => &[2],
        9 | 17 | 35 => &[1],
        14 | 32 => &[4],
        15 => &[3, 5, 7],
        16 | 34 | 52 => &[2, 4, 6],
        33 | 51 => &[3, 5],
        53 => &[1, 3, 5],
        _ => return None,
    })
}

fn aromatic_valences(el: &str) -> &'static [u32] {
    match el {
        "B" => &[3],
        "C" => &[4],
        "N" | "P" | "As" => &[3, 5],
        _ => &[2, 4],
    }
}

fn check_chemistry(g: &SmilesGraph) -> Result<(), SmilesError> {
    let n = g.atoms.len();
    let bridges = bridges(n, &g.bonds);
    let mut sigma = vec![0u32; n];
    let mut arom_adj: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (k, &(a, b, kind)) in g.bonds.iter().enumerate() {
        sigma[a] += kind.sigma_order();
        sigma[b] += kind.sigma_order();
        if kind == BondKind::Aromatic {
            if let Some(x) = [a, b].into_iter().find(|&x| !g.atoms[x].aromatic) {
                return err(
                    g.atoms[x].position,
                    "aromatic bond ':' at a non-aromatic atom",
                );
            }
            if !bridges[k] {
                arom_adj[a].push(b);
                arom_adj[b].push(a);
            }
        }
    }
    let mut needs_pi = vec![false; n];
    for (i, a) in g.atoms.iter().enumerate() {
        let used = sigma[i] + a.hcount;
        if a.aromatic {
            if arom_adj[i].is_empty() {
                return err(a.position, "aromatic atom outside a ring");
            }
            let vals = aromatic_valences(&a.element);
            needs_pi[i] = if a.bracket {
                let max = vals[vals.len() - 1] as i64 - i64::from(a.charge);
                let free = max - i64::from(used);
                free >= 0 && free % 2 == 1
            } else {
                !vals.contains(&used)
            };
        }
        let total = used + u32::from(needs_pi[i]);
        // Checked as the isoelectronic neighbour of atomic number Z − charge.
        let zq = atomic_number(&a.element).map(|z| z as i64 - i64::from(a.charge));
        if let Some(v) = zq.filter(|&z| z >= 1).and_then(|z| valences(z as usize)) {
            let max = v[v.len() - 1];
            if total > max {
                return err(
                    a.position,
                    format!(
                        "{}{} has valence {total}, more than {max}",
                        a.element,
                        charge_str(a.charge)
                    ),
                );
            }
        }
    }
    // Perfect matching over the atoms that need a π bond.
    let nodes: Vec<usize> = (0..n).filter(|&i| needs_pi[i]).collect();
    let mut label = vec![usize::MAX; n];
    for (k, &i) in nodes.iter().enumerate() {
        label[i] = k;
    }
    let adj: Vec<Vec<usize>> = nodes
        .iter()
        .map(|&i| {
            arom_adj[i]
                .iter()
                .filter(|&&j| needs_pi[j])
                .map(|&j| label[j])
                .collect()
        })
        .collect();
    let mut mate = vec![usize::MAX; nodes.len()];
    let mut budget = 200_000usize;
    if !matching(&adj, &mut mate, &mut budget) {
        let pos = nodes.first().map_or(0, |&i| g.atoms[i].position);
        let why = if budget == 0 {
            "kekulization search exceeded its budget"
        } else {
            "aromatic system has no Kekulé structure"
        };
        return err(pos, why);
    }
    Ok(())
}

fn charge_str(q: i32) -> String {
    match q {
        0 => String::new(),
        q => format!("{q:+}"),
    }
}
