// The picture of a graph thread's StateGraph, laid out by dagre and drawn as
// SVG: nodes (with __start__ and __end__), plain edges as solid arrows, joins
// (several sources) through a small junction dot, conditional edges dashed to
// every target the router may choose, and the nodes that run next (the
// selected checkpoint's `next`) outlined thick with a "▶ next" marker.

import dagre from "../../vendor/dagre.esm.js";
import { h, svg } from "../dom.js";

const START = "__start__";
const END = "__end__";
const NODE_HEIGHT = 48;
const CHAR_WIDTH = 8.2; // px per character of the 14px label font, roughly

// Every edge the spec implies: {from, to, kind: plain|join|conditional, label}.
export function graphEdges(spec) {
  const names = (spec.nodes || []).map((n) => n.name);
  const edges = [];
  const joins = [];
  (spec.edges || []).forEach((edge, i) => {
    const sources = edge.sources || [];
    if (sources.length > 1) {
      const junction = `join:${i}`;
      joins.push({ id: junction, sources, target: edge.target });
      for (const s of sources) edges.push({ from: s, to: junction, kind: "join" });
      edges.push({ from: junction, to: edge.target, kind: "join" });
    } else if (sources.length === 1) {
      edges.push({ from: sources[0], to: edge.target, kind: "plain" });
    }
  });
  for (const cond of spec.conditional_edges || []) {
    const map = cond.path_map || {};
    // An empty path_map: the router may return any node or __end__.
    const targets = Object.keys(map).length
      ? Object.entries(map).map(([key, to]) => ({ to, label: key === to ? "" : key }))
      : [...names, END].map((to) => ({ to, label: "" }));
    const seen = new Set();
    for (const t of targets) {
      if (seen.has(t.to)) continue;
      seen.add(t.to);
      edges.push({ from: cond.source, to: t.to, kind: "conditional", label: t.label, router: cond.router });
    }
  }
  return { edges, joins };
}

function labelWidth(text) {
  return Math.max(84, Math.ceil(text.length * CHAR_WIDTH) + 32);
}

