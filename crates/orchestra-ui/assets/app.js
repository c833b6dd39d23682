// The orchestra web UI: the sessions list (#/) and a session's page (#/s/ID), from the JSON API
// under /api/. Plain DOM: every text is set with textContent, never parsed as HTML.
"use strict";

const app = document.getElementById("app");
let stopLive = () => {};

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return el;
}
const svgNs = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...kids) {
  const el = document.createElementNS(svgNs, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const k of kids) el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return el;
}

async function api(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

const pad = (n) => String(n).padStart(2, "0");
function when(ms) {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}
function dur(ms) {
  if (ms < 1000) return `${ms}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.floor(s % 60)}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}
function cost(usd, partial) {
  if (usd === null || usd === undefined) return "unknown";
  return `$${usd.toFixed(4)}${partial ? " (partial)" : ""}`;
}
const status = (st) => h("span", { class: `status s-${st}` }, st);

// ---- the sessions list ----

const filters = { status: "", pipeline: "" };

function listPage() {
  document.getElementById("where").textContent = "sessions";
  const statusSel = h("select", { id: "f-status", onchange: (e) => { filters.status = e.target.value; refresh(); } });
  const pipeSel = h("select", { id: "f-pipeline", onchange: (e) => { filters.pipeline = e.target.value; refresh(); } });
  const body = h("tbody", { id: "sessions" });
  const note = h("p", { class: "muted", "aria-live": "polite" });
  app.replaceChildren(
    h("h1", {}, "Sessions"),
    h("div", { class: "filters" },
      h("label", { for: "f-status" }, "Status", statusSel),
      h("label", { for: "f-pipeline" }, "Pipeline", pipeSel)),
    h("table", {},
      h("thead", {}, h("tr", {},
        h("th", {}, "Session"), h("th", {}, "Pipeline"), h("th", {}, "Status"), h("th", {}, "Started"),
        h("th", { class: "num" }, "Duration"), h("th", { class: "num" }, "Steps"),
        h("th", { class: "num" }, "Tokens"), h("th", { class: "num" }, "Cost"), h("th", {}, "Parent"), h("th", {}, "Children"))),
      body),
    note,
    Actions.runPanel());
  const fill = (sel, values, chosen, all) => {
    const opts = [h("option", { value: "" }, all)].concat(
      [...values].sort().map((v) => h("option", { value: v, selected: v === chosen }, v)));
    sel.replaceChildren(...opts);
  };
  async function refresh() {
    let rows;
    try { rows = await api("/api/sessions"); } catch (e) { note.textContent = `error: ${e.message}`; return; }
    fill(statusSel, new Set(rows.map((r) => r.status)), filters.status, "all statuses");
    fill(pipeSel, new Set(rows.map((r) => r.pipeline)), filters.pipeline, "all pipelines");
    const childrenOf = (id) => rows.filter((c) => c.parent_session === id);
    const shown = rows.filter((r) => (!filters.status || r.status === filters.status)
      && (!filters.pipeline || r.pipeline === filters.pipeline));
    body.replaceChildren(...shown.map((r) => h("tr", { "data-session": r.id },
      h("td", {}, h("a", { href: `#/s/${encodeURIComponent(r.id)}` }, r.id), r.name ? ` (${r.name})` : ""),
      h("td", {}, r.pipeline),
      h("td", {}, status(r.status), r.error ? h("div", { class: "muted" }, r.error.split("\n")[0].slice(0, 120)) : null),
      h("td", {}, when(r.created_at)),
      h("td", { class: "num" }, dur(r.duration_ms)),
      h("td", { class: "num" }, r.steps),
      h("td", { class: "num" }, r.tokens_in + r.tokens_out),
      h("td", { class: "num" }, cost(r.cost_usd, r.cost_partial)),
      h("td", {}, r.parent_session ? [h("a", { href: `#/s/${encodeURIComponent(r.parent_session)}` },
        `${r.parent_session} @ ${r.parent_checkpoint}`), r.parent_node ? ` (call ${r.parent_node})` : " (fork)"] : "—"),
      h("td", { class: "children" }, childrenOf(r.id).length ? childrenOf(r.id).map((c) => h("div", {},
        h("a", { href: `#/s/${encodeURIComponent(c.id)}` }, c.id), ` ${c.parent_node ? `call ${c.parent_node}` : "fork"}, ${c.status}`)) : "—"))));
    note.textContent = `${shown.length} of ${rows.length} sessions; updated ${new Date().toLocaleTimeString()}`;
  }
  refresh();
  const timer = setInterval(refresh, 2000);
  stopLive = () => clearInterval(timer);
}

