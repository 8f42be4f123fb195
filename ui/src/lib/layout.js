// The graph layout: dagre's layered (Sugiyama) layout, left to right. It orders nodes within layers to cut edge
// crossings and routes every edge around the boxes, which a hand-made column layout cannot do past a few dozen
// nodes. Cycles (which validation reports) are broken by dagre itself, so the layout always ends.
import dagre from '@dagrejs/dagre';

export const NODE_W = 196;
export const NODE_H = 98;
const PAD = 24;

/**
 * Positions of `nodes` ({key}) joined by `edges` ({from, to, kind}).
 * Returns {pos: {key: {x, y}} (top-left corners), routes: {"from->to": [{x, y}…]}, width, height}.
 */
export function layout(nodes, edges) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'LR', nodesep: 28, ranksep: 64, edgesep: 14, marginx: PAD, marginy: PAD });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) g.setNode(n.key, { width: NODE_W, height: NODE_H });
  for (const e of edges) {
    if (e.from === e.to || !g.hasNode(e.from) || !g.hasNode(e.to)) continue;
    // A fallback is a side exit: it should not pull its target into the main line.
    g.setEdge(e.from, e.to, { weight: e.kind === 'fallback' ? 0 : 1, minlen: 1 });
  }
  dagre.layout(g);
  const pos = {};
  for (const key of g.nodes()) {
    const n = g.node(key);
    pos[key] = { x: n.x - NODE_W / 2, y: n.y - NODE_H / 2 };
  }
  const routes = {};
  for (const e of g.edges()) routes[`${e.v}->${e.w}`] = lanePath(pos[e.v], pos[e.w], g.edge(e).points ?? []);
  const graph = g.graph();
  return { pos, routes, width: Math.ceil(graph.width ?? 0), height: Math.ceil(graph.height ?? 0) };
}

/**
 * An edge from the middle of a's right side to the middle of b's left side that bends only between columns.
 * dagre gives a long edge one point per column it crosses, in a lane of its own there (its dummy node); the path
 * runs straight through each column in that lane and curves only in the gaps, where there are no boxes, so no
 * edge runs through a box. (dagre's own end segments are straight lines to the box borders, which cut through
 * the boxes stacked above or below the end when many edges meet there.)
 */
function lanePath(a, b, points) {
  const x0 = a.x + NODE_W, y0 = a.y + NODE_H / 2, x1 = b.x, y1 = b.y + NODE_H / 2;
  if (x1 <= x0) return edgePath(a, b); // a cycle, drawn backwards: loop around
  let d = `M${x0},${y0}`;
  let x = x0, y = y0;
  const curve = (tx, ty) => {
    const mid = (x + tx) / 2;
    d += ` C${mid},${y} ${mid},${ty} ${tx},${ty}`;
    x = tx;
    y = ty;
  };
  for (const p of points.slice(1, -1)) {
    if (p.x - NODE_W / 2 <= x || p.x + NODE_W / 2 >= x1) continue; // not a column between the two ends
    curve(p.x - NODE_W / 2, p.y);
    d += ` L${p.x + NODE_W / 2},${p.y}`;
    x = p.x + NODE_W / 2;
  }
  curve(x1, y1);
  return d;
}

/** An SVG path from the right side of one node to the left side of another (for nodes the user moved). */
export function edgePath(a, b) {
  const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2;
  if (x2 <= x1) {
    // backwards (a cycle, or a node dragged left): loop around
    const dy = Math.max(NODE_H, Math.abs(y2 - y1) / 2);
    return `M${x1},${y1} C${x1 + 60},${y1 + dy} ${x2 - 60},${y2 + dy} ${x2},${y2}`;
  }
  const mid = (x1 + x2) / 2;
  return `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`;
}

/**
 * A Svelte action writing `text` into an SVG <text> and shortening it with a middle ellipsis until it is at most
 * `max` pixels wide, measured as rendered (ids often differ only at the end: worker0, worker1).
 */
export function fitText(node, params) {
  const apply = ({ text, max }) => {
    const full = String(text ?? '');
    node.textContent = full;
    if (!node.getComputedTextLength || node.getComputedTextLength() <= max) return;
    for (let keep = full.length - 1; keep > 1; keep--) {
      const head = Math.ceil(keep / 2);
      node.textContent = `${full.slice(0, head)}…${full.slice(full.length - (keep - head))}`;
      if (node.getComputedTextLength() <= max) return;
    }
  };
  apply(params);
  return { update: apply };
}