function pathOf(points) {
  return points.map((p, i) => `${i ? "L" : "M"}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(" ");
}

/** A plain-language description of the graph for screen readers. */
export function describe(spec, edges, next) {
  const lines = edges
    .filter((e) => !e.from.startsWith("join:"))
    .map((e) => {
      if (e.kind === "join") return null;
      return `${e.from} ${e.kind === "conditional" ? "may go to" : "goes to"} ${e.to}`;
    })
    .filter(Boolean);
  const joins = (spec.edges || []).filter((e) => (e.sources || []).length > 1);
  for (const j of joins) lines.push(`${j.target} runs after all of ${j.sources.join(", ")}`);
  const now = next.length ? `Runs next: ${next.join(", ")}.` : "Nothing runs next.";
  return `${now} ${lines.join("; ")}.`;
}

/**
 * Draws `spec` into `container`; `next` are the names to mark current.
 * Returns the <svg>.
 */
export function renderGraph(container, spec, next) {
  const current = new Set(next || []);
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: "TB", nodesep: 32, ranksep: 46, edgesep: 14, marginx: 14, marginy: 14 });
  g.setDefaultEdgeLabel(() => ({}));
  const nodes = [{ name: START }, ...(spec.nodes || []), { name: END }];
  for (const node of nodes) {
    const sub = node.subgraph ? `subgraph ${node.subgraph}` : "";
    const width = Math.max(labelWidth(node.name), sub ? labelWidth(sub) : 0);
    g.setNode(node.name, { width, height: NODE_HEIGHT, node });
  }
  const { edges, joins } = graphEdges(spec);
  for (const j of joins) g.setNode(j.id, { width: 12, height: 12, junction: j });
  edges.forEach((e, i) => {
    // Names an edge refers to but no node declares still get a box.
    for (const end of [e.from, e.to]) if (!g.hasNode(end)) g.setNode(end, { width: labelWidth(end), height: NODE_HEIGHT, node: { name: end } });
    if (e.from === e.to) return; // self-loops are drawn after the layout
    const label = e.label ? { width: labelWidth(e.label) - 24, height: 18, labelpos: "c" } : {};
    g.setEdge(e.from, e.to, { ...label, edge: e }, `e${i}`);
  });
  dagre.layout(g);

  // Every edge to draw: {e, d (SVG path), at (label position)}.
  const drawn = g.edges().map((ref) => {
    const data = g.edge(ref);
    return { e: data.edge, d: pathOf(data.points || []), points: data.points || [], at: data.x !== undefined ? data : null };
  });
  // A router that may return to its own node: a loop on the node's right.
  for (const e of edges.filter((x) => x.from === x.to)) {
    const n = g.node(e.from);
    const x = n.x + n.width / 2;
    const d = `M${x},${n.y - 10} C${x + 44},${n.y - 30} ${x + 44},${n.y + 30} ${x},${n.y + 10}`;
    drawn.push({ e, d, points: [{ x: x + 40, y: n.y - 24 }, { x: x + 40, y: n.y + 24 }], at: { x: x + 50, y: n.y } });
  }

  // The picture's box: dagre's size leaves out self-loops (a router that
  // may return to its own node), so it is taken from every node and point.
  const box = { x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity };
  const grow = (x, y) => {
    box.x0 = Math.min(box.x0, x); box.y0 = Math.min(box.y0, y);
    box.x1 = Math.max(box.x1, x); box.y1 = Math.max(box.y1, y);
  };
  for (const name of g.nodes()) {
    const n = g.node(name);
    grow(n.x - n.width / 2, n.y - n.height / 2);
    grow(n.x + n.width / 2, n.y + n.height / 2);
  }
  for (const { points, e, at } of drawn) {
    for (const pt of points) grow(pt.x, pt.y);
    if (e.label && at) grow(at.x + labelWidth(e.label) / 2, at.y);
  }
  const pad = 14;
  const left = Math.floor(box.x0 - pad);
  const top = Math.floor(box.y0 - pad);
  const width = Math.ceil(box.x1 - box.x0 + 2 * pad);
  const height = Math.ceil(box.y1 - box.y0 + 2 * pad);
  const title = svg("title", { id: "graph-title" }, `Graph ${spec.name}`);
  const desc = svg("desc", { id: "graph-desc" }, describe(spec, edges, [...current]));
  const defs = svg(
    "defs",
    {},
    svg("marker", { id: "graph-arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "8", markerHeight: "8", orient: "auto-start-reverse" },
      svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow-head" })),
  );
  const edgeLayer = svg("g", { class: "edges", "aria-hidden": "true" });
  for (const { e, d, at } of drawn) {
    const toJunction = e.to.startsWith("join:");
    edgeLayer.append(
      svg(
        "path",
        {
          d,
          class: `edge ${e.kind}`,
          "data-from": e.from,
          "data-to": e.to,
          "data-kind": e.kind,
          fill: "none",
          "stroke-dasharray": e.kind === "conditional" ? "6 4" : null,
          "marker-end": toJunction ? null : "url(#graph-arrow)",
        },
        svg("title", {}, `${e.from} → ${e.to}${e.kind === "conditional" ? ` (conditional, router ${e.router})` : ""}`),
      ),
    );
    if (e.label && at) {
      edgeLayer.append(svg("text", { x: at.x, y: at.y + 4, class: "edge-label", "text-anchor": "middle" }, e.label));
    }
  }
  const nodeLayer = svg("g", { class: "nodes" });
  for (const name of g.nodes()) {
    const n = g.node(name);
    if (n.junction) {
      nodeLayer.append(
        svg("circle", { cx: n.x, cy: n.y, r: 6, class: "junction", role: "img", "aria-label": `join: ${n.junction.target} after ${n.junction.sources.join(", ")}` },
          svg("title", {}, `join: ${n.junction.target} runs after ${n.junction.sources.join(", ")}`)),
      );
      continue;
    }
    nodeLayer.append(drawNode(name, n, current.has(name)));
  }
  const picture = svg(
    "svg",
    {
      "data-testid": "graph",
      class: "graph",
      viewBox: `${left} ${top} ${width} ${height}`,
      width,
      height,
      role: "group",
      "aria-labelledby": "graph-title",
      "aria-describedby": "graph-desc",
    },
    title,
    desc,
    defs,
    edgeLayer,
    nodeLayer,
  );
  container.append(
    h("div", { class: "graph-scroll", tabindex: "0", "aria-label": `Graph ${spec.name} (scrollable)` }, picture),
    h("p", { class: "graph-legend" },
      "Solid arrow: edge. Dashed arrow: conditional edge (a router chooses). Dot: join (waits for all its sources). ",
      "Thick outline and ▶: runs next at the selected checkpoint."),
  );
  return picture;
}

function drawNode(name, n, isCurrent) {
  const special = name === START || name === END;
  const sub = n.node && n.node.subgraph ? `subgraph ${n.node.subgraph}` : "";
  const x = n.x - n.width / 2;
  const y = n.y - n.height / 2;
  const label = isCurrent ? `${name}, runs next` : name;
  const lines = [name, sub, isCurrent ? "▶ next" : ""].filter(Boolean);
  const first = n.y - ((lines.length - 1) * 15) / 2 + 5;
  return svg(
    "g",
    {
      "data-testid": "graph-node",
      "data-node": name,
      "data-current": isCurrent ? "true" : null,
      class: `graph-node${isCurrent ? " current" : ""}${special ? " special" : ""}`,
      role: "img",
      "aria-label": sub ? `${label} (${sub})` : label,
    },
    svg("title", {}, sub ? `${label} (${sub})` : label),
    svg("rect", {
      x, y, width: n.width, height: n.height,
      rx: special ? n.height / 2 : 8,
      class: "node-box",
      "stroke-width": isCurrent ? 4 : 1.5,
    }),
    lines.map((text, i) =>
      svg("text", { x: n.x, y: first + i * 15, "text-anchor": "middle", class: i === 0 ? "node-label" : "node-sub" }, text),
    ),
  );
}
