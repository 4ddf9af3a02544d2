//! SELFIES: symbol tokenizer, vocabulary, and the decoder SELFIES → SMILES.
//!
//! SELFIES (Krenn et al., *Mach. Learn.: Sci. Technol.* 1, 045024, 2020) is a string
//! grammar in which **every** sequence of symbols decodes to a molecule that obeys the
//! semantic (bond-capacity) constraints: this is what makes sampled molecules valid by
//! construction. [`decode_selfies`] implements the derivation of the reference `selfies`
//! package, version 2.2.0, under its *default* constraints ([`bonding_capacity`]):
//!
//! * the state is the number of bonds the previous atom may still make (`0` at the start
//!   of a fragment); an atom symbol `[=X]` bonds with order `min(2, state, cap(X))` and
//!   leaves `cap(X) − order` (derivation stops when that is 0);
//! * `[Branch L]`/`[=Branch L]`/`[#Branch L]` read `L` index symbols as a base-16 number
//!   `Q` and derive the next `Q + 1` symbols as a branch with initial state
//!   `min(state − 1, order)` (skipped, reading nothing, when `state ≤ 1`);
//! * `[Ring L]` (and `[=Ring L]`, `[#Ring L]`, stereo forms `[-/Ring L]` …) read `Q` and
//!   close a ring from the current atom to the atom `Q + 1` places earlier (index clamped
//!   at 0); ring bonds are formed after the whole string is read, each bounded by the free
//!   capacity left on both ends, and a ring onto an existing bond raises its order (≤ 3);
//! * `[epsilon]` ends the fragment, `[nop]` is ignored, `.` separates fragments.
//!
//! The SMILES is written in derivation order exactly as the reference does (ring-closure
//! digits numbered in order of first use, never reused, `%nn` from 10), so the output
//! matches `selfies.decoder` character for character on the fixtures in
//! `tests/fixtures/data/selfies_pairs.tsv`.
//!
//! Divergences, on malformed input only: text outside `[...]` (other than `.`) is an error
//! here (the reference folds it into the next symbol and then fails or not by accident),
//! and branch nesting deeper than [`MAX_BRANCH_DEPTH`] is an error (the reference hits
//! Python's recursion limit). The encoder SMILES → SELFIES is
//! [`super::selfies_encode::encode_selfies`].

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use regex::Regex;

use super::vocab::{Codec, Special, Vocabulary};
use crate::error::{Error, Result};

/// Deepest branch nesting [`decode_selfies`] follows before returning an error.
pub const MAX_BRANCH_DEPTH: usize = 1000;

/// The 16 symbols that encode the digits of a branch length or ring distance, in digit
/// order (`[C]` = 0, …, `[P]` = 15); any other symbol reads as 0.
pub const INDEX_ALPHABET: [&str; 16] = [
    "[C]",
    "[Ring1]",
    "[Ring2]",
    "[Branch1]",
    "[=Branch1]",
    "[#Branch1]",
    "[Branch2]",
    "[=Branch2]",
    "[#Branch2]",
    "[O]",
    "[N]",
    "[=N]",
    "[=C]",
    "[#C]",
    "[S]",
    "[P]",
];

/// Element symbols of the periodic table, as SELFIES accepts them in bracket atoms.
pub const ELEMENTS: [&str; 118] = [
    "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl",
    "Ar", "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As",
    "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In",
    "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb",
    "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl",
    "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk",
    "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh",
    "Fl", "Mc", "Lv", "Ts", "Og",
];

const ORGANIC: [&str; 10] = ["B", "C", "N", "O", "S", "P", "F", "Cl", "Br", "I"];