// ---- the graph ----

function layout(graph) {
  const depth = new Map([["START", 0]]);
  const queue = ["START"];
  while (queue.length) {
    const n = queue.shift();
    for (const e of graph.edges) {
      if (e.from === n && !depth.has(e.to)) { depth.set(e.to, depth.get(n) + 1); queue.push(e.to); }
    }
  }
  let max = Math.max(...depth.values());
  for (const n of graph.nodes) if (!depth.has(n)) depth.set(n, ++max);
  if (depth.has("END")) depth.set("END", Math.max(...[...depth.entries()].filter(([k]) => k !== "FAIL" && k !== "END").map(([, v]) => v)) + 1);
  if (depth.has("FAIL")) depth.set("FAIL", depth.get("END") || max + 1);
  const layers = new Map();
  for (const n of graph.nodes) {
    const d = depth.get(n);
    if (!layers.has(d)) layers.set(d, []);
    layers.get(d).push(n);
  }
  const W = 170, H = 36, GX = 40, GY = 70;
  const widest = Math.max(...[...layers.values()].map((l) => l.length));
  const width = widest * (W + GX) + 160;
  const pos = new Map();
  for (const [d, names] of layers) {
    const total = names.length * W + (names.length - 1) * GX;
    names.forEach((n, i) => pos.set(n, { x: (width - 160 - total) / 2 + i * (W + GX) + 20, y: 20 + d * (H + GY), w: W, h: H }));
  }
  const height = 40 + Math.max(...[...layers.keys()]) * (H + GY) + H;
  return { pos, width, height };
}

