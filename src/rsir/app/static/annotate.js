// rsir annotation page: plain DOM, no build step. One pair at a time; the server decides which.
"use strict";

const $ = (id) => document.getElementById(id);
const POLL_MS = 1500;
const KEYS = {
  s: "similar", arrowleft: "similar", 1: "similar",
  d: "dissimilar", arrowright: "dissimilar", 2: "dissimilar",
  " ": "skip", arrowdown: "skip", k: "skip", 3: "skip",
};

// A link's ?token= became an HttpOnly cookie (set by the server), which carries it from now on: drop it
// from the address bar and the history, so it is neither re-sent nor shown.
if (new URLSearchParams(location.search).has("token")) {
  const clean = new URL(location.href);
  clean.searchParams.delete("token");
  history.replaceState(null, "", clean.pathname + clean.search + clean.hash);
}

const state = {
  name: localStorage.getItem("rsir-annotator") || "",
  invited: false,  // a personal invite link: the name is the invite's, not asked
  question: null,
  busy: false,
  timer: null,
  view: { zoom: 1, x: 0, y: 0 },
};

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" },
  };
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new ApiError(0, "the server cannot be reached; retrying...");
  }
  const data = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
  if (!response.ok) throw new ApiError(response.status, data.detail || `HTTP ${response.status}`);
  return data;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function setPhase(phase) {
  document.body.dataset.phase = phase;
}

function schedule(fn, ms = POLL_MS) {
  clearTimeout(state.timer);
  state.timer = setTimeout(fn, ms);
}

// ------------------------------------------------------------------ rendering

function renderProgress(p) {
  if (!p) return;
  const share = p.total ? (100 * p.answered) / p.total : 0;
  $("bar-fill").style.width = `${share.toFixed(1)}%`;
  const others = p.held_by_others ? ` · ${p.held_by_others} with others` : "";
  $("progress-text").textContent =
    `Round ${p.round + 1} of ${p.rounds_total}: ${p.answered} / ${p.total} answered ` +
    `(you: ${p.mine}${others}) · ${p.campaign_answered} in all`;
}

function render(data) {
  renderProgress(data.progress);
  clearTimeout(state.timer);
  if (data.phase === "ready" && data.question) {
    showQuestion(data.question);
    return;
  }
  state.question = null;
  setPhase(data.phase);
  $("pair").hidden = true;
  $("notice").hidden = false;
  $("spinner").hidden = !["preparing", "waiting", "error"].includes(data.phase);
  $("notice-text").textContent = data.message;
  if (data.phase !== "done") schedule(next);
}

function showQuestion(q) {
  const fresh = !state.question || state.question.id !== q.id;
  state.question = q;
  $("notice").hidden = true;
  $("pair").hidden = false;
  for (const side of ["a", "b"]) {
    const img = $(`img-${side}`);
    const url = q[side].image;
    if (img.dataset.src !== url) {
      img.classList.add("loading");
      img.dataset.src = url;
      img.src = url;
    }
  }
  if (fresh) resetView();
  for (const button of document.querySelectorAll(".answer")) {
    button.classList.toggle("previous", button.dataset.label === q.label);
  }
  document.body.dataset.question = String(q.id);
  setPhase("ready");
  enable(true);
}

function enable(on) {
  for (const button of document.querySelectorAll(".answers button")) button.disabled = !on;
}

for (const side of ["a", "b"]) {
  const img = $(`img-${side}`);
  img.addEventListener("load", () => {
    img.classList.remove("loading");
    $(`size-${side}`).textContent = `${img.naturalWidth} × ${img.naturalHeight} px`;
  });
  img.addEventListener("error", () => {
    img.classList.remove("loading");
    $(`size-${side}`).textContent = "the image could not be loaded";
  });
}

// ------------------------------------------------------------------ actions

async function next() {
  if (!state.name) return;
  try {
    render(await api("/api/next", { annotator: state.name }));
  } catch (err) {
    setStatus(err.message, true);
    schedule(next, 3000);
  }
}

async function answer(label) {
  if (state.busy || !state.question) return;
  state.busy = true;
  enable(false);
  const q = state.question;
  try {
    const r = await api("/api/answer", { annotator: state.name, question_id: q.id, label });
    setStatus(r.stored ? `Pair answered: ${label}.` : r.message);
    await next();
  } catch (err) {
    setStatus(err.message, true);
    if (err.status === 409 || err.status === 404) await next();
    else enable(true);
  } finally {
    state.busy = false;
  }
}