/// Maximum number of bonds of an atom under the default constraints of `selfies` 2.2.0
/// (before subtracting explicit hydrogens): H, halogens 1; B 3 (B⁺ 2, B⁻ 4); O 2 (O⁺ 3,
/// O⁻ 1); N 3 (N⁺ 4, N⁻ 2); C 4 (C⁺ 3, C⁻ 3); P 5 (P⁺ 4, P⁻ 6); S 6 (S⁺ 5, S⁻ 5);
/// anything else 8.
pub fn bonding_capacity(element: &str, charge: i64) -> i64 {
    match (element, charge) {
        ("H" | "F" | "Cl" | "Br" | "I", 0) => 1,
        ("B", 0) => 3,
        ("B", 1) => 2,
        ("B", -1) => 4,
        ("O", 0) => 2,
        ("O", 1) => 3,
        ("O", -1) => 1,
        ("N", 0) => 3,
        ("N", 1) => 4,
        ("N", -1) => 2,
        ("C", 0) => 4,
        ("C", 1) | ("C", -1) => 3,
        ("P", 0) => 5,
        ("P", 1) => 4,
        ("P", -1) => 6,
        ("S", 0) => 6,
        ("S", 1) | ("S", -1) => 5,
        _ => 8,
    }
}

/// Split a SELFIES string into its symbols `[...]`, keeping `.` as a symbol of its own.
/// Errors on an unclosed `[`, a `[` inside a symbol, an empty `[]`, or text outside brackets.
pub fn split_selfies(s: &str) -> Result<Vec<&str>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                out.push(&s[i..i + 1]);
                i += 1;
            }
            b'[' => {
                let close = s[i + 1..].find(']').map(|k| i + 1 + k).ok_or_else(|| {
                    Error::invalid("selfies", format!("unclosed '[' at byte {i}"))
                })?;
                if close == i + 1 || s[i + 1..close].contains('[') {
                    return Err(Error::invalid(
                        "selfies",
                        format!("malformed symbol at byte {i}"),
                    ));
                }
                out.push(&s[i..=close]);
                i = close + 1;
            }
            _ => {
                let c = s[i..].chars().next().unwrap_or('?');
                return Err(Error::invalid(
                    "selfies",
                    format!("{c:?} at byte {i} is outside a [...] symbol"),
                ));
            }
        }
    }
    Ok(out)
}

/// A SELFIES codec over a fixed symbol vocabulary (`.` may be one of the symbols).
#[derive(Debug, Clone)]
pub struct SelfiesCodec {
    vocab: Vocabulary,
}

impl SelfiesCodec {
    /// A codec over the given symbols, specials appended.
    pub fn new<I, S>(symbols: I, specials: &[Special]) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Ok(SelfiesCodec {
            vocab: Vocabulary::new(symbols, specials)?,
        })
    }

    /// Every symbol of `corpus` in lexicographic order, then `specials`.
    pub fn fit<'a, I>(corpus: I, specials: &[Special]) -> Result<Self>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut set = BTreeSet::new();
        for (i, s) in corpus.into_iter().enumerate() {
            let syms = split_selfies(s)
                .map_err(|e| Error::invalid("corpus", format!("record {i}: {e}")))?;
            set.extend(syms);
        }
        Self::new(set, specials)
    }
}

impl Codec for SelfiesCodec {
    fn vocab(&self) -> &Vocabulary {
        &self.vocab
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.vocab.encode(split_selfies(text)?)
    }
}

#[derive(Debug, Clone)]
struct Atom {
    element: String,
    isotope: Option<u64>,
    chirality: Option<String>,
    h_count: Option<u8>,
    charge: i64,
    cap: i64,
}

#[derive(Debug, Clone, Copy)]
struct Bond {
    dst: usize,
    order: u8,
    stereo: Option<char>,
    ring: bool,
}

#[derive(Default)]
struct Graph {
    atoms: Vec<Atom>,
    out: Vec<Vec<Bond>>,
    bond_count: Vec<i64>,
    roots: Vec<usize>,
}

/// Stereo marks `(left, right)` of a ring bond.
type RingStereo = (Option<char>, Option<char>);
/// `(left atom, right atom, order, stereo)` of a pending ring bond.
type Ring = (usize, usize, u8, RingStereo);
/// Bond order and stereo mark written before an atom.
type BondSpec = (u8, Option<char>);

