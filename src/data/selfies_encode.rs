//! The SELFIES encoder: SMILES → SELFIES, as `selfies.encoder` 2.2.0 writes it.
//!
//! The SMILES is first checked with [`super::smiles_check::check_smiles`], then read into a
//! graph in the reference's order (atoms in string order; a ring bond takes the out-bond
//! slot of its opening digit), kekulized (aromatic atoms that need a π bond, by Apodaca's
//! rule, get a perfect matching: the reference's greedy lowest-free-degree matching followed
//! by breadth-first augmenting paths), checked against the bonding capacities of
//! [`super::selfies::bonding_capacity`], and written by a depth-first walk: an atom per
//! symbol, `[Branch L]` + `L` index symbols before every branch but the last, `[Ring L]` +
//! index symbols at the later atom of each ring bond. Chirality marks are inverted where
//! the reference inverts them (an odd permutation of the atom's bonds by the reordering
//! that SELFIES ring symbols imply).
//!
//! Not supported (errors, as in the reference): `*`, `$`, chirality other than `@`/`@@`,
//! ring bonds across `.`, and molecules outside the bonding capacities.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::OnceLock;

use regex::Regex;

use super::selfies::{INDEX_ALPHABET, bonding_capacity};
use super::smiles::tokenize_smiles;
use super::smiles_check::check_smiles;
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
struct EAtom {
    element: String,
    aromatic: bool,
    isotope: Option<String>,
    chirality: Option<String>,
    h: Option<i64>,
    charge: i64,
}

/// A directed bond; `order2` is twice the bond order (aromatic 1.5 → 3).
#[derive(Debug, Clone)]
struct EBond {
    src: usize,
    dst: usize,
    order2: i64,
    stereo: Option<char>,
    ring: bool,
}

#[derive(Default)]
struct Mol {
    atoms: Vec<EAtom>,
    bonds: Vec<EBond>,
    out: Vec<Vec<Option<usize>>>,
    count2: Vec<i64>,
    ring_flag: Vec<bool>,
    ds: Vec<Vec<usize>>,
    pair: HashMap<(usize, usize), Vec<usize>>,
    roots: Vec<usize>,
}

fn bad(smiles: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid(
        "smiles",
        format!("cannot encode {smiles:?} as SELFIES: {why}"),
    )
}

fn bracket_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"^\[(\d*)([A-Za-z][a-z]?)(@{0,2})((?:H\d?)?)((?:\++|-+|[+-]\d+)?)((?::\d+)?)\]$",
        )
        .expect("valid bracket regex")
    })
}

fn parse_atom(tok: &str) -> Option<EAtom> {
    let plain = |el: &str, aromatic| EAtom {
        element: el.to_string(),
        aromatic,
        isotope: None,
        chirality: None,
        h: None,
        charge: 0,
    };
    match tok {
        "B" | "C" | "N" | "O" | "S" | "P" | "F" | "Cl" | "Br" | "I" => {
            return Some(plain(tok, false));
        }
        "b" | "c" | "n" | "o" | "s" | "p" => return Some(plain(&tok.to_uppercase(), true)),
        _ => {}
    }
    let m = bracket_regex().captures(tok)?;
    let el = &m[2];
    let aromatic = el.chars().next()?.is_ascii_lowercase();
    let mut element = el.to_string();
    element[..1].make_ascii_uppercase();
    let h = match &m[4] {
        "" => 0,
        "H" => 1,
        s => s[1..].parse().ok()?,
    };
    let charge = match &m[5] {
        "" => 0,
        s if s.len() > 1 && s[1..].chars().all(|c| c.is_ascii_digit()) => {
            let v: i64 = s[1..].parse().ok()?;
            if s.starts_with('-') { -v } else { v }
        }
        s => s.len() as i64 * if s.starts_with('-') { -1 } else { 1 },
    };
    Some(EAtom {
        element,
        aromatic,
        isotope: (!m[1].is_empty()).then(|| m[1].to_string()),
        chirality: (!m[3].is_empty()).then(|| m[3].to_string()),
        h: Some(h),
        charge,
    })
}

fn bond_of(c: Option<&str>) -> (i64, Option<char>) {
    match c {
        Some("=") => (4, None),
        Some("#") => (6, None),
        Some(":") => (3, None),
        Some("/") => (2, Some('/')),
        Some("\\") => (2, Some('\\')),
        _ => (2, None),
    }
}

impl Mol {
    fn add_atom(&mut self, a: EAtom) -> usize {
        self.atoms.push(a);
        self.out.push(Vec::new());
        self.count2.push(0);
        self.ring_flag.push(false);
        self.ds.push(Vec::new());
        self.atoms.len() - 1
    }

