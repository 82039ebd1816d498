// rsir search page: plain DOM, no build step. Text from the archive is only ever set as textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { query: null, offset: 0, k: 20, hits: [], current: null };

// A link's ?token= became an HttpOnly cookie (set by the server), which carries it from now on: drop it
// from the address bar and the history, so it is neither re-sent nor shown.
if (new URLSearchParams(location.search).has("token")) {
  const clean = new URL(location.href);
  clean.searchParams.delete("token");
  history.replaceState(null, "", clean.pathname + clean.search + clean.hash);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
  return body;
}

function filterParams() {
  const params = new URLSearchParams({ k: state.k, offset: state.offset });
  const label = $("label").value;
  if (label && state.query && state.query.gallery === "scenes") params.append("label", label);
  return params;
}

// A query: how to fetch one page of it. Uploads keep their File objects so paging can re-send them.
function makeQuery(kind, value, files) {
  // Text queries search the scenes when the server has a text <-> scene model, else the pair gallery.
  const textGallery = document.body.dataset.textGallery || "pairs";
  const gallery = kind === "text" ? textGallery : ["pair", "pair-id"].includes(kind) ? "pairs" : "scenes";
  return { kind, value, files, gallery };
}

async function fetchPage(query) {
  const params = filterParams();
  if (query.kind === "text") { params.set("q", query.value); return api(`/api/search/text?${params}`); }
  if (query.kind === "id") { params.set("id", query.value); return api(`/api/search/id?${params}`); }
  if (query.kind === "pair-id") { params.set("id", query.value); return api(`/api/search/pair-id?${params}`); }
  const form = new FormData();
  for (const [name, file] of Object.entries(query.files)) form.append(name, file);
  const path = query.kind === "image" ? "/api/search/image" : "/api/search/pair";
  return api(`${path}?${params}`, { method: "POST", body: form });
}

async function run(query, offset = 0) {
  state.query = query;
  state.offset = offset;
  state.k = Number($("k").value);
  setStatus("searching…");
  try {
    const page = await fetchPage(query);
    render(page);
  } catch (err) {
    setStatus(err.message, true);
  }
}

function thumb(url, side) {
  const box = el("div", {}, el("img", { src: url, alt: side || "thumbnail", loading: "lazy" }));
  if (side) box.prepend(el("div", { class: "side-label", text: side }));
  return box;
}

function card(hit) {
  const images = el("div", { class: "side-by-side" });
  const sides = hit.kind === "pair" ? ["before", "after"] : [null];
  hit.thumbnails.forEach((url, i) => images.append(thumb(url, sides[i])));
  const caption = el(
    "figcaption", {},
    el("span", { class: "rank", text: `#${hit.rank} ` }),
    el("span", { class: "score", text: hit.score.toFixed(3) }),
    el("div", { class: "hit-id", text: hit.id }),
    hit.labels.length ? el("div", { class: "labels", text: hit.labels.join(", ") }) : null,
    hit.captions.length ? el("div", { class: "caption", text: hit.captions[0] }) : null,
  );
  const figure = el("figure", { class: `hit ${hit.kind}`, tabindex: "0", "data-id": hit.id }, images, caption);
  figure.addEventListener("click", () => showDetails(hit));
  figure.addEventListener("keydown", (e) => { if (e.key === "Enter") showDetails(hit); });
  return figure;
}

function render(page) {
  state.hits = page.hits;
  const grid = $("results");
  grid.replaceChildren(...page.hits.map(card));
  const captions = $("captions");
  captions.replaceChildren(...page.captions.map((c) => el("li", { text: `${c.caption} (${c.score.toFixed(3)})` })));
  captions.hidden = page.captions.length === 0;
  const what = page.query.value ? `"${page.query.value}"` : `uploaded ${page.query.kind}`;
  const last = page.offset + page.hits.length;
  setStatus(`${page.total} ${page.gallery} for ${what}; showing ${page.offset + 1}–${last} (${page.took_ms} ms)`);
  if (page.hits.length === 0) setStatus(`no ${page.gallery} match ${what}`);
  $("pager").hidden = page.total <= page.k;
  $("prev").disabled = page.offset === 0;
  $("next").disabled = last >= page.total;
  $("page-info").textContent = `page ${Math.floor(page.offset / page.k) + 1} of ${Math.ceil(page.total / page.k)}`;
}