fn atom_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^\[([=#/\\]?)(\d*)([A-Z][a-z]?)(@{0,2})((?:H\d)?)((?:[+-][1-9]+)?)\]$")
            .expect("valid atom regex")
    })
}

fn bond_char(c: &str) -> BondSpec {
    match c {
        "=" => (2, None),
        "#" => (3, None),
        "/" => (1, Some('/')),
        "\\" => (1, Some('\\')),
        _ => (1, None),
    }
}

/// `(bond order, stereo), atom` of an atom symbol, or `None` if it is not one.
fn parse_atom(sym: &str) -> Result<Option<(BondSpec, Atom)>> {
    let Some(m) = atom_regex().captures(sym) else {
        return Ok(None);
    };
    let bond = bond_char(&m[1]);
    let body = &sym[1 + m[1].len()..sym.len() - 1];
    let element = m[3].to_string();
    let bad = |what: &str| Error::invalid("selfies", format!("{what} in symbol {sym}"));
    let atom = if ORGANIC.contains(&body) {
        Atom {
            cap: bonding_capacity(&element, 0),
            element,
            isotope: None,
            chirality: None,
            h_count: None,
            charge: 0,
        }
    } else {
        if !ELEMENTS.contains(&element.as_str()) {
            return Ok(None);
        }
        let isotope = match &m[2] {
            "" => None,
            s => Some(s.parse::<u64>().map_err(|_| bad("isotope too large"))?),
        };
        let h: u8 = if m[5].is_empty() {
            0
        } else {
            m[5][1..].parse().unwrap_or(0)
        };
        let charge = match &m[6] {
            "" => 0,
            s => {
                let mag: i64 = s[1..].parse().map_err(|_| bad("charge too large"))?;
                if s.starts_with('-') { -mag } else { mag }
            }
        };
        let cap = bonding_capacity(&element, charge) - i64::from(h);
        Atom {
            element,
            isotope,
            chirality: (!m[4].is_empty()).then(|| m[4].to_string()),
            h_count: Some(h),
            charge,
            cap,
        }
    };
    if atom.cap < 0 {
        return Err(bad("more hydrogens than the bonding capacity"));
    }
    Ok(Some((bond, atom)))
}

/// `(order, L)` of a branch symbol.
fn parse_branch(sym: &str) -> Option<(u32, usize)> {
    let (order, rest) = match sym.as_bytes().get(1)? {
        b'=' => (2, &sym[2..]),
        b'#' => (3, &sym[2..]),
        _ => (1, &sym[1..]),
    };
    let l = match rest {
        "Branch1]" => 1,
        "Branch2]" => 2,
        "Branch3]" => 3,
        _ => return None,
    };
    Some((order, l))
}

/// `(order, L, (left stereo, right stereo))` of a ring symbol.
fn parse_ring(sym: &str) -> Option<(u32, usize, RingStereo)> {
    let pos = sym.find("Ring")?;
    let l = match &sym[pos..] {
        "Ring1]" => 1,
        "Ring2]" => 2,
        "Ring3]" => 3,
        _ => return None,
    };
    match &sym[1..pos] {
        "" => Some((1, l, (None, None))),
        "=" => Some((2, l, (None, None))),
        "#" => Some((3, l, (None, None))),
        p if p.len() == 2 && p != "--" && p.chars().all(|c| matches!(c, '-' | '/' | '\\')) => {
            let st = |c: char| (c != '-').then_some(c);
            let mut cs = p.chars();
            let (a, b) = (cs.next()?, cs.next()?);
            Some((1, l, (st(a), st(b))))
        }
        _ => None,
    }
}

struct Deriver<'a> {
    syms: Vec<&'a str>,
    pos: usize,
    mol: Graph,
    rings: Vec<Ring>,
}