    fn add_bond(&mut self, b: EBond, pos: Option<usize>) {
        let (s, d) = (b.src, b.dst);
        let k = self.bonds.len();
        self.bonds.push(b);
        match pos {
            Some(p) if p < self.out[s].len() && self.out[s][p].is_none() => {
                self.out[s][p] = Some(k)
            }
            Some(p) if p < self.out[s].len() => self.out[s].insert(p, Some(k)),
            _ => self.out[s].push(Some(k)),
        }
        self.pair.entry((s.min(d), s.max(d))).or_default().push(k);
    }

    fn connect(
        &mut self,
        a: usize,
        b: usize,
        order2: i64,
        st: (Option<char>, Option<char>),
        ring: Option<usize>,
    ) {
        self.add_bond(
            EBond {
                src: a,
                dst: b,
                order2,
                stereo: st.0,
                ring: ring.is_some(),
            },
            ring,
        );
        if ring.is_some() {
            self.add_bond(
                EBond {
                    src: b,
                    dst: a,
                    order2,
                    stereo: st.1,
                    ring: true,
                },
                None,
            );
            self.ring_flag[a] = true;
            self.ring_flag[b] = true;
        }
        self.count2[a] += order2;
        self.count2[b] += order2;
        if order2 == 3 {
            self.ds[a].push(b);
            self.ds[b].push(a);
        }
    }

    fn set_order(&mut self, a: usize, b: usize, order2: i64) {
        let ks = self.pair[&(a.min(b), a.max(b))].clone();
        let old = self.bonds[ks[0]].order2;
        if old == order2 {
            return;
        }
        for k in ks {
            self.bonds[k].order2 = order2;
        }
        self.count2[a] += order2 - old;
        self.count2[b] += order2 - old;
    }
}

fn build(smiles: &str) -> Result<Mol> {
    let toks = tokenize_smiles(smiles)?;
    let mut m = Mol::default();
    let mut prev: Vec<Option<usize>> = vec![None];
    let mut rings: HashMap<&str, (Option<&str>, usize, usize)> = HashMap::new();
    let mut bond: Option<&str> = None;
    for t in toks {
        match t {
            "." => {
                if !rings.is_empty() {
                    return Err(bad(smiles, "ring bond across '.'"));
                }
                prev = vec![None];
            }
            "-" | "=" | "#" | ":" | "/" | "\\" => bond = Some(t),
            "$" => return Err(bad(smiles, "quadruple bonds")),
            "(" => prev.push(*prev.last().unwrap_or(&None)),
            ")" => {
                prev.pop();
            }
            _ if t.starts_with('%') || t.as_bytes()[0].is_ascii_digit() => {
                let p = prev
                    .last()
                    .copied()
                    .flatten()
                    .ok_or_else(|| bad(smiles, "ring bond first"))?;
                if let Some((lb, l, lpos)) = rings.remove(t) {
                    let (lo, ls) = bond_of(lb);
                    let (ro, rs) = bond_of(bond);
                    let aro = m.atoms[l].aromatic
                        && m.atoms[p].aromatic
                        && lb.is_none()
                        && bond.is_none();
                    let o = if aro { 3 } else { lo.max(ro) };
                    m.connect(l, p, o, (ls, rs), Some(lpos));
                } else {
                    let lpos = m.out[p].len();
                    m.out[p].push(None);
                    rings.insert(t, (bond, p, lpos));
                }
                bond = None;
            }
            _ => {
                let a = parse_atom(t).ok_or_else(|| bad(smiles, format!("atom {t}")))?;
                let i = m.add_atom(a);
                match prev.last().copied().flatten() {
                    None => m.roots.push(i),
                    Some(p) => {
                        let (mut o, st) = bond_of(bond);
                        if bond.is_none() && m.atoms[p].aromatic && m.atoms[i].aromatic {
                            o = 3;
                        }
                        m.connect(p, i, o, (st, None), None);
                    }
                }
                if let Some(top) = prev.last_mut() {
                    *top = Some(i);
                }
                bond = None;
            }
        }
    }
    Ok(m)
}

fn aromatic_valences(el: &str) -> Option<&'static [i64]> {
    Some(match el {
        "B" | "Al" => &[3],
        "C" | "Si" => &[4],
        "N" | "P" | "As" => &[3, 5],
        "O" | "S" | "Se" | "Te" => &[2, 4],
        _ => return None,
    })
}

