//! The revision graph: every migration names its parents, and the graph must have exactly one
//! root, exactly one head, no dangling parent, no duplicate and no cycle. Its topological order
//! (ties broken by revision id) is the order every replica applies migrations in.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use super::diagnostic::{Diagnostic, Location};
use super::header::{Header, Pos};
use crate::analysis::diagnostic::Check;

/// One migration as the graph sees it.
#[derive(Debug, Clone, Copy)]
pub struct GraphNode<'a> {
    /// The file, as shown in messages.
    pub path: &'a str,
    pub header: &'a Header,
}

fn at(path: &str, pos: Pos) -> Option<Location> {
    Some(Location::new(path, pos.line, pos.column))
}

fn quoted(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks the graph and returns the indices of `nodes` in application order, or every finding.
/// `dir` is the migrations directory as shown in messages (used to name the merge file to add).
pub fn check_graph(dir: &str, nodes: &[GraphNode<'_>]) -> Result<Vec<usize>, Vec<Diagnostic>> {
    let mut errors = Vec::new();

    // Revision id -> index of the first file (in the caller's order) that defines it.
    let mut by_id: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, node) in nodes.iter().enumerate() {
        let id = node.header.revision.as_str();
        if let Some(&first) = by_id.get(id) {
            errors.push(
                Diagnostic::error(
                    Check::DuplicateRevision,
                    at(node.path, node.header.revision_pos),
                    format!("revision `{id}` is also defined by {}", nodes[first].path),
                )
                .with_help("give this migration a new, unique revision id (and update the parents that should point at it)"),
            );
        } else {
            by_id.insert(id, index);
        }
    }
    let unique: Vec<usize> = by_id.values().copied().collect();

    for &index in &unique {
        let node = nodes[index];
        for (parent, pos) in &node.header.parents {
            if parent == &node.header.revision {
                errors.push(
                    Diagnostic::error(
                        Check::Cycle,
                        at(node.path, *pos),
                        format!("revision `{parent}` names itself as its parent"),
                    )
                    .with_help("a migration's parents are the migrations it builds on; name the previous head"),
                );
            } else if !by_id.contains_key(parent.as_str()) {
                errors.push(
                    Diagnostic::error(
                        Check::DanglingParent,
                        at(node.path, *pos),
                        format!(
                            "revision `{}` names parent `{parent}`, which no migration in {dir} defines",
                            node.header.revision
                        ),
                    )
                    .with_help(format!(
                        "add the migration file that defines `{parent}` to {dir} (was it left out of the commit?), or correct the parent id"
                    )),
                );
            }
        }
    }

    let roots: Vec<usize> = unique
        .iter()
        .copied()
        .filter(|&i| nodes[i].header.parents.is_empty())
        .collect();
    if roots.len() > 1 {
        let ids: Vec<&str> = roots
            .iter()
            .map(|&i| nodes[i].header.revision.as_str())
            .collect();
        let files: Vec<&str> = roots.iter().map(|&i| nodes[i].path).collect();
        let last = roots[roots.len() - 1];
        errors.push(
            Diagnostic::error(
                Check::MultipleRoots,
                at(nodes[last].path, nodes[last].header.revision_pos),
                format!("{} migrations have `parents: none`: {} ({})", roots.len(), quoted(&ids), files.join(", ")),
            )
            .with_help("only the first migration has no parent; every later one names the migration it builds on"),
        );
    }

    // Kahn's algorithm over the edges that exist; the smallest ready revision id goes first.
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut waiting: BTreeMap<&str, usize> = BTreeMap::new();
    for &index in &unique {
        let header = nodes[index].header;
        let known: Vec<&str> = header
            .parent_ids()
            .filter(|p| *p != header.revision && by_id.contains_key(p))
            .collect();
        waiting.insert(header.revision.as_str(), known.len());
        for parent in known {
            children
                .entry(parent)
                .or_default()
                .push(header.revision.as_str());
        }
    }
    let mut ready: BTreeSet<&str> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| *id)
        .collect();
    let mut order = Vec::with_capacity(unique.len());
    while let Some(id) = ready.pop_first() {
        order.push(by_id[id]);
        for child in children.get(id).into_iter().flatten() {
            if let Some(count) = waiting.get_mut(child) {
                *count -= 1;
                if *count == 0 {
                    ready.insert(child);
                }
            }
        }
    }
    if order.len() < unique.len() {
        report_cycles(nodes, &by_id, &order, &mut errors);
    }

    let parents_of_someone: BTreeSet<&str> = unique
        .iter()
        .flat_map(|&i| nodes[i].header.parent_ids())
        .collect();
    let heads: Vec<usize> = unique
        .iter()
        .copied()
        .filter(|&i| !parents_of_someone.contains(nodes[i].header.revision.as_str()))
        .collect();
    // With a parent missing, the graph is cut in two and its heads say nothing: the dangling
    // parent is the one error to fix.
    let dangling = errors.iter().any(|e| e.check == Check::DanglingParent);
    if heads.len() > 1 && !dangling {
        errors.push(multiple_heads(dir, nodes, &heads));
    }

    if errors.is_empty() {
        Ok(order)
    } else {
        Err(errors)
    }
}