impl Deriver<'_> {
    fn read_index(&mut self, l: usize) -> usize {
        let mut q = 0;
        for _ in 0..l {
            let code = match self.syms.get(self.pos) {
                Some(s) => {
                    self.pos += 1;
                    INDEX_ALPHABET.iter().position(|a| a == s).unwrap_or(0)
                }
                None => 0,
            };
            q = q * 16 + code;
        }
        q
    }

    fn add_atom(&mut self, atom: Atom, root: bool) -> usize {
        let i = self.mol.atoms.len();
        self.mol.atoms.push(atom);
        self.mol.out.push(Vec::new());
        self.mol.bond_count.push(0);
        if root {
            self.mol.roots.push(i);
        }
        i
    }

    fn derive(
        &mut self,
        max: Option<usize>,
        init_state: u32,
        root: Option<usize>,
        depth: usize,
    ) -> Result<usize> {
        if depth > MAX_BRANCH_DEPTH {
            return Err(Error::invalid(
                "selfies",
                format!("branches nested deeper than {MAX_BRANCH_DEPTH}"),
            ));
        }
        let mut n = 0usize;
        let mut state = init_state;
        let mut prev = root;
        while max.is_none_or(|m| n < m) {
            let Some(&sym) = self.syms.get(self.pos) else {
                break;
            };
            self.pos += 1;
            n += 1;
            let next: Option<u32>;
            if let Some((order, l)) = parse_branch(sym) {
                if state <= 1 {
                    next = Some(state);
                } else {
                    let binit = (state - 1).min(order);
                    let q = self.read_index(l);
                    n += l + self.derive(Some(q + 1), binit, prev, depth + 1)?;
                    next = Some(state - binit);
                }
            } else if let Some((order, l, stereo)) = parse_ring(sym) {
                if state == 0 {
                    next = Some(0);
                } else {
                    let ro = order.min(state);
                    let q = self.read_index(l);
                    n += l;
                    let r = prev.ok_or_else(|| Error::Numerical {
                        what: "decode_selfies",
                        reason: "ring without a previous atom".into(),
                    })?;
                    self.rings
                        .push((r.saturating_sub(q + 1), r, ro as u8, stereo));
                    next = (state > ro).then_some(state - ro);
                }
            } else if sym == "[epsilon]" {
                next = (state == 0).then_some(0);
            } else {
                let ((order, stereo), atom) = parse_atom(sym)?
                    .ok_or_else(|| Error::invalid("selfies", format!("invalid symbol {sym}")))?;
                let cap = atom.cap;
                let bo = if state == 0 {
                    0
                } else {
                    i64::from(order).min(i64::from(state)).min(cap)
                };
                let left = cap - bo;
                if bo == 0 {
                    if state == 0 {
                        prev = Some(self.add_atom(atom, true));
                    }
                } else {
                    let p = prev.unwrap_or(0);
                    let a = self.add_atom(atom, false);
                    self.mol.out[p].push(Bond {
                        dst: a,
                        order: bo as u8,
                        stereo,
                        ring: false,
                    });
                    self.mol.bond_count[p] += bo;
                    self.mol.bond_count[a] += bo;
                    prev = Some(a);
                }
                next = (left > 0).then_some(left as u32);
            }
            match next {
                Some(s) => state = s,
                None => break,
            }
        }
        if let Some(m) = max {
            while n < m && self.pos < self.syms.len() {
                self.pos += 1;
                n += 1;
            }
        }
        Ok(n)
    }

    fn form_rings(&mut self) {
        let mut made = vec![0usize; self.mol.atoms.len()];
        for &(l, r, order, (ls, rs)) in &self.rings {
            if l == r {
                continue;
            }
            let g = &mut self.mol;
            let lfree = g.atoms[l].cap - g.bond_count[l];
            let rfree = g.atoms[r].cap - g.bond_count[r];
            if lfree <= 0 || rfree <= 0 {
                continue;
            }
            let order = i64::from(order).min(lfree).min(rfree);
            if let Some(k) = g.out[l].iter().position(|b| b.dst == r) {
                let old = i64::from(g.out[l][k].order);
                let new = (old + order).min(3);
                g.out[l][k].order = new as u8;
                if let Some(b) = g.out[r].iter_mut().find(|b| b.ring && b.dst == l) {
                    b.order = new as u8;
                }
                g.bond_count[l] += new - old;
                g.bond_count[r] += new - old;
            } else {
                let lb = Bond {
                    dst: r,
                    order: order as u8,
                    stereo: ls,
                    ring: true,
                };
                let rb = Bond {
                    dst: l,
                    order: order as u8,
                    stereo: rs,
                    ring: true,
                };
                let lp = made[l].min(g.out[l].len());
                g.out[l].insert(lp, lb);
                let rp = made[r].min(g.out[r].len());
                g.out[r].insert(rp, rb);
                g.bond_count[l] += order;
                g.bond_count[r] += order;
                made[l] += 1;
                made[r] += 1;
            }
        }
    }
}