fn kekulize(m: &mut Mol, smiles: &str) -> Result<()> {
    let ds_nodes: Vec<usize> = (0..m.atoms.len())
        .filter(|&i| m.atoms[i].aromatic)
        .collect();
    let mut kept = Vec::new();
    for &i in &ds_nodes {
        let adj = &m.ds[i];
        if adj.is_empty() {
            continue;
        }
        let a = &m.atoms[i];
        let vals = aromatic_valences(&a.element).ok_or_else(|| bad(smiles, "aromatic element"))?;
        let used = (m.count2[i] - adj.len() as i64) / 2;
        let prune = match a.h {
            None => vals.contains(&used),
            Some(h) => {
                let free = vals[vals.len() - 1] - a.charge - used - h;
                !(free >= 0 && free % 2 != 0)
            }
        };
        if !prune {
            kept.push(i);
        }
    }
    let mut label = vec![usize::MAX; m.atoms.len()];
    for (k, &i) in kept.iter().enumerate() {
        label[i] = k;
    }
    let graph: Vec<Vec<usize>> = kept
        .iter()
        .map(|&i| {
            m.ds[i]
                .iter()
                .filter(|&&j| label[j] != usize::MAX)
                .map(|&j| label[j])
                .collect()
        })
        .collect();
    let mate = perfect_matching(&graph).ok_or_else(|| bad(smiles, "kekulization failed"))?;
    for &i in &ds_nodes {
        for j in m.ds[i].clone() {
            m.set_order(i, j, 2);
        }
        m.atoms[i].aromatic = false;
    }
    for (k, &j) in mate.iter().enumerate() {
        m.set_order(kept[k], kept[j], 4);
    }
    Ok(())
}

/// The reference's matching: greedy by lowest free degree, then BFS augmenting paths.
fn perfect_matching(g: &[Vec<usize>]) -> Option<Vec<usize>> {
    const NONE: usize = usize::MAX;
    let n = g.len();
    let mut mate = vec![NONE; n];
    let mut free: Vec<i64> = g.iter().map(|a| a.len() as i64).collect();
    let mut heap: BinaryHeap<Reverse<(i64, usize)>> =
        (0..n).map(|i| Reverse((free[i], i))).collect();
    while let Some(Reverse((_, u))) = heap.pop() {
        if mate[u] != NONE || free[u] == 0 {
            continue;
        }
        let v = *g[u].iter().find(|&&v| mate[v] == NONE)?;
        mate[u] = v;
        mate[v] = u;
        for &a in g[u].iter().chain(&g[v]) {
            free[a] -= 1;
            if mate[a] == NONE && free[a] > 0 {
                heap.push(Reverse((free[a], a)));
            }
        }
    }
    let mut unmatched: Vec<usize> = (0..n).filter(|&i| mate[i] == NONE).collect();
    while !unmatched.is_empty() {
        let root = unmatched.remove(0);
        let mut parent: Vec<Option<(usize, usize)>> = vec![None; n];
        parent[root] = Some((NONE, NONE));
        let mut q = VecDeque::from([root]);
        let mut end = None;
        'bfs: while let Some(u) = q.pop_front() {
            for &a in &g[u] {
                if mate[a] == NONE {
                    if a != root {
                        parent[a] = Some((u, a));
                        end = Some(a);
                        break 'bfs;
                    }
                } else if parent[mate[a]].is_none() {
                    parent[mate[a]] = Some((u, a));
                    q.push_back(mate[a]);
                }
            }
        }
        let mut x = end?;
        let mut path = Vec::new();
        while x != root {
            let (p, a) = parent[x]?;
            path.push(a);
            path.push(p);
            x = p;
        }
        for c in path.chunks(2) {
            mate[c[0]] = c[1];
            mate[c[1]] = c[0];
        }
        unmatched.retain(|&i| i != path[0] && i != path[path.len() - 1]);
    }
    Some(mate)
}

fn index_symbols(n: usize) -> Vec<&'static str> {
    if n == 0 {
        return vec![INDEX_ALPHABET[0]];
    }
    let mut v = Vec::new();
    let mut n = n;
    while n > 0 {
        v.push(INDEX_ALPHABET[n % 16]);
        n /= 16;
    }
    v.reverse();
    v
}

fn bond_str(b: &EBond, stereo: bool) -> String {
    match b.order2 {
        4 => "=".into(),
        6 => "#".into(),
        _ if stereo => b.stereo.map(String::from).unwrap_or_default(),
        _ => String::new(),
    }
}

fn atom_str(a: &EAtom) -> String {
    if a.isotope.is_none() && a.chirality.is_none() && a.h.is_none() && a.charge == 0 {
        return a.element.clone();
    }
    let mut s = a.isotope.clone().unwrap_or_default();
    s.push_str(&a.element);
    if let Some(c) = &a.chirality {
        s.push_str(c);
    }
    let h = a.h.unwrap_or(0);
    if h != 0 {
        s.push_str(&format!("H{h}"));
    } else if a.isotope.is_none()
        && a.chirality.is_none()
        && a.charge == 0
        && ["B", "C", "N", "O", "S", "P", "F", "Cl", "Br", "I"].contains(&a.element.as_str())
    {
        s.push_str("H0");
    }
    if a.charge != 0 {
        s.push_str(&format!("{:+}", a.charge));
    }
    s
}

