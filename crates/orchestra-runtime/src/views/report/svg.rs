//! The graph as an inline SVG: nodes in layers by their longest path from START (back edges of
//! loops left out of the layering and drawn as curves on the right), the nodes that ran drawn
//! bold with a solid border, the others dashed; edges that fired solid with their count, the
//! others dashed — readable without colour.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::html::esc;
use super::model::Graph;

const ROW: f64 = 90.0;
const GAP: f64 = 40.0;
const HEIGHT: f64 = 36.0;
const MARGIN: f64 = 30.0;

/// A node's box width for its label.
#[expect(clippy::cast_precision_loss, reason = "label lengths are small")]
fn width(label: &str) -> f64 {
    (label.chars().count() as f64).mul_add(7.5, 28.0)
}

/// Back edges: those into a node no farther from START (in edges) than their source.
fn back_edges(n: usize, ends: &[Option<(usize, usize)>]) -> Vec<bool> {
    let mut dist = vec![usize::MAX; n];
    let mut queue = std::collections::VecDeque::from([0]);
    if n > 0 {
        dist[0] = 0;
    }
    while let Some(v) = queue.pop_front() {
        for &(a, b) in ends.iter().flatten() {
            if a == v && dist[b] == usize::MAX {
                dist[b] = dist[v] + 1;
                queue.push_back(b);
            }
        }
    }
    ends.iter()
        .map(|e| e.is_some_and(|(a, b)| dist[b] <= dist[a]))
        .collect()
}