async function undo() {
  if (state.busy || !state.name) return;
  state.busy = true;
  try {
    const data = await api("/api/undo", { annotator: state.name });
    setStatus("Answer taken back: answer this pair again.");
    render(data);
  } catch (err) {
    setStatus(err.message, true);
  } finally {
    state.busy = false;
  }
}

// ------------------------------------------------------------------ zoom and pan (both images together)

function applyView() {
  const { zoom, x, y } = state.view;
  for (const side of ["a", "b"]) {
    $(`img-${side}`).style.transform = `translate(${x}px, ${y}px) scale(${zoom})`;
  }
  $("pair").classList.toggle("zoomed", zoom > 1.01);
}

function resetView() {
  state.view = { zoom: 1, x: 0, y: 0 };
  applyView();
}

function zoomBy(factor) {
  const v = state.view;
  const zoom = Math.min(16, Math.max(1, v.zoom * factor));
  const k = zoom / v.zoom;
  state.view = zoom === 1 ? { zoom: 1, x: 0, y: 0 } : { zoom, x: v.x * k, y: v.y * k };
  applyView();
}

for (const side of ["a", "b"]) {
  const view = $(`view-${side}`);
  view.addEventListener("wheel", (event) => {
    event.preventDefault();
    zoomBy(event.deltaY < 0 ? 1.25 : 0.8);
  }, { passive: false });
  view.addEventListener("dblclick", resetView);
  view.addEventListener("pointerdown", (event) => {
    const start = { px: event.clientX, py: event.clientY, x: state.view.x, y: state.view.y };
    view.setPointerCapture(event.pointerId);
    view.classList.add("dragging");
    const move = (e) => {
      state.view.x = start.x + e.clientX - start.px;
      state.view.y = start.y + e.clientY - start.py;
      applyView();
    };
    const up = () => {
      view.classList.remove("dragging");
      view.removeEventListener("pointermove", move);
      view.removeEventListener("pointerup", up);
    };
    view.addEventListener("pointermove", move);
    view.addEventListener("pointerup", up);
  });
}

// ------------------------------------------------------------------ keyboard and buttons

document.addEventListener("keydown", (event) => {
  if (event.target.closest("input, textarea, select") || event.altKey || event.metaKey) return;
  const key = event.key.toLowerCase();
  if ((key === "z" && event.ctrlKey) || (!event.ctrlKey && (key === "u" || key === "backspace"))) {
    event.preventDefault();
    undo();
    return;
  }
  if (event.ctrlKey) return;
  if (key in KEYS) {
    event.preventDefault();
    if (!event.repeat) answer(KEYS[key]);
  } else if (key === "+" || key === "=") zoomBy(1.25);
  else if (key === "-") zoomBy(0.8);
  else if (key === "0") resetView();
});

for (const button of document.querySelectorAll(".answer")) {
  button.addEventListener("click", () => answer(button.dataset.label));
}
$("undo").addEventListener("click", undo);

// ------------------------------------------------------------------ who is answering

function askName() {
  clearTimeout(state.timer);
  $("pair").hidden = true;
  $("notice").hidden = true;
  $("name-form").hidden = false;
  $("name").value = state.name;
  $("name").focus();
  setPhase("name");
}

function start(name) {
  state.name = name;
  if (!state.invited) localStorage.setItem("rsir-annotator", name);
  $("who").textContent = `answering as ${name}`;
  $("name-form").hidden = true;
  next();
}

$("name-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("name").value.trim();
  try {
    await api(`/api/state?annotator=${encodeURIComponent(name)}`);  // the server checks the name
    setStatus("");
    start(name);
  } catch (err) {
    setStatus(err.message, true);
  }
});
$("change-name").addEventListener("click", askName);

// Who is answering: an invite link fixes the name; otherwise the one given before, in the address, or asked.
async function boot() {
  let me;
  try {
    me = await api("/api/me");
  } catch (err) {
    setStatus(err.message, true);
    schedule(boot, 3000);
    return;
  }
  if (me.role === "annotator") {
    state.invited = true;
    $("change-name").hidden = true;
    $("dashboard-nav").hidden = true;  // the dashboard is the campaign owner's
    start(me.annotator);
    return;
  }
  const fromUrl = new URLSearchParams(location.search).get("annotator");
  if (fromUrl || state.name) start(fromUrl || state.name);
  else askName();
}

boot();