fn fragment(m: &Mol, into: Option<usize>, root: usize, depth: usize) -> Result<Vec<String>> {
    if depth > super::selfies::MAX_BRANCH_DEPTH {
        return Err(Error::invalid("smiles", "branches nested too deeply"));
    }
    let mut out = Vec::new();
    let (mut into, mut cur) = (into, root);
    loop {
        let b = into
            .map(|k| bond_str(&m.bonds[k], true))
            .unwrap_or_default();
        out.push(format!("[{b}{}]", atom_str(&m.atoms[cur])));
        let bonds: Vec<usize> = m.out[cur].iter().flatten().copied().collect();
        let mut next = None;
        for (i, &k) in bonds.iter().enumerate() {
            let b = &m.bonds[k];
            if b.ring {
                if b.src < b.dst {
                    continue;
                }
                let rev = m.pair[&(b.dst, b.src)]
                    .iter()
                    .map(|&j| &m.bonds[j])
                    .find(|x| x.src == b.dst);
                let rev = rev.ok_or_else(|| Error::invalid("smiles", "ring bond"))?;
                let q = index_symbols(b.src - b.dst - 1);
                let ch = if rev.order2 != 2 || (rev.stereo.is_none() && b.stereo.is_none()) {
                    bond_str(rev, false)
                } else {
                    format!("{}{}", rev.stereo.unwrap_or('-'), b.stereo.unwrap_or('-'))
                };
                out.push(format!("[{ch}Ring{}]", q.len()));
                out.extend(q.iter().map(|s| s.to_string()));
            } else if i + 1 == bonds.len() {
                next = Some(k);
            } else {
                let br = fragment(m, Some(k), b.dst, depth + 1)?;
                let q = index_symbols(br.len() - 1);
                out.push(format!("[{}Branch{}]", bond_str(b, false), q.len()));
                out.extend(q.iter().map(|s| s.to_string()));
                out.extend(br);
            }
        }
        match next {
            Some(k) => {
                into = Some(k);
                cur = m.bonds[k].dst;
            }
            None => return Ok(out),
        }
    }
}

fn should_invert(m: &Mol, i: usize) -> bool {
    let bonds: Vec<usize> = m.out[i].iter().flatten().copied().collect();
    let (mut p0, mut p1, mut p2) = (Vec::new(), Vec::new(), Vec::new());
    for (j, &k) in bonds.iter().enumerate() {
        let b = &m.bonds[k];
        if !b.ring {
            p2.push(j);
        } else if b.src < b.dst {
            p1.push(j);
        } else {
            p0.push(j);
        }
    }
    p1.sort_by_key(|&j| m.bonds[bonds[j]].dst);
    let perm: Vec<usize> = p0.into_iter().chain(p1).chain(p2).collect();
    let mut inv = 0;
    for a in 0..perm.len() {
        for b in a + 1..perm.len() {
            inv += usize::from(perm[a] > perm[b]);
        }
    }
    inv % 2 == 1
}

/// Encode a SMILES string as SELFIES (see the module docs). The SMILES must pass
/// [`check_smiles`] and obey the SELFIES default bonding capacities.
pub fn encode_selfies(smiles: &str) -> Result<String> {
    check_smiles(smiles)?;
    if smiles.contains('*') {
        return Err(bad(smiles, "the wildcard '*'"));
    }
    let mut m = build(smiles)?;
    kekulize(&mut m, smiles)?;
    for i in 0..m.atoms.len() {
        let a = &m.atoms[i];
        let cap = bonding_capacity(&a.element, a.charge) - a.h.unwrap_or(0);
        if m.count2[i] > 2 * cap {
            return Err(bad(
                smiles,
                format!("{} makes more than {cap} bonds", atom_str(a)),
            ));
        }
    }
    for i in 0..m.atoms.len() {
        if m.atoms[i].chirality.is_some() && m.ring_flag[i] && should_invert(&m, i) {
            let c = m.atoms[i].chirality.as_deref() == Some("@");
            m.atoms[i].chirality = Some(if c { "@@" } else { "@" }.into());
        }
    }
    let mut frags = Vec::with_capacity(m.roots.len());
    for &r in &m.roots {
        frags.push(fragment(&m, None, r, 0)?.concat());
    }
    Ok(frags.join("."))
}
