// The search page: one form, one fetch to /v1/search, results rendered as text (never as HTML, since
// section text comes from arbitrary documents). The key stays in this page's memory only.
"use strict";

const form = document.getElementById("search-form");
const statusLine = document.getElementById("status");
const results = document.getElementById("results");

function element(tag, className, text) {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function pages(meta) {
  if (meta.page_start == null) return "";
  const end = meta.page_end == null ? meta.page_start : meta.page_end;
  return end === meta.page_start ? `page ${meta.page_start}` : `pages ${meta.page_start}–${end}`;
}

function renderHit(hit) {
  const meta = hit.metadata || {};
  const item = element("li", "hit");
  const head = element("div", "hit-head");
  head.append(
    element("span", "source", meta.filename || meta.source || hit.id),
    element("span", "pages", pages(meta)),
    // Scores are the mode's own (cosine, BM25, an RRF rank score of at most 0.2, or a DBSF sum of about
    // 0 to 2): shown, not compared.
    element("span", "score", hit.score.toPrecision(3)),
  );
  item.append(
    head,
    element("div", "breadcrumb", (meta.breadcrumb || []).join(" › ")),
    element("p", "text", hit.text),
  );
  return item;
}

async function search(event) {
  event.preventDefault();
  const body = {
    query: document.getElementById("query").value,
    top_k: Number(document.getElementById("top-k").value),
    mode: document.getElementById("mode").value,
  };
  if (body.mode === "hybrid") body.fusion = document.getElementById("fusion").value;
  const collection = document.getElementById("collection").value.trim();
  if (collection) body.collection = collection;
  const headers = { "Content-Type": "application/json" };
  const key = document.getElementById("api-key").value.trim();
  if (key) headers.Authorization = `Bearer ${key}`;

  statusLine.textContent = "Searching…";
  statusLine.className = "";
  results.replaceChildren();
  try {
    const response = await fetch("/v1/search", { method: "POST", headers, body: JSON.stringify(body) });
    const payload = await response.json();
    if (!response.ok) throw new Error(`${response.status}: ${payload.detail || response.statusText}`);
    results.replaceChildren(...payload.hits.map(renderHit));
    statusLine.textContent = payload.hits.length
      ? `${payload.hits.length} result${payload.hits.length === 1 ? "" : "s"}`
      : "No results";
  } catch (error) {
    statusLine.textContent = `Search failed: ${error.message}`;
    statusLine.className = "error";
  }
}

// Only hybrid fuses, so the fusion can be chosen only in hybrid mode.
const modeSelect = document.getElementById("mode");
const fusionSelect = document.getElementById("fusion");
function fusionFollowsMode() {
  fusionSelect.disabled = modeSelect.value !== "hybrid";
}
modeSelect.addEventListener("change", fusionFollowsMode);
fusionFollowsMode();

form.addEventListener("submit", search);