/// The SVG of `g`.
pub(crate) fn render(g: &Graph) -> String {
    let index: BTreeMap<&str, usize> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let n = g.nodes.len();
    let ends: Vec<Option<(usize, usize)>> = g
        .edges
        .iter()
        .map(|e| Some((*index.get(e.from.as_str())?, *index.get(e.to.as_str())?)))
        .collect();
    // START is node 0.
    let back = back_edges(n, &ends);
    // Longest path from START over forward edges (Bellman-style relaxation; graphs are small).
    let mut layer = vec![0usize; n];
    for _ in 0..n {
        let mut changed = false;
        for (ei, &(a, b)) in ends
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((i, e.as_ref()?)))
        {
            if !back.get(ei).copied().unwrap_or(false) && a != b && layer[b] < layer[a] + 1 {
                layer[b] = layer[a] + 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    // END goes below everything.
    if let Some(&end) = index.get("END") {
        layer[end] = layer.iter().copied().max().unwrap_or(0).max(1);
        if (0..n).any(|i| i != end && layer[i] == layer[end]) {
            layer[end] += 1;
        }
    }
    let labels: Vec<String> = g
        .nodes
        .iter()
        .map(|nd| match nd.runs {
            _ if matches!(nd.name.as_str(), "START" | "END" | "FAIL") => nd.name.clone(),
            0 => nd.name.clone(),
            1 => format!("{} ✓", nd.name),
            r => format!("{} ✓ ×{r}", nd.name),
        })
        .collect();
    let layers = layer.iter().copied().max().unwrap_or(0) + 1;
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layers];
    for (i, &l) in layer.iter().enumerate() {
        rows[l].push(i);
    }
    let row_width = |r: &Vec<usize>| {
        r.iter().map(|&i| width(&labels[i])).sum::<f64>() + GAP * (r.len().saturating_sub(1)) as f64
    };
    let widest = rows.iter().map(row_width).fold(0.0, f64::max);
    let mut pos = vec![(0.0f64, 0.0f64); n];
    for (l, r) in rows.iter().enumerate() {
        let mut x = MARGIN + (widest - row_width(r)) / 2.0;
        for &i in r {
            let w = width(&labels[i]);
            pos[i] = (x + w / 2.0, MARGIN + ROW * l as f64 + HEIGHT / 2.0);
            x += w + GAP;
        }
    }
    let total_w = widest + 2.0 * MARGIN + 360.0;
    let total_h = ROW * layers as f64 + MARGIN;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg role="img" aria-label="pipeline graph with the path taken" width="{total_w:.0}" height="{total_h:.0}" viewBox="0 0 {total_w:.0} {total_h:.0}">"#
    );
    o.push_str(r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="10" markerHeight="10" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>"#);
    o.push('\n');
    let mut backs = 0.0;
    for (ei, e) in g.edges.iter().enumerate() {
        let Some((a, b)) = ends[ei] else { continue };
        let ((x1, y1), (x2, y2)) = (pos[a], pos[b]);
        let class = if e.taken > 0 { "edge taken" } else { "edge" };
        let mut label = e.label.clone();
        if e.taken > 0 {
            if !label.is_empty() {
                label.push_str(", ");
            }
            label.push_str(&format!("taken ×{}", e.taken));
        }
        let is_back = back.get(ei).copied().unwrap_or(false) || layer[b] <= layer[a];
        // Edges between the same two nodes get their labels one line apart.
        let nth = g.edges[..ei]
            .iter()
            .filter(|x| x.from == e.from && x.to == e.to)
            .count() as f64;
        let (d, lx, ly) = if is_back {
            // Out of the source's right side, round the right of the whole graph, into the
            // target's right side; each back edge a little farther out.
            backs += 1.0;
            let (sx, tx) = (x1 + width(&labels[a]) / 2.0, x2 + width(&labels[b]) / 2.0);
            let bend = MARGIN + widest + 20.0 * backs;
            (
                format!(
                    "M{sx:.1},{:.1} C{bend:.1},{y1:.1} {bend:.1},{y2:.1} {tx:.1},{:.1}",
                    y1 + 6.0,
                    y2 - 6.0
                ),
                bend - 4.0,
                f64::midpoint(y1, y2) + 13.0 * (backs - 1.0),
            )
        } else {
            let (sy, ty) = (y1 + HEIGHT / 2.0, y2 - HEIGHT / 2.0);
            (
                format!("M{x1:.1},{sy:.1} L{x2:.1},{ty:.1}"),
                x1 + (x2 - x1) * 0.4 + 6.0,
                sy + (ty - sy) * 0.4 + 13.0 * nth,
            )
        };
        let dash = if e.taken > 0 {
            ""
        } else {
            r#" stroke-dasharray="5,4""#
        };
        let _ = writeln!(
            o,
            r#"<g class="{class}"><path d="{d}" fill="none"{dash} marker-end="url(#arrow)"/>"#
        );
        if !label.is_empty() {
            let _ = write!(
                o,
                r#"<text x="{lx:.1}" y="{ly:.1}" class="elabel">{}</text>"#,
                esc(&label)
            );
        }
        o.push_str("</g>\n");
    }
    for (i, nd) in g.nodes.iter().enumerate() {
        let (cx, cy) = pos[i];
        let w = width(&labels[i]);
        let (class, dash) = if nd.runs > 0 {
            ("node ran", "")
        } else {
            ("node", r#" stroke-dasharray="4,3""#)
        };
        let rx = if matches!(nd.name.as_str(), "START" | "END" | "FAIL") {
            HEIGHT / 2.0
        } else {
            6.0
        };
        let _ = writeln!(
            o,
            r#"<g class="{class}"><rect x="{:.1}" y="{:.1}" width="{w:.1}" height="{HEIGHT}" rx="{rx}"{dash}/><text x="{cx:.1}" y="{:.1}" text-anchor="middle">{}</text></g>"#,
            cx - w / 2.0,
            cy - HEIGHT / 2.0,
            cy + 5.0,
            esc(&labels[i])
        );
    }
    o.push_str("</svg>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::super::model::{Graph, GraphEdge, GraphNode};
    use super::*;

    fn node(name: &str, runs: u64) -> GraphNode {
        GraphNode {
            name: name.to_owned(),
            runs,
        }
    }

    fn edge(from: &str, to: &str, taken: u64) -> GraphEdge {
        GraphEdge {
            from: from.to_owned(),
            to: to.to_owned(),
            label: String::new(),
            conditional: false,
            taken,
        }
    }

    #[test]
    fn a_loop_is_layered_by_distance_from_start_and_its_back_edge_curves() {
        let g = Graph {
            nodes: vec![
                node("START", 1),
                node("a", 2),
                node("b", 2),
                node("c<x>", 0),
                node("END", 1),
            ],
            edges: vec![
                edge("START", "a", 1),
                edge("a", "b", 2),
                edge("b", "a", 1),
                edge("b", "END", 1),
                edge("a", "c<x>", 0),
            ],
            mermaid: String::new(),
        };
        let ends = [
            Some((0, 1)),
            Some((1, 2)),
            Some((2, 1)),
            Some((2, 4)),
            Some((1, 3)),
        ];
        assert_eq!(back_edges(5, &ends), [false, false, true, false, false]);
        let svg = render(&g);
        // One curve (the loop back), solid taken edges, a dashed node that did not run, and
        // its name escaped.
        assert_eq!(svg.matches(" C").count(), 1, "{svg}");
        assert!(svg.contains(">a ✓ ×2<"), "{svg}");
        assert!(svg.contains("taken ×2"), "{svg}");
        assert!(svg.contains(r#"<g class="node"><rect"#), "{svg}");
        assert!(svg.contains(">c&lt;x&gt;<"), "{svg}");
        // START above a above b above END.
        let y = |label: &str| {
            let at = svg.find(label).unwrap();
            let t = svg[..at].rfind("y=\"").unwrap();
            svg[t + 3..]
                .split('"')
                .next()
                .unwrap()
                .parse::<f64>()
                .unwrap()
        };
        assert!(y(">START<") < y(">a ✓") && y(">a ✓") < y(">b ✓") && y(">b ✓") < y(">END<"));
    }
}
