// Layout for graphs saved without positions (and the 'arrange' button): columns by depth
// (longest path from a source), order inside a column relaxed by d3-force, then a final
// pass that guarantees no two nodes of a column overlap. Deterministic: d3-force seeds its
// own random source, and the start positions depend only on the graph.
import { forceSimulation, forceLink, forceY, forceCollide } from "d3-force";

const DEFAULT_SIZE = { width: 240, height: 140 };
const COLUMN_GAP = 90;
const ROW_GAP = 36;

/** Depth of every node: 0 for sources, else 1 + the deepest upstream node (cycles cut). */
export function depths(ids, edges) {
  const up = new Map(ids.map((id) => [id, []]));
  for (const e of edges) if (up.has(e.target) && up.has(e.source)) up.get(e.target).push(e.source);
  const depth = new Map();
  const visiting = new Set();
  const visit = (id) => {
    if (depth.has(id)) return depth.get(id);
    if (visiting.has(id)) return 0;
    visiting.add(id);
    const d = up.get(id).reduce((m, s) => Math.max(m, visit(s) + 1), 0);
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  ids.forEach(visit);
  return depth;
}

/**
 * Positions for every node: `nodes` are [{id, width, height}], `edges` [{source, target}].
 * Returns [{id, x, y}] with integer coordinates, the top-left node near (0, 0).
 */
export function arrange(nodes, edges) {
  const ids = nodes.map((n) => n.id);
  const size = new Map(nodes.map((n) => [n.id, { ...DEFAULT_SIZE, ...dropEmpty(n) }]));
  const depth = depths(ids, edges);
  const columns = [];
  for (const id of ids) (columns[depth.get(id)] ||= []).push(id);
  const colX = [];
  let x = 0;
  columns.forEach((col, i) => {
    colX[i] = x;
    x += Math.max(...(col || []).map((id) => size.get(id).width), DEFAULT_SIZE.width) + COLUMN_GAP;
  });
  const sim = [];
  columns.forEach((col, i) => {
    let y = 0;
    (col || []).forEach((id) => {
      const { width, height } = size.get(id);
      sim.push({ id, x: colX[i] + width / 2, y: y + height / 2, fx: colX[i] + width / 2,
                 r: height / 2 + ROW_GAP / 2 });
      y += height + ROW_GAP;
    });
  });
  const links = edges.filter((e) => size.has(e.source) && size.has(e.target))
    .map((e) => ({ source: e.source, target: e.target }));
  const simulation = forceSimulation(sim)
    .force("link", forceLink(links).id((d) => d.id).strength(0.4))
    .force("y", forceY(0).strength(0.02))
    .force("collide", forceCollide((d) => d.r).iterations(2))
    .stop();
  for (let i = 0; i < 240; i++) simulation.tick();
  return separate(sim, depth, size);
}

function dropEmpty(n) {
  const out = {};
  if (n.width > 0) out.width = n.width;
  if (n.height > 0) out.height = n.height;
  return out;
}

/** Push nodes of one column apart (top to bottom) so none overlap, then shift to (0, 0). */
function separate(sim, depth, size) {
  const byCol = new Map();
  for (const n of sim) {
    const d = depth.get(n.id);
    if (!byCol.has(d)) byCol.set(d, []);
    byCol.get(d).push(n);
  }
  const out = [];
  for (const col of byCol.values()) {
    col.sort((a, b) => a.y - b.y);
    let bottom = -Infinity;
    for (const n of col) {
      const { width, height } = size.get(n.id);
      const top = Math.max(n.y - height / 2, bottom + ROW_GAP);
      out.push({ id: n.id, x: n.fx - width / 2, y: top });
      bottom = top + height;
    }
  }
  const minX = Math.min(...out.map((p) => p.x));
  const minY = Math.min(...out.map((p) => p.y));
  return out.map((p) => ({ id: p.id, x: Math.round(p.x - minX), y: Math.round(p.y - minY) }));
}