fn report_cycles(
    nodes: &[GraphNode<'_>],
    by_id: &BTreeMap<&str, usize>,
    ordered: &[usize],
    errors: &mut Vec<Diagnostic>,
) {
    let placed: BTreeSet<usize> = ordered.iter().copied().collect();
    let stuck: BTreeSet<&str> = by_id
        .iter()
        .filter(|(_, i)| !placed.contains(i))
        .map(|(id, _)| *id)
        .collect();
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    for &start in &stuck {
        // Every stuck revision has a stuck parent, so walking parents must come back to a
        // revision already seen: that loop is a cycle.
        let mut path: Vec<&str> = vec![start];
        let mut current = start;
        let cycle = loop {
            let header = nodes[by_id[current]].header;
            let Some(next) = header
                .parent_ids()
                .filter(|p| *p != current && stuck.contains(p))
                .min()
            else {
                break None;
            };
            if let Some(pos) = path.iter().position(|id| *id == next) {
                break Some(path[pos..].to_vec());
            }
            path.push(next);
            current = next;
        };
        let Some(mut cycle) = cycle else { continue };
        if cycle.iter().any(|id| reported.contains(id)) {
            continue;
        }
        reported.extend(cycle.iter().copied());
        // Start the description at the smallest id so that the message does not depend on where
        // the walk entered the loop. The walk follows parents; print it child -> parent.
        let smallest = cycle
            .iter()
            .enumerate()
            .min_by_key(|(_, id)| **id)
            .map_or(0, |(i, _)| i);
        cycle.rotate_left(smallest);
        let first = nodes[by_id[cycle[0]]];
        let mut description: Vec<String> = cycle.iter().map(|id| format!("`{id}`")).collect();
        description.push(format!("`{}`", cycle[0]));
        let files: Vec<&str> = cycle.iter().map(|id| nodes[by_id[id]].path).collect();
        errors.push(
            Diagnostic::error(
                Check::Cycle,
                at(first.path, first.header.revision_pos),
                format!(
                    "the parents form a cycle: {} (each names the next as its parent; files: {})",
                    description.join(" -> "),
                    files.join(", ")
                ),
            )
            .with_help("a migration can only build on migrations that came before it; fix the `parents:` line that points forward"),
        );
    }
}

fn multiple_heads(dir: &str, nodes: &[GraphNode<'_>], heads: &[usize]) -> Diagnostic {
    let mut ids: Vec<&str> = heads
        .iter()
        .map(|&i| nodes[i].header.revision.as_str())
        .collect();
    ids.sort_unstable();
    let listing: Vec<String> = heads
        .iter()
        .map(|&i| format!("`{}` ({})", nodes[i].header.revision, nodes[i].path))
        .collect();
    let last = heads
        .iter()
        .copied()
        .max_by_key(|&i| nodes[i].path)
        .unwrap_or(heads[0]);
    let (merge_id, merge_text) = merge_migration(&ids, None);
    let indented = merge_text.trim_end().to_owned();
    Diagnostic::error(
        Check::MultipleHeads,
        at(nodes[last].path, nodes[last].header.revision_pos),
        format!(
            "the migrations have {} heads: {}; every replica must reach one single schema",
            heads.len(),
            listing.join(", ")
        ),
    )
    .with_help(format!(
        "join the branches with a merge migration: add the file {dir}/{merge_id}_merge.sql containing\n{indented}"
    ))
}

/// The merge migration joining `heads` (sorted): its revision id and the file's text. The file the
/// `multiple-heads` error proposes, and the one `migrate merge` writes.
pub fn merge_migration(heads: &[&str], message: Option<&str>) -> (String, String) {
    let id = merge_revision_id(heads);
    let message = message.map_or_else(|| format!("merge {}", heads.join(" and ")), str::to_owned);
    let text = super::header::render_header(&id, heads, &message, false);
    (id, text)
}

/// A deterministic id for the suggested merge revision, so the suggestion is the same on every
/// machine and build.
fn merge_revision_id(heads: &[&str]) -> String {
    let digest = Sha256::digest(heads.join(",").as_bytes());
    crate::hex(&digest[..6])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::header::parse_header;

    fn headers(specs: &[(&str, &str)]) -> Vec<Header> {
        specs
            .iter()
            .map(|(rev, parents)| {
                parse_header("x", &format!("-- revision: {rev}\n-- parents: {parents}\n")).unwrap()
            })
            .collect()
    }

    fn run(specs: &[(&str, &str)]) -> Result<Vec<String>, Vec<String>> {
        let headers = headers(specs);
        let paths: Vec<String> = specs
            .iter()
            .map(|(rev, _)| format!("m/{rev}.sql"))
            .collect();
        let nodes: Vec<GraphNode> = headers
            .iter()
            .zip(&paths)
            .map(|(header, path)| GraphNode { path, header })
            .collect();
        check_graph("m", &nodes)
            .map(|order| order.iter().map(|&i| headers[i].revision.clone()).collect())
            .map_err(|errs| errs.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn linear_branch_and_merge_order_is_topological_and_stable() {
        let order = run(&[
            ("d", "b, c"),
            ("c", "a"),
            ("b", "a"),
            ("a", "none"),
            ("e", "d"),
        ])
        .unwrap();
        assert_eq!(order, ["a", "b", "c", "d", "e"]);
        let order = run(&[("z", "none"), ("y", "z"), ("x", "z"), ("w", "x, y")]).unwrap();
        assert_eq!(order, ["z", "x", "y", "w"]);
    }

    #[test]
    fn two_heads_name_both_and_print_the_merge_file() {
        let errs = run(&[("a", "none"), ("b", "a"), ("c", "a")]).unwrap_err();
        assert_eq!(errs.len(), 1);
        let id = merge_revision_id(&["b", "c"]);
        assert_eq!(
            errs[0],
            format!(
                "m/c.sql:1:14: [multiple-heads] the migrations have 2 heads: `b` (m/b.sql), `c` (m/c.sql); every replica must reach one single schema\n  = help: join the branches with a merge migration: add the file m/{id}_merge.sql containing\n          -- revision: {id}\n          -- parents: b, c\n          -- message: merge b and c"
            )
        );
    }

    #[test]
    fn dangling_parent() {
        let errs = run(&[("a", "none"), ("b", "gone")]).unwrap_err();
        assert!(errs[0].starts_with("m/b.sql:2:13: [dangling-parent] revision `b` names parent `gone`, which no migration in m defines"), "{errs:?}");
        assert_eq!(
            errs.len(),
            1,
            "no multiple-heads noise next to a dangling parent: {errs:?}"
        );
    }

    #[test]
    fn duplicate_revision() {
        let errs = run(&[("a", "none"), ("a", "none")]).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with(
            "m/a.sql:1:14: [duplicate-revision] revision `a` is also defined by m/a.sql"
        ));
    }

    #[test]
    fn cycle_is_named_from_its_smallest_id() {
        let errs = run(&[
            ("a", "none"),
            ("b", "a, d"),
            ("c", "b"),
            ("d", "c"),
            ("e", "d"),
        ])
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains("[cycle] the parents form a cycle: `b` -> `d` -> `c` -> `b`"),
            "{errs:?}"
        );
        let errs = run(&[("a", "a")]).unwrap_err();
        assert!(errs[0].contains("names itself"), "{errs:?}");
    }

    #[test]
    fn two_roots() {
        let errs = run(&[("a", "none"), ("b", "none"), ("c", "a, b")]).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains(
            "[multiple-roots] 2 migrations have `parents: none`: `a`, `b` (m/a.sql, m/b.sql)"
        ));
    }
}
