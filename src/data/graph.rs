//! Graph routines for the SMILES checker: bridges (bonds in no cycle) and an exact
//! perfect-matching search for kekulization.

use super::smiles_check::BondKind;

/// Backtracking perfect matching, always branching on the free node with fewest free
/// neighbours (forced moves first). `budget` bounds the number of search steps.
pub(crate) fn matching(adj: &[Vec<usize>], mate: &mut [usize], budget: &mut usize) -> bool {
    const FREE: usize = usize::MAX;
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    let mut best: Option<(usize, usize)> = None;
    for u in 0..adj.len() {
        if mate[u] != FREE {
            continue;
        }
        let d = adj[u].iter().filter(|&&v| mate[v] == FREE).count();
        if d == 0 {
            return false;
        }
        if best.is_none_or(|(_, bd)| d < bd) {
            best = Some((u, d));
        }
        if d == 1 {
            break;
        }
    }
    let Some((u, _)) = best else { return true };
    for k in 0..adj[u].len() {
        let v = adj[u][k];
        if mate[v] != FREE {
            continue;
        }
        mate[u] = v;
        mate[v] = u;
        if matching(adj, mate, budget) {
            return true;
        }
        mate[u] = FREE;
        mate[v] = FREE;
        if *budget == 0 {
            return false;
        }
    }
    false
}

/// Which bonds are bridges (in no cycle): iterative Tarjan low-link.
pub(crate) fn bridges(n: usize, bonds: &[(usize, usize, BondKind)]) -> Vec<bool> {
    let mut adj: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    for (k, &(a, b, _)) in bonds.iter().enumerate() {
        adj[a].push((b, k));
        adj[b].push((a, k));
    }
    let mut is_bridge = vec![false; bonds.len()];
    let mut disc = vec![usize::MAX; n];
    let mut low = vec![0usize; n];
    let mut time = 0;
    for s in 0..n {
        if disc[s] != usize::MAX {
            continue;
        }
        disc[s] = time;
        low[s] = time;
        time += 1;
        // (node, edge used to enter it, next adjacency index)
        let mut stack = vec![(s, usize::MAX, 0usize)];
        while let Some(&mut (u, via, ref mut i)) = stack.last_mut() {
            if *i < adj[u].len() {
                let (v, k) = adj[u][*i];
                *i += 1;
                if k == via {
                    continue;
                }
                if disc[v] == usize::MAX {
                    disc[v] = time;
                    low[v] = time;
                    time += 1;
                    stack.push((v, k, 0));
                } else {
                    low[u] = low[u].min(disc[v]);
                }
            } else {
                stack.pop();
                if let Some(&(p, _, _)) = stack.last() {
                    low[p] = low[p].min(low[u]);
                    if low[u] > disc[p] {
                        is_bridge[via] = true;
                    }
                }
            }
        }
    }
    is_bridge
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(n: usize) -> Vec<Vec<usize>> {
        (0..n).map(|i| vec![(i + n - 1) % n, (i + 1) % n]).collect()
    }

    #[test]
    fn matching_even_and_odd_cycles() {
        let mut budget = 1000;
        let mut mate = vec![usize::MAX; 6];
        assert!(matching(&ring(6), &mut mate, &mut budget));
        assert!((0..6).all(|i| mate[mate[i]] == i && mate[i] != i));
        let mut mate = vec![usize::MAX; 5];
        assert!(!matching(&ring(5), &mut mate, &mut 1000));
        // Azulene: a 5-ring fused to a 7-ring (not bipartite) has a perfect matching.
        let mut g: Vec<Vec<usize>> = vec![Vec::new(); 10];
        let edges = [
            (0, 1),
            (1, 2),
            (2, 3),
            (3, 4),
            (4, 0),
            (4, 5),
            (5, 6),
            (6, 7),
            (7, 8),
            (8, 9),
            (9, 0),
        ];
        for (a, b) in edges {
            g[a].push(b);
            g[b].push(a);
        }
        let mut mate = vec![usize::MAX; 10];
        assert!(matching(&g, &mut mate, &mut 1000));
    }

    #[test]
    fn bridges_of_two_rings_joined_by_a_bond() {
        let s = BondKind::Single;
        let mut bonds = vec![
            (0, 1, s),
            (1, 2, s),
            (0, 2, s),
            (3, 4, s),
            (4, 5, s),
            (3, 5, s),
        ];
        bonds.push((2, 3, s));
        let b = bridges(6, &bonds);
        assert_eq!(b, vec![false, false, false, false, false, false, true]);
    }
}
