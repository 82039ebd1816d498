// rsir annotation dashboard: answers per round and annotator, and the mAP curve; refreshes itself.
"use strict";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 5000;
// A link's ?token= became an HttpOnly cookie (set by the server), which carries it from now on: drop it
// from the address bar and the history, so it is neither re-sent nor shown.
if (new URLSearchParams(location.search).has("token")) {
  const clean = new URL(location.href);
  clean.searchParams.delete("token");
  history.replaceState(null, "", clean.pathname + clean.search + clean.hash);
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function time(iso) {
  return iso ? iso.replace("T", " ").slice(0, 19) : "";
}

async function refresh() {
  try {
    const response = await fetch("/api/dashboard");
    const d = await response.json();
    if (!response.ok) throw new Error(d.detail || `HTTP ${response.status}`);
    const answered = d.answers.reduce((n, r) => n + r.answers, 0);
    const people = new Set(d.answers.map((r) => r.annotator)).size;
    $("summary").textContent =
      `${d.status === "done" ? "Finished" : `Round ${d.current_round + 1} of ${d.rounds_total}`}: ` +
      `${answered} answers from ${people} annotator(s); ${d.curve.length} round(s) trained.`;
    const last = d.curve.length ? d.curve[d.curve.length - 1] : null;
    $("metric-note").textContent = d.metric
      ? `${d.metric} of held-out test queries against the campaign's images (dashed: no training, ` +
        `${d.baseline.toFixed(3)}${last && last.value !== null ? `; now ${last.value.toFixed(3)}` : ""}).`
      : "The archive has no class labels, so no retrieval quality can be measured.";
    const body = $("answers").querySelector("tbody");
    body.replaceChildren(...d.answers.map((r) => {
      const tr = document.createElement("tr");
      tr.append(cell(r.round + 1), cell(r.annotator), cell(r.answers), cell(r.similar), cell(r.dissimilar),
        cell(r.skipped), cell(time(r.first)), cell(time(r.last)));
      return tr;
    }));
    $("curve").src = `/api/dashboard/curve.svg?t=${Date.now()}`;  // the cookie carries the token
    $("status").textContent = "";
  } catch (err) {
    $("status").textContent = err.message;
  }
  setTimeout(refresh, REFRESH_MS);
}

refresh();