async function showDetails(hit) {
  state.current = hit;
  const dialog = $("details");
  $("details-title").textContent = hit.id;
  const body = $("details-body");
  body.replaceChildren(el("p", { text: "loading…" }));
  if (!dialog.open) dialog.showModal();
  const kind = hit.kind === "pair" ? "pairs" : "items";
  try {
    const detail = await api(`/api/${kind}?id=${encodeURIComponent(hit.id)}`);
    const previews = hit.kind === "pair" ? detail.previews : [detail.preview];
    const sides = hit.kind === "pair" ? ["before", "after"] : [null];
    $("details-images").replaceChildren(...previews.map((url, i) => thumb(url, sides[i])));
    const rows = hit.kind === "pair"
      ? [["changed", String(detail.changed)], ["split", detail.split], ...detail.captions.map((c, i) => [`caption ${i + 1}`, c])]
      : [["labels", detail.labels.join(", ") || "(none)"], ["path", detail.path],
         ...Object.entries(detail.meta).map(([key, value]) => [key, JSON.stringify(value)])];
    rows.push(["score", hit.score.toFixed(4)]);
    body.replaceChildren(el("table", {}, ...rows.map(([key, value]) => el("tr", {}, el("td", { text: key }), el("td", { text: value })))));
  } catch (err) {
    body.replaceChildren(el("p", { class: "error", text: err.message }));
  }
}

function moreLikeThis() {
  const hit = state.current;
  if (!hit) return;
  $("details").close();
  const kind = hit.kind === "pair" ? "pair-id" : "id";
  $("mode").value = kind;
  $("q").value = hit.id;
  run(makeQuery(kind, hit.id));
}

function handleFiles(files) {
  const images = Array.from(files).filter((f) => f.type.startsWith("image/") || /\.tiff?$/i.test(f.name));
  if (images.length === 0) { setStatus("drop an image file", true); return; }
  if (images.length >= 2 && document.body.dataset.textSearch === "true") {
    images.sort((a, b) => a.name.localeCompare(b.name)); // name order: the earlier date first
    run(makeQuery("pair", null, { before: images[0], after: images[1] }));
  } else {
    run(makeQuery("image", null, { file: images[0] }));
  }
}

async function loadLabels() {
  try {
    const info = await api("/api/info");
    for (const { label, count } of info.labels) $("label").append(el("option", { value: label, text: `${label} (${count})` }));
  } catch (err) {
    setStatus(err.message, true);
  }
}

function wire() {
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const value = $("q").value.trim();
    if (value) run(makeQuery($("mode").value, value));
  });
  const drop = $("drop");
  drop.addEventListener("click", () => $("file").click());
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter") $("file").click(); });
  $("file").addEventListener("change", (e) => { if (e.target.files.length) handleFiles(e.target.files); e.target.value = ""; });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); handleFiles(e.dataTransfer.files); });
  const pairForm = $("pair-form");
  if (pairForm) pairForm.addEventListener("submit", (e) => {
    e.preventDefault();
    run(makeQuery("pair", null, { before: $("before").files[0], after: $("after").files[0] }));
  });
  $("prev").addEventListener("click", () => run(state.query, Math.max(0, state.offset - state.k)));
  $("next").addEventListener("click", () => run(state.query, state.offset + state.k));
  $("label").addEventListener("change", () => { if (state.query) run(state.query); });
  $("more-like-this").addEventListener("click", moreLikeThis);
  loadLabels();
}

wire();