function drawGraph(graph, ran, live, takenEdges, counts, running) {
  const { pos, width, height } = layout(graph);
  const svg = s("svg", { class: "graph", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `graph of ${graph.nodes.length} nodes; nodes that ran: ${[...ran].join(", ") || "none"}; running now: ${[...running].join(", ") || "none"}` });
  svg.append(s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5",
    markerUnits: "userSpaceOnUse", markerWidth: "10", markerHeight: "10", orient: "auto-start-reverse" }, s("path", { d: "M0,0 L10,5 L0,10 z", fill: "#777" }))));
  // Edges between the same two nodes are drawn once, their labels joined.
  const merged = new Map();
  for (const e of graph.edges) {
    const k = `${e.from}>${e.to}`;
    if (merged.has(k)) merged.get(k).label = [merged.get(k).label, e.label].filter(Boolean).join(" / ");
    else merged.set(k, { ...e });
  }
  let right = width;
  [...merged.values()].forEach((e, i) => {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) return;
    const x1 = a.x + a.w / 2, y1 = a.y + a.h, x2 = b.x + b.w / 2, y2 = b.y;
    let d, lx, ly;
    if (b.y > a.y) {
      d = `M${x1},${y1} C${x1},${y1 + 30} ${x2},${y2 - 30} ${x2},${y2}`;
      lx = (x1 + x2) / 2; ly = (y1 + y2) / 2;
    } else {
      // A loop back up: around the right-hand side.
      const side = Math.max(a.x + a.w, b.x + b.w) + 30 + (i % 4) * 12;
      d = `M${a.x + a.w},${a.y + a.h / 2} C${side},${a.y + a.h / 2} ${side},${b.y + b.h / 2} ${b.x + b.w},${b.y + b.h / 2}`;
      lx = side; ly = (a.y + b.y) / 2 + b.h / 2 + (i % 3) * 14;
    }
    const n = counts.get(`${e.from}>${e.to}`) || 0;
    const taken = n > 0 || takenEdges.has(`${e.from}>${e.to}`);
    svg.append(s("path", { d, class: `edge ${e.kind}${taken ? " taken" : ""}`, "marker-end": "url(#arrow)", "data-edge": `${e.from}>${e.to}`, "data-count": n },
      s("title", {}, `${e.from} → ${e.to}${e.label ? ` (${e.label})` : ""}${n ? `, taken ${n} time${n === 1 ? "" : "s"}` : taken ? ", taken" : ""}`)));
    const short = e.label.length > 30 ? e.label.slice(0, 29) + "…" : e.label;
    const text = [short, n ? `×${n}` : ""].filter(Boolean).join(" ");
    if (text) {
      svg.append(s("text", { x: lx + 4, y: ly, class: `elabel${n ? " count" : ""}` }, text));
      // Labels of loops back are drawn right of the nodes: widen the view to hold them
      // (about 7 px a character at the labels' 11 px font).
      right = Math.max(right, lx + 4 + text.length * 7 + 10);
    }
  });
  svg.setAttribute("viewBox", `0 0 ${right} ${height}`);
  for (const n of graph.nodes) {
    const p = pos.get(n);
    const cls = `node${ran.has(n) ? " taken" : ""}${live.has(n) ? " live" : ""}${running.has(n) ? " running" : ""}`;
    const round = ["START", "END", "FAIL"].includes(n) ? 18 : 4;
    const mark = running.has(n) ? " ▶ running" : live.has(n) ? " ◆" : ran.has(n) ? " ✓" : "";
    svg.append(s("g", { class: cls, "data-node": n },
      s("title", {}, `${n}${running.has(n) ? ": running now" : live.has(n) ? ": waiting for a human" : ran.has(n) ? ": ran" : ": did not run"}`),
      s("rect", { x: p.x, y: p.y, width: p.w, height: p.h, rx: round }),
      s("text", { x: p.x + p.w / 2, y: p.y + p.h / 2 + 4, "text-anchor": "middle" }, n + mark)));
  }
  return svg;
}

// ---- a session's page ----

