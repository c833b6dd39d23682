// The actions of the orchestra web UI: start a run of a pipeline of the project (on the
// sessions list), and on a session's page resume, stop, fork at a checkpoint (optionally
// setting state fields) and chat with its interactive agent. All are POSTs under /api/; the
// page's own origin is what the server accepts. Loaded before app.js, which calls
// Actions.runPanel() and Actions.sessionPanel(); h() is app.js's.
"use strict";

const Actions = (() => {
  async function post(path, body) {
    const r = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body || {}),
    });
    const data = await r.json().catch(() => ({ error: r.statusText }));
    if (!r.ok) throw new Error(data.error || r.statusText);
    return data;
  }
  const link = (id) => h("a", { href: `#/s/${encodeURIComponent(id)}` }, id);
  const say = (el, ...what) => el.replaceChildren(...what);
  const fail = (el, e) => el.replaceChildren(h("span", { class: "error", role: "alert" }, `error: ${e.message}`));

  // ---- start a run (the sessions list) ----

  function inputField(pipe, input, i) {
    const id = `in-${i}`;
    const label = `${input.name} (${input.type}${input.required ? ", required" : ""})`;
    const hint = input.description ? h("span", { class: "hint" }, input.description) : null;
    let field;
    if (input.enum) {
      field = h("select", { id, name: input.name },
        input.required ? null : h("option", { value: "" }, "(default)"),
        input.enum.map((v) => h("option", { value: typeof v === "string" ? v : JSON.stringify(v), selected: JSON.stringify(v) === JSON.stringify(input.default) }, String(v))));
    } else if (input.type === "boolean") {
      field = h("select", { id, name: input.name },
        input.required ? null : h("option", { value: "" }, "(default)"),
        h("option", { value: "true" }, "true"), h("option", { value: "false" }, "false"));
    } else if (input.type === "array" || input.type === "object") {
      field = h("textarea", { id, name: input.name, rows: 3, placeholder: input.type === "array" ? '["a", "b"]' : '{"key": "value"}',
        required: input.required });
    } else {
      field = h("input", { id, name: input.name, type: input.type === "string" ? "text" : "number",
        step: input.type === "number" ? "any" : null, required: input.required,
        placeholder: input.default === null || input.default === undefined ? null : `default: ${JSON.stringify(input.default)}` });
    }
    return h("label", { for: id }, label, field, hint);
  }

  function runPanel() {
    const choose = h("select", { id: "run-pipeline", name: "pipeline" });
    const fields = h("div", { class: "fields" });
    const out = h("p", { class: "action-status", "aria-live": "polite" });
    let pipes = [];
    const showInputs = () => {
      const p = pipes.find((x) => x.path === choose.value);
      fields.replaceChildren(...(p && p.inputs ? p.inputs.map((inp, i) => inputField(p, inp, i)) : []),
        p && p.error ? h("pre", { class: "error" }, p.error) : null);
    };
    choose.addEventListener("change", showInputs);
    const form = h("form", { class: "run-form", "aria-labelledby": "h-run-new",
      onsubmit: async (ev) => {
        ev.preventDefault();
        const p = pipes.find((x) => x.path === choose.value);
        if (!p) return;
        const inputs = {};
        for (const el of fields.querySelectorAll("[name]")) if (el.value !== "") inputs[el.name] = el.value;
        say(out, `starting ${p.path}…`);
        try {
          const s = await post("/api/pipelines/run", { pipeline: p.path, inputs });
          say(out, "started session ", link(s.session), ` (process ${s.pid})`);
        } catch (e) { fail(out, e); }
      } },
      h("label", { for: "run-pipeline" }, "Pipeline", choose), fields,
      h("button", { type: "submit", id: "run-start" }, "Start run"), out);
    (async () => {
      try { pipes = await api("/api/pipelines"); } catch (e) { fail(out, e); return; }
      choose.replaceChildren(...pipes.map((p) => h("option", { value: p.path },
        `${p.name || p.path} — ${p.path}${p.error ? " (does not compile)" : ""}`)));
      if (!pipes.length) say(out, "This project has no pipelines under pipelines/.");
      showInputs();
    })();
    return h("section", { class: "actions" }, h("h2", { id: "h-run-new" }, "Start a run"), form);
  }

  // ---- a session's actions and chat ----

  // One panel per session, kept across the page's re-renders (a live update must not lose
  // what is being typed).
  let panel = null;

  function sessionPanel(detail) {
    if (!panel || panel.id !== detail.id) panel = buildPanel(detail.id);
    panel.update(detail);
    return panel.el;
  }

  function buildPanel(id) {
    const base = `/api/sessions/${encodeURIComponent(id)}`;
    const out = h("p", { class: "action-status", id: "action-status", "aria-live": "polite" });
    const act = (label, path, done) => h("button", { type: "button", id: `act-${label.toLowerCase()}`,
      onclick: async () => {
        say(out, `${label.toLowerCase()}…`);
        try { done(await post(`${base}/${path}`)); } catch (e) { fail(out, e); }
      } }, label);
    const resume = act("Resume", "resume", (s) => say(out, `resumed by process ${s.pid}`));
    const stop = act("Stop", "stop", (s) => say(out, s.how === "interrupted"
      ? "interrupted: no worker drove it"
      : s.how === "signalled"
        ? `asked process ${s.pid} to stop; it finishes its checkpoint`
        : `asked ${s.holder} to stop; it stops when it next renews its lease`));
    const cp = h("select", { id: "fork-checkpoint", name: "checkpoint" });
    const sets = h("textarea", { id: "fork-set", name: "set", rows: 2, placeholder: 'verdict="approve"' });
    const fork = h("form", { class: "fork-form", "aria-labelledby": "h-fork",
      onsubmit: async (ev) => {
        ev.preventDefault();
        const set = sets.value.split("\n").map((l) => l.trim()).filter(Boolean);
        say(out, `forking at checkpoint ${cp.value}…`);
        try {
          const f = await post(`${base}/fork`, { checkpoint: Number(cp.value), set });
          say(out, "forked as ", link(f.session), ` at checkpoint ${f.checkpoint}; it runs in process ${f.pid}`);
        } catch (e) { fail(out, e); }
      } },
      h("h3", { id: "h-fork" }, "Fork from a checkpoint"),
      h("label", { for: "fork-checkpoint" }, "Checkpoint", cp),
      h("label", { for: "fork-set" }, "Set state fields, one FIELD=JSON a line (optional)", sets),
      h("button", { type: "submit", id: "fork-start" }, "Fork and run"));
    const lines = h("ol", { class: "chat-lines", id: "chat-lines", "aria-live": "polite" });
    const chatNote = h("p", { class: "muted", id: "chat-note" });
    const text = h("input", { id: "chat-text", name: "text", type: "text", autocomplete: "off" });
    const addLine = (who, said) => lines.append(h("li", { class: `chat-${who}` }, h("strong", {}, `${who}: `), said));
    const send = async (line) => {
      if (!line.trim()) return;
      shown = null;
      addLine("human", line);
      say(out, "sending…");
      try {
        const a = await post(`${base}/answer`, { text: line });
        for (const r of a.replies) addLine(r.who, r.text);
        say(out, a.delivered === "resumed" ? `the session resumes with your line (process ${a.started.pid})`
          : `delivered${a.finished ? `; the run ended: ${a.finished}` : ""}`);
        text.value = "";
        if (a.delivered === "live") loadChat();
      } catch (e) { fail(out, e); }
    };
    const quick = (cmd, what) => h("button", { type: "button", "data-command": cmd, title: what, onclick: () => send(cmd) }, cmd);
    const chat = h("form", { class: "chat", "aria-labelledby": "h-chat",
      onsubmit: (ev) => { ev.preventDefault(); send(text.value); } },
      h("h3", { id: "h-chat" }, "Chat with the interactive agent"), chatNote, lines,
      h("label", { for: "chat-text" }, "Your message (or /approve, /reject, /done with a comment)", text),
      h("div", { class: "buttons" }, h("button", { type: "submit", id: "chat-send" }, "Send"),
        quick("/approve", "approve: end the chat, the agent's last answer is its output"),
        quick("/reject", "reject: end the chat with a rejection"),
        quick("/done", "done: end the chat")));
    const el = h("section", { class: "actions", "aria-labelledby": "h-actions" },
      h("h2", { id: "h-actions" }, "Actions"),
      h("div", { class: "buttons" }, resume, stop), out, fork, chat);
    let seen = null;
    let status = null;
    let shown = null;
    let poll = null;
    // The lines as stored, whoever said them (this page, `orchestra attach`, `orchestra mcp`);
    // redrawn only when they changed.
    const showLines = (ls) => {
      const key = JSON.stringify(ls);
      if (key === shown) return;
      shown = key;
      lines.replaceChildren();
      for (const l of ls) addLine(l.who, l.text);
    };
    async function loadChat() {
      clearTimeout(poll);
      poll = null;
      const st = status;
      if (st !== "paused" && st !== "running") {
        chatNote.textContent = `The session is ${st}; it has no chat waiting.`;
        return;
      }
      let c;
      try { c = await api(`${base}/chat`); } catch (e) { chatNote.textContent = `error: ${e.message}`; return; }
      if (st !== status) return;
      if (st === "running") {
        // A live chat grows while the page is open: ask again while the session runs here.
        if (el.isConnected) poll = setTimeout(loadChat, 1000);
        if (!c) {
          chatNote.textContent = "A line goes to the agent through the process running the session, when it asks for a human.";
          return;
        }
        chatNote.textContent = `Live chat with ${c.node} (run ${c.run_index + 1}): every line shows here as it is said, from this page or a terminal's orchestra attach.`;
      } else {
        if (!c) { chatNote.textContent = "The session is paused, but not at an interactive agent."; return; }
        chatNote.textContent = `Paused at ${c.node} (run ${c.run_index + 1}), waiting for you.`;
      }
      showLines(c.lines);
    }
    function update(detail) {
      const st = detail.status;
      const can = (on, b) => { if (on) b.removeAttribute("disabled"); else b.setAttribute("disabled", ""); };
      can(["failed", "stopped", "interrupted", "paused"].includes(st), resume);
      can(st === "running", stop);
      const cps = detail.checkpoints.map((c) => c.step);
      const chosen = cp.value;
      cp.replaceChildren(...cps.map((c) => h("option", { value: c, selected: String(c) === chosen }, `${c}${c === 0 ? " (start)" : ""}`)));
      if (!chosen && cps.length) cp.value = String(cps[cps.length - 1]);
      chat.hidden = !(st === "paused" || st === "running");
      const key = `${st}/${detail.updated_at}`;
      if (key !== seen) { seen = key; status = st; loadChat(); }
    }
    return { id, el, update };
  }

  return { runPanel, sessionPanel };
})();
