// The read views of a session page beyond status and show: the commits (with their diffs) of a
// node run, the difference between two checkpoints' states, and the links to the report.
// Loaded before app.js; uses its h() and api() when called.
"use strict";

// The commits a node run made on the session branches, each with its diff as text (+/- lines).
async function showCommits(sessionId, run, box) {
  box.replaceChildren(h("h3", {}, "Commits"), h("p", { class: "muted" }, "Loading…"));
  let data;
  try { data = await api(`/api/sessions/${encodeURIComponent(sessionId)}/steps/${run.step}/commits`); } catch (e) {
    box.replaceChildren(h("h3", {}, "Commits"), h("p", { class: "error" }, e.message)); return;
  }
  // A commit names its agent; one of another agent of the same step is not this run's.
  const mine = data.commits.filter((c) => !c.agent || c.agent === run.node);
  if (!mine.length) {
    box.replaceChildren(h("h3", {}, "Commits"), h("p", { class: "muted" }, "No commit on a session branch at this step."));
    return;
  }
  box.replaceChildren(h("h3", {}, "Commits"), ...mine.map((c) => h("div", { class: "commit", "data-commit": c.sha },
    h("p", {}, h("code", {}, c.sha.slice(0, 12)), ` ${c.subject} — ${c.repo}: ${c.files_changed} file${c.files_changed === 1 ? "" : "s"}, +${c.insertions} −${c.deletions}`),
    h("ul", { class: "files" }, c.files.map((f) => h("li", {}, `${f.path} (+${f.insertions} −${f.deletions})`))),
    c.patch === null ? h("p", { class: "muted" }, "The commit is not in the repository any more.")
      : h("details", { open: true }, h("summary", {}, "Diff"),
        h("pre", { class: "diff", "aria-label": `diff of ${c.sha.slice(0, 12)}` }, c.patch),
        c.patch_cut ? h("p", { class: "note" }, `The diff is cut: ${c.patch.length} of ${c.patch_bytes} bytes or more shown. Run git show ${c.sha} for all of it.`) : null))));
}

// Two checkpoints to compare and the fields that differ between their states.
function diffPanel(sessionId, checkpoints) {
  const pick = (idName, label, chosen) => {
    const sel = h("select", { id: idName }, checkpoints.map((c) => h("option", { value: c, selected: c === chosen }, String(c))));
    return [h("label", { for: idName }, label, sel), sel];
  };
  const [fromLabel, fromSel] = pick("diff-from", "From checkpoint", checkpoints.length > 1 ? checkpoints[checkpoints.length - 2] : checkpoints[0]);
  const [toLabel, toSel] = pick("diff-to", "To checkpoint", checkpoints[checkpoints.length - 1]);
  const out = h("div", { id: "diff", "aria-live": "polite" });
  const go = h("button", { type: "button", id: "diff-go", onclick: () => showDiff(sessionId, fromSel.value, toSel.value, out) }, "Compare states");
  return h("div", { class: "diffpanel" }, h("div", { class: "filters" }, fromLabel, toLabel, go), out);
}

const changeMark = { added: "+ added", removed: "− removed", changed: "~ changed" };

async function showDiff(sessionId, from, to, out) {
  out.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  let d;
  try { d = await api(`/api/sessions/${encodeURIComponent(sessionId)}/diff?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`); } catch (e) {
    out.replaceChildren(h("p", { class: "error", role: "alert" }, e.message)); return;
  }
  const value = (v) => v === undefined ? "" : JSON.stringify(v, null, 2);
  out.replaceChildren(
    h("h3", {}, `State from checkpoint ${d.from} to ${d.to}: ${d.changes.length} field${d.changes.length === 1 ? "" : "s"} differ`),
    d.changes.length ? h("table", { class: "changes" },
      h("thead", {}, h("tr", {}, h("th", {}, "Field"), h("th", {}, "Change"), h("th", {}, "Before"), h("th", {}, "After"))),
      h("tbody", {}, d.changes.map((c) => h("tr", { class: `change c-${c.kind}`, "data-path": c.path },
        h("td", {}, h("code", {}, c.path || "(the whole state)")),
        h("td", {}, changeMark[c.kind] || c.kind),
        h("td", {}, h("pre", {}, value(c.before))),
        h("td", {}, h("pre", {}, value(c.after)))))))
      : h("p", { class: "muted" }, "The two states are the same."));
}

// The links to the session's report in its three formats.
function reportLinks(sessionId) {
  const at = (f) => `/api/sessions/${encodeURIComponent(sessionId)}/report?format=${f}`;
  return h("span", { class: "reports" },
    h("a", { href: at("html"), target: "_blank", rel: "noopener" }, "HTML"), " · ",
    h("a", { href: at("md"), target: "_blank", rel: "noopener" }, "Markdown"), " · ",
    h("a", { href: at("json"), target: "_blank", rel: "noopener" }, "JSON"));
}
