// A layered left-to-right layout: sources first, each node one column right of the furthest node feeding it,
// targets last. Cycles (which validation reports) are cut where they close, so the layout always ends.

export const NODE_W = 184;
export const NODE_H = 92;
const GAP_X = 52;
const GAP_Y = 26;
const PAD = 24;

export function layout(nodes, edges) {
  const keys = nodes.map((n) => n.key);
  const incoming = new Map(keys.map((k) => [k, []]));
  for (const e of edges) if (incoming.has(e.to) && incoming.has(e.from) && e.kind !== 'fallback') incoming.get(e.to).push(e.from);
  const layer = new Map();
  const visiting = new Set();
  const depth = (key) => {
    if (layer.has(key)) return layer.get(key);
    if (visiting.has(key)) return 0;
    visiting.add(key);
    const node = nodes.find((n) => n.key === key);
    let d = node && node.type === 'source' ? 0 : 1;
    for (const from of incoming.get(key) || []) d = Math.max(d, depth(from) + 1);
    visiting.delete(key);
    layer.set(key, d);
    return d;
  };
  keys.forEach(depth);
  const maxAgent = Math.max(1, ...nodes.filter((n) => n.type !== 'target').map((n) => layer.get(n.key)));
  for (const n of nodes) if (n.type === 'target') layer.set(n.key, maxAgent + 1);
  const columns = new Map();
  for (const n of nodes) {
    const l = layer.get(n.key);
    if (!columns.has(l)) columns.set(l, []);
    columns.get(l).push(n.key);
  }
  const pos = {};
  let height = 0;
  for (const [l, column] of columns) {
    column.forEach((key, i) => {
      pos[key] = { x: PAD + l * (NODE_W + GAP_X), y: PAD + i * (NODE_H + GAP_Y) };
      height = Math.max(height, pos[key].y + NODE_H + PAD);
    });
  }
  const width = PAD + (Math.max(0, ...columns.keys()) + 1) * (NODE_W + GAP_X);
  return { pos, width, height };
}

/** An SVG path from the right side of one node to the left side of another. */
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
