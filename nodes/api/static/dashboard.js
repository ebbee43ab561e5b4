// The dashboard: reads this node's API every few seconds and draws it. No libraries, no external files.
"use strict";

const COLOURS = ["#0969da", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a3069", "#57606a"];
const token = new URLSearchParams(location.hash.slice(1)).get("token");

// A validator process serves several chains (its area chains and the network chain): #chain=<name> picks
// the one shown below the chains table (default: the node's default chain, the network's).
function chainLink(c, shown) {
  const params = new URLSearchParams(location.hash.slice(1));
  params.set("chain", c.name);
  const a = el("a", c.chain_id);
  a.href = "#" + params.toString();
  const td = el("td", null, c.name === shown ? "shown" : "");
  td.append(a);
  return td;
}

function shownChain(chains) {
  const wanted = new URLSearchParams(location.hash.slice(1)).get("chain");
  return chains.find((c) => c.name === wanted) || chains.find((c) => c.default);
}

async function get(path) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const response = await fetch(path, { headers });
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  return response.json();
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function fill(tbodyOrTable, rows) {
  const body = tbodyOrTable.tagName === "TBODY" ? tbodyOrTable : tbodyOrTable.querySelector("tbody");
  body.replaceChildren(...rows.map((cells) => {
    const tr = el("tr");
    for (const c of cells) tr.append(c instanceof Node ? c : el("td", c));
    return tr;
  }));
}

function yesNo(value) { return el("td", value ? "yes" : "no", value ? "yes" : "no"); }
function num(value) { return el("td", value === null || value === undefined ? "–" : Number(value).toLocaleString("en"), "num"); }

function drawImbalance(series, names) {
  const box = document.getElementById("imbalance-chart");
  const groups = [...new Set(series.flatMap((p) => Object.keys(p.groups)))].sort();
  const W = 900, H = 220, L = 70, B = 20;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("width", "100%");
  svg.setAttribute("role", "img");
  const values = series.flatMap((p) => Object.values(p.groups));
  const top = Math.max(1, ...values.map((v) => Math.abs(v)));
  const x = (i) => L + (series.length < 2 ? 0 : (i * (W - L - 10)) / (series.length - 1));
  const y = (v) => (H - B) / 2 - (v / top) * ((H - B) / 2 - 8);
  const line = (x1, y1, x2, y2, colour) => {
    const l = document.createElementNS(ns, "line");
    Object.entries({ x1, y1, x2, y2, stroke: colour }).forEach(([k, v]) => l.setAttribute(k, v));
    svg.append(l);
  };
  const label = (tx, ty, text, anchor) => {
    const t = document.createElementNS(ns, "text");
    Object.entries({ x: tx, y: ty, "font-size": 11, "text-anchor": anchor || "end" }).forEach(([k, v]) => t.setAttribute(k, v));
    t.textContent = text;
    svg.append(t);
  };
  line(L, y(0), W - 10, y(0), "#8c959f");
  label(L - 4, y(top) + 4, "+" + top.toLocaleString("en"));
  label(L - 4, y(0) + 4, "0");
  label(L - 4, y(-top) + 4, "-" + top.toLocaleString("en"));
  if (series.length) {
    label(L, H - 4, series[0].period, "start");
    label(W - 10, H - 4, series[series.length - 1].period, "end");
  }
  const legend = document.getElementById("imbalance-legend");
  legend.replaceChildren();
  groups.forEach((g, gi) => {
    const colour = COLOURS[gi % COLOURS.length];
    const pts = series.map((p, i) => (g in p.groups ? `${x(i).toFixed(1)},${y(p.groups[g]).toFixed(1)}` : null)).filter(Boolean);
    const pl = document.createElementNS(ns, "polyline");
    pl.setAttribute("points", pts.join(" "));
    pl.setAttribute("fill", "none");
    pl.setAttribute("stroke", colour);
    pl.setAttribute("stroke-width", "2");
    svg.append(pl);
    const item = el("span", "■ " + (names[g] ? names[g] + " " : "") + g);
    item.style.color = colour;
    legend.append(item);
  });
  box.replaceChildren(svg);
}

async function refresh() {
  const status = await get("status");
  document.getElementById("node-name").textContent = `${status.name} (${status.role})`;
  const chains = await get("chains");
  const shown = shownChain(chains.chains);
  fill(document.getElementById("chains"), chains.chains.map((c) => [chainLink(c, shown.name), num(c.height), c.height === null ? "–" : periodOf(c)]));
  document.getElementById("shown-chain").textContent = shown.chain_id;
  const chain = encodeURIComponent(shown.name);
  const [seals, validators, imbalance, evidence] = await Promise.all([
    get(`chains/${chain}/seals?limit=8`), get(`chains/${chain}/validators`),
    get(`chains/${chain}/imbalance?hours=24`), get(`chains/${chain}/evidence`),
  ]);
  const last = seals.seals[0];
  if (last) {
    const hash = document.getElementById("last-seal-hash");
    hash.textContent = last.seal_hash;
    hash.dataset.height = last.height;
    document.getElementById("last-seal-height").textContent = last.height;
    document.getElementById("last-seal-period").textContent = last.period;
  }
  fill(document.getElementById("seals"), seals.seals.map((s) => [num(s.height), s.period, el("td", s.seal_hash, "hash"), num(s.round), s.signers.map((v) => v.name).join(", ")]));
  fill(document.getElementById("validators"), validators.validators.map((v) => [v.name + (v.this_node ? " (this node)" : ""), v.grid_area, yesNo(v.online), yesNo(v.signed_last)]));
  drawImbalance(imbalance.points, imbalance.group_names);
  const mix = imbalance.points.length ? imbalance.points[imbalance.points.length - 1].mix : {};
  const mixRows = Object.entries(mix).map(([source, wh]) => [source, num(wh)]);
  if (!mixRows.length && shown.scope === "network") mixRows.push(["in the area chains' seals (pick one above)", ""]);
  fill(document.getElementById("mix"), mixRows);
  const health = ["peers", "quorum", "catching_up", "behind_periods", "halted", "settlement_waiting"]
    .filter((k) => k in status).map((k) => [k, k === "peers" ? status[k] + " connected"
      : status[k] === null ? "no" : typeof status[k] === "boolean" ? (status[k] ? "yes" : "no") : String(status[k])]);
  fill(document.getElementById("health"), health);
  const rejections = Object.entries(status.rejections || {});
  fill(document.getElementById("rejections"), rejections.length ? rejections.map(([r, n]) => [r, num(n)]) : [["none since start", ""]]);
  fill(document.getElementById("evidence"), evidence.evidence.length
    ? evidence.evidence.map((e) => [e.kind, num(e.height), e.included_height ?? "pending", e.hash.slice(0, 16) + "…"])
    : [["none", "", "", ""]]);
  document.getElementById("updated").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
}

function periodOf(chain) {
  const start = (chain.height * chain.period_seconds) * 1000;
  return new Date(start).toISOString().replace(".000", "");
}

async function loop() {
  try {
    await refresh();
  } catch (e) {
    document.getElementById("updated").textContent = "cannot read the API: " + e.message;
  }
  setTimeout(loop, 3000);
}
window.addEventListener("hashchange", () => refresh().catch(() => {}));
loop();