fn atom_smiles(a: &Atom, out: &mut String) {
    if a.isotope.is_none() && a.chirality.is_none() && a.h_count.is_none() && a.charge == 0 {
        out.push_str(&a.element);
        return;
    }
    out.push('[');
    if let Some(i) = a.isotope {
        out.push_str(&i.to_string());
    }
    out.push_str(&a.element);
    if let Some(c) = &a.chirality {
        out.push_str(c);
    }
    let h = a.h_count.unwrap_or(0);
    if h != 0 {
        out.push('H');
        out.push_str(&h.to_string());
    } else if a.isotope.is_none()
        && a.chirality.is_none()
        && a.charge == 0
        && ORGANIC.contains(&a.element.as_str())
    {
        out.push_str("H0");
    }
    if a.charge != 0 {
        out.push_str(&format!("{:+}", a.charge));
    }
    out.push(']');
}

fn bond_smiles(b: &Bond, out: &mut String) {
    match b.order {
        2 => out.push('='),
        3 => out.push('#'),
        _ => {
            if let Some(c) = b.stereo {
                out.push(c);
            }
        }
    }
}

fn write_smiles(g: &Graph) -> String {
    let mut s = String::new();
    let mut ring_ids: HashMap<(usize, usize), usize> = HashMap::new();
    for (k, &root) in g.roots.iter().enumerate() {
        if k > 0 {
            s.push('.');
        }
        atom_smiles(&g.atoms[root], &mut s);
        // (atom, next out-bond, close a parenthesis when done)
        let mut stack = vec![(root, 0usize, false)];
        while let Some(top) = stack.last_mut() {
            let (a, i, close) = *top;
            let bonds = &g.out[a];
            if i == bonds.len() {
                stack.pop();
                if close {
                    s.push(')');
                }
                continue;
            }
            top.1 += 1;
            let b = &bonds[i];
            if b.ring {
                bond_smiles(b, &mut s);
                let key = (a.min(b.dst), a.max(b.dst));
                let next = ring_ids.len() + 1;
                let id = *ring_ids.entry(key).or_insert(next);
                if id >= 10 {
                    s.push('%');
                }
                s.push_str(&id.to_string());
            } else {
                let last = i + 1 == bonds.len();
                if !last {
                    s.push('(');
                }
                bond_smiles(b, &mut s);
                atom_smiles(&g.atoms[b.dst], &mut s);
                stack.push((b.dst, 0, !last));
            }
        }
    }
    s
}

/// Decode a SELFIES string into SMILES by the SELFIES grammar (default constraints of
/// `selfies` 2.2.0; see the module docs). The result is a kekulé SMILES whose every atom
/// respects its bonding capacity. Errors name the malformed or unknown symbol.
pub fn decode_selfies(selfies: &str) -> Result<String> {
    let mut d = Deriver {
        syms: Vec::new(),
        pos: 0,
        mol: Graph::default(),
        rings: Vec::new(),
    };
    for frag in selfies.split('.') {
        d.syms = split_selfies(frag)?
            .into_iter()
            .filter(|&s| s != "[nop]")
            .collect();
        d.pos = 0;
        d.derive(None, 0, None, 0)?;
    }
    d.form_rings();
    Ok(write_smiles(&d.mol))
}