function sessionPage(id, params) {
  document.getElementById("where").textContent = `session ${id}`;
  const ui = { run: null, checkpoint: null };
  let startedAt = 0;
  let source = null;
  async function load() {
    let data;
    try { data = await api(`/api/sessions/${encodeURIComponent(id)}`); } catch (e) {
      app.replaceChildren(h("h1", {}, `Session ${id}`), h("p", { class: "error", role: "alert" }, e.message),
        h("p", {}, h("a", { href: "#/" }, "All sessions")));
      return;
    }
    render(data);
    if (params) { openLinked(data, params); params = null; }
  }
  // What the link names: a node run, two checkpoints compared.
  function openLinked({ shown }, p) {
    const [step, node] = (p.get("run") || "").split("/");
    const r = shown && node ? shown.steps.flatMap((st) => st.runs).find((x) => String(x.step) === step && x.node === node) : null;
    if (r) { ui.run = r; showRun(r); }
    const from = p.get("from"), to = p.get("to"), go = document.getElementById("diff-go");
    if (from !== null && to !== null && go) {
      document.getElementById("diff-from").value = from;
      document.getElementById("diff-to").value = to;
      go.click();
    }
  }
  function render({ detail, shown, graph, path }) {
    const steps = shown ? shown.steps : [];
    const ran = new Set(["START"]);
    const live = new Set();
    const taken = new Set();
    let prev = ["START"];
    for (const st of steps) {
      for (const n of st.nodes) ran.add(n);
      for (const r of st.runs) if (r.status === "paused") live.add(r.node);
      // An edge was taken when its source ran in the step before its target.
      for (const n of st.nodes) for (const p of prev) taken.add(`${p}>${n}`);
      for (const r of st.routes) for (const t of r.targets) taken.add(`${r.from}>${t}`);
      prev = st.nodes;
    }
    if (detail.status === "completed") { ran.add("END"); for (const p of prev) taken.add(`${p}>END`); }
    // How many times each edge fired, and the nodes running now (from the store: exact).
    const counts = new Map();
    const running = new Set(path ? path.running : []);
    for (const n of (path && path.waiting) || []) live.add(n);
    if (path && graph && graph.edges) graph.edges.forEach((e, i) => {
      const k = `${e.from}>${e.to}`;
      counts.set(k, (counts.get(k) || 0) + (path.edges[i] || 0));
    });
    const cps = detail.checkpoints.map((c) => c.step);
    startedAt = detail.created_at;
    const facts = h("dl", { class: "facts" },
      h("dt", {}, "Status"), h("dd", {}, status(detail.status)),
      h("dt", {}, "Pipeline"), h("dd", {}, detail.pipeline, detail.pipeline_path ? ` (${detail.pipeline_path})` : ""),
      h("dt", {}, "Started"), h("dd", {}, when(detail.created_at)),
      h("dt", {}, "Duration"), h("dd", {}, dur(detail.updated_at - detail.created_at)),
      h("dt", {}, "Steps"), h("dd", {}, String(cps.length ? cps[cps.length - 1] : 0)),
      h("dt", {}, "Tokens"), h("dd", {}, String(detail.tokens)),
      h("dt", {}, "Cost"), h("dd", {}, cost(detail.cost_usd, detail.cost_partial)),
      path && path.running.length ? [h("dt", {}, "Running now"), h("dd", { class: "running-now" }, `${path.running.join(", ")} (step ${path.running_step})`)] : null,
      h("dt", {}, "Report"), h("dd", {}, reportLinks(detail.id)),
      detail.parent_session ? [h("dt", {}, "Forked from"), h("dd", {}, h("a", { href: `#/s/${encodeURIComponent(detail.parent_session)}` }, detail.parent_session), ` at checkpoint ${detail.parent_checkpoint}`)] : null,
      detail.forks.length ? [h("dt", {}, "Forks"), h("dd", {}, detail.forks.map((f) => h("div", {}, h("a", { href: `#/s/${encodeURIComponent(f.id)}` }, f.id), ` at ${f.checkpoint} (${f.status})`)))] : null,
      detail.error ? [h("dt", {}, "Note"), h("dd", {}, h("pre", {}, detail.error))] : null);
    const usage = h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Node"), h("th", { class: "num" }, "Runs"),
      h("th", { class: "num" }, "Tokens in"), h("th", { class: "num" }, "Tokens out"), h("th", { class: "num" }, "Tool calls"), h("th", { class: "num" }, "Cost"))),
      h("tbody", {}, detail.usage.map((u) => h("tr", {}, h("td", {}, u.node), h("td", { class: "num" }, u.runs),
        h("td", { class: "num" }, u.tokens_in), h("td", { class: "num" }, u.tokens_out), h("td", { class: "num" }, u.tool_calls),
        h("td", { class: "num" }, cost(u.cost_usd, u.cost_partial))))));
    const timeline = h("div", { class: "timeline", role: "group", "aria-label": "checkpoints" },
      cps.map((c) => h("button", { type: "button", "aria-pressed": String(ui.checkpoint === c), "data-checkpoint": c,
        onclick: () => { ui.checkpoint = c; showState(c); for (const b of timeline.children) b.setAttribute("aria-pressed", String(b.dataset.checkpoint === String(c))); } },
        `${c}${c === 0 ? " (start)" : ""}`)));
    const runs = h("ol", { class: "runs" }, steps.map((st) => h("li", {},
      h("strong", {}, `step ${st.step}`),
      h("ul", {}, st.runs.map((r) => h("li", {}, h("button", { type: "button", "data-run": `${r.step}/${r.node}/${r.run_index}/${r.attempt}`,
        onclick: () => { ui.run = r; showRun(r); } },
        `${r.node}${r.run_index ? ` #${r.run_index + 1}` : ""}${r.attempt ? ` (attempt ${r.attempt + 1})` : ""}: ${r.status}, ${dur(r.duration_ms)}, ${r.tokens_in + r.tokens_out} tokens${r.tool_calls ? `, ${r.tool_calls} tool calls` : ""}`))),
        st.routes.map((r) => h("li", { class: "muted" }, `route ${r.from}${r.decision ? ` → ${r.decision}` : ""} → ${r.targets.join(", ")}${r.loop_round ? ` (loop ${r.loop_round}/${r.loop_max})` : ""}`))))));
    const graphView = graph && graph.nodes ? drawGraph(graph, ran, live, taken, counts, running)
      : h("p", { class: "error" }, `no graph: ${graph && graph.error}`);
    app.replaceChildren(
      h("p", {}, h("a", { href: "#/" }, "← All sessions")),
      h("h1", {}, `Session ${detail.id}`),
      h("div", { class: "grid" },
        h("div", {},
          Actions.sessionPanel(detail),
          h("section", { "aria-labelledby": "h-facts" }, h("h2", { id: "h-facts" }, "Summary"), facts),
          h("section", { "aria-labelledby": "h-usage" }, h("h2", { id: "h-usage" }, "Usage by node"), usage),
          h("section", { "aria-labelledby": "h-runs" }, h("h2", { id: "h-runs" }, "Steps and node runs"),
            steps.length ? runs : h("p", { class: "muted" }, "Nothing ran yet."))),
        h("div", {},
          h("section", { "aria-labelledby": "h-graph" }, h("h2", { id: "h-graph" }, "Graph"),
            h("p", { class: "legend" }, "✓ ran (blue, path taken in bold) · ▶ running now (thick purple) · ◆ waiting for a human (dashed purple) · ×N: an edge taken N times · dashed edges are conditional"),
            graphView),
          h("section", { "aria-labelledby": "h-cps" }, h("h2", { id: "h-cps" }, "Checkpoints"), timeline, h("div", { id: "state" }),
            cps.length > 1 ? [h("h3", {}, "Compare two checkpoints"), diffPanel(detail.id, cps)] : null),
          h("section", { "aria-labelledby": "h-run", "aria-live": "polite" }, h("h2", { id: "h-run" }, "Node run"),
            h("div", { id: "run" }, h("p", { class: "muted" }, "Choose a node run on the left."))))));
    if (ui.checkpoint !== null) showState(ui.checkpoint);
    if (ui.run) showRun(ui.run);
  }
  async function showState(c) {
    const box = document.getElementById("state");
    box.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      const st = await api(`/api/sessions/${encodeURIComponent(id)}/checkpoints/${c}`);
      box.replaceChildren(h("h3", {}, `State at checkpoint ${st.checkpoint}`), h("pre", {}, JSON.stringify(st.state, null, 2)));
    } catch (e) { box.replaceChildren(h("p", { class: "error" }, e.message)); }
  }
  async function showRun(r) {
    const box = document.getElementById("run");
    box.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    let data;
    try { data = await api(`/api/sessions/${encodeURIComponent(id)}/nodes/${encodeURIComponent(r.node)}`); } catch (e) {
      box.replaceChildren(h("p", { class: "error" }, e.message)); return;
    }
    const step = data.steps.find((x) => x.step === r.step);
    const run = step && step.runs.find((x) => x.run_index === r.run_index && x.attempt === r.attempt);
    if (!run) { box.replaceChildren(h("p", { class: "error" }, "this run is not in the session any more")); return; }
    const content = (v) => typeof v === "string" ? v : JSON.stringify(v, null, 2);
    const u = run.usage;
    const commits = h("div", { class: "commits" });
    // One element: replaceChildren would write the arrays below as text.
    box.replaceChildren(h("div", { class: "run-detail" },
      h("h3", {}, `${run.node} at step ${run.step}${run.run_index ? `, run ${run.run_index + 1}` : ""}`),
      h("dl", { class: "facts" },
        h("dt", {}, "Status"), h("dd", {}, run.status, run.error ? `: ${run.error}` : ""),
        u ? [h("dt", {}, "Started"), h("dd", {}, `${when(u.started_at)} (${dur(Math.max(0, u.started_at - startedAt))} into the session)`),
          h("dt", {}, "Finished"), h("dd", {}, when(u.finished_at))] : null,
        h("dt", {}, "Duration"), h("dd", {}, dur(run.duration_ms)),
        h("dt", {}, "Tokens"), h("dd", {}, `${run.tokens_in} in, ${run.tokens_out} out${u && (u.cache_read_tokens || u.cache_write_tokens) ? ` (cache: ${u.cache_read_tokens} read, ${u.cache_write_tokens} written)` : ""}`),
        h("dt", {}, "Cost"), h("dd", {}, u ? cost(u.cost_usd, false) : "unknown"),
        u && u.retries ? [h("dt", {}, "Retries"), h("dd", {}, String(u.retries))] : null,
        h("dt", {}, "Tool calls"), h("dd", {}, String(run.tool_calls))),
      h("h3", {}, "System prompt as sent"),
      run.system === null ? h("p", { class: "muted" }, "not recorded (a session of an older release)") : h("pre", { class: "system" }, run.system),
      run.turns.map((t) => h("div", { class: "turn" },
        h("h3", {}, `Turn ${t.turn + 1} — ${t.model}, stop: ${t.stop}, ${t.tokens_in}+${t.tokens_out} tokens`),
        h("details", {}, h("summary", {}, `messages sent (${Array.isArray(t.messages) ? t.messages.length : 0})`), h("pre", {}, content(t.messages))),
        h("div", {}, h("strong", {}, "Answer"), h("pre", { class: "answer" }, content(t.answer))),
        t.tool_calls.map((c) => h("div", { class: "tool" }, h("strong", {}, `Tool call ${c.tool}${c.is_error ? " (error)" : ""}, ${dur(c.duration_ms)}`),
          h("pre", {}, `arguments${c.args_cut ? ` (cut; ${c.args_bytes} bytes)` : ""}:\n${c.args}`),
          h("pre", {}, `result${c.result_cut ? ` (cut; ${c.result_bytes} bytes)` : ""}:\n${c.result}`))))),
      step.routes.length ? [h("h3", {}, "Routing"), h("ul", {}, step.routes.map((x) => h("li", {},
        `${x.from}${x.condition ? ` (${x.condition})` : ""}${x.decision ? ` → ${x.decision}` : ""} → ${x.targets.join(", ")}${x.loop_round ? ` (loop ${x.loop_round}/${x.loop_max})` : ""}`)))] : null,
      commits));
    showCommits(id, run, commits);
  }
  app.replaceChildren(h("p", {}, "Loading…"));
  let last = null;
  source = new EventSource(`/api/sessions/${encodeURIComponent(id)}/events`);
  source.addEventListener("session", (ev) => { if (ev.data !== last) { last = ev.data; load(); } });
  source.addEventListener("error", () => { if (last === null) load(); });
  stopLive = () => source.close();
}

function route() {
  stopLive();
  stopLive = () => {};
  // `#/s/ID`, optionally `?run=STEP/NODE` (a node run opened) and `&from=N&to=M` (two
  // checkpoints compared): links to what the page shows.
  const m = location.hash.match(/^#\/s\/([^?]+)(?:\?(.*))?$/);
  if (m) sessionPage(decodeURIComponent(m[1]), new URLSearchParams(m[2] || "")); else listPage();
}
window.addEventListener("hashchange", route);
route();
