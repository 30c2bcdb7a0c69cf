// Feature dashboard: routing, site/layer data, and the index of every latent (paged, filtered,
// sorted in memory from a compact per-layer column file). The latent page lives in latent.js.
"use strict";

const Dash = (() => {
  const PAGE = 100;
  const site = { meta: null, layers: {}, lastIndexHash: "" };
  const DEFAULTS = { q: "", mod: "", amin: "", amax: "", sort: "density", dir: "desc", page: 0 };
  const state = { ...DEFAULTS };
  const SORTS = { density: "density", auroc: "AUROC", max_act: "max activation", latent: "latent" };

  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const fmt = (x, d = 3) => (x === null || x === undefined ? "–" :
    Number.isInteger(x) ? x.toLocaleString("en") :
    Math.abs(x) >= 1e5 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(2) : (+x.toFixed(d)).toString());
  const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(x < 0.001 && x > 0 ? 3 : 1) + "%");
  const tag = (m) => `<span class="tag tag-${esc(m)}">${esc(m)}</span>`;
  const view = () => document.getElementById("view");

  async function getJSON(url) {
    const r = await fetch(url);
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return r.json();
  }

  function hashParams() { return new URLSearchParams(location.hash.slice(1)); }

  function ready(name) {
    document.body.dataset.view = name;
    document.body.dataset.ready = "1";
    (window.__dash = window.__dash || {})[name + "Ready"] = performance.now();
  }

  // One layer's index: columns plus derived arrays for fast filtering.
  async function layerIndex(layer) {
    if (!site.layers[layer]) {
      const idx = await getJSON(`data/layer_${layer}/index.json`);
      const c = idx.columns;
      idx.n = c.latent.length;
      idx.lower = c.label.map((s) => (s || "").toLowerCase());
      idx.pos = new Map(c.latent.map((id, i) => [id, i]));
      site.layers[layer] = idx;
    }
    return site.layers[layer];
  }

  function filtered(idx) {
    const c = idx.columns, q = state.q.trim().toLowerCase();
    const mod = state.mod === "" ? -1 : idx.modalities.indexOf(state.mod);
    const amin = state.amin === "" ? null : +state.amin, amax = state.amax === "" ? null : +state.amax;
    const qid = /^\d+$/.test(q) ? +q : null;
    const out = [];
    for (let i = 0; i < idx.n; i++) {
      if (mod >= 0 && c.modality[i] !== mod) continue;
      if (q && !(idx.lower[i].includes(q) || c.latent[i] === qid)) continue;
      if (amin !== null || amax !== null) {
        const a = c.auroc[i];
        if (a === null || (amin !== null && a < amin) || (amax !== null && a > amax)) continue;
      }
      out.push(i);
    }
    const key = c[state.sort] || c.density, sign = state.dir === "asc" ? 1 : -1;
    out.sort((i, j) => {
      const a = key[i], b = key[j];
      if (a === null) return b === null ? i - j : 1;  // missing values last, either direction
      if (b === null) return -1;
      return a === b ? i - j : sign * (a - b);
    });
    return out;
  }

  function saveState(layer) {
    const p = new URLSearchParams({ layer });
    for (const [k, v] of Object.entries(state)) if (v !== "" && v !== 0) p.set(k, v);
    site.lastIndexHash = "#" + p.toString();
    history.replaceState(null, "", site.lastIndexHash);
  }

  function renderRows(layer, idx) {
    const rows = filtered(idx), c = idx.columns, mods = idx.modalities;
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    const html = rows.slice(state.page * PAGE, (state.page + 1) * PAGE).map((i) => {
      const id = c.latent[i];
      return `<tr data-latent="${id}"><td class="num"><a href="#layer=${layer}&latent=${id}">${id}</a></td>` +
        `<td class="lab">${c.label[i] === null ? '<span class="muted">—</span>' : esc(c.label[i])}</td><td>${tag(mods[c.modality[i]])}</td>` +
        `<td class="num">${pct(c.density[i])}</td><td class="num">${fmt(c.max_act[i])}</td>` +
        `<td class="num">${fmt(c.auroc[i])}</td><td class="num">${pct(c.speech_frac[i])}</td></tr>`;
    }).join("");
    document.getElementById("rows").innerHTML = html ||
      `<tr><td colspan="7" class="muted">no latent matches</td></tr>`;
    document.getElementById("count").textContent =
      `${rows.length.toLocaleString()} of ${idx.n.toLocaleString()} latents`;
    document.getElementById("pageinfo").textContent = `page ${state.page + 1} / ${pages}`;
    document.getElementById("prev").disabled = state.page === 0;
    document.getElementById("next").disabled = state.page >= pages - 1;
    saveState(layer);
  }

  // Cards come named from the build (inputs.summary_cards); the JSON key is the tooltip, and a
  // paper's figure is a note labelled as the paper's.
  function summaryCards(entry) {
    return (entry.cards || []).map((c) =>
      `<div class="card" title="${esc(c.key)}"><b>${esc(typeof c.value === "string" ? c.value : fmt(c.value))}</b>` +
      `<span>${esc(c.name)}</span>${c.note ? `<small class="note">${esc(c.note)}</small>` : ""}</div>`).join("");
  }

  async function renderIndex(layer, p) {
    for (const k of Object.keys(DEFAULTS)) {
      state[k] = !p.has(k) ? DEFAULTS[k] : k === "page" ? +p.get(k) || 0 : p.get(k);
    }
    const entry = site.meta.layers.find((e) => e.layer === layer);
    const idx = await layerIndex(layer);
    const sorts = Object.entries(SORTS).map(([k, v]) =>
      `<option value="${k}"${state.sort === k ? " selected" : ""}>${v}</option>`).join("");
    const mods = ["", ...idx.modalities].map((m) =>
      `<option value="${m}"${state.mod === m ? " selected" : ""}>${m || "all modalities"}</option>`).join("");
    view().innerHTML = `<div class="cards">${summaryCards(entry)}</div>
      <div class="controls">
        <input id="q" type="search" placeholder="search labels or a latent id" value="${esc(state.q)}">
        <select id="mod">${mods}</select>
        <label>AUROC <input id="amin" type="number" step="0.05" min="0" max="1" placeholder="min" value="${esc(state.amin)}">
        – <input id="amax" type="number" step="0.05" min="0" max="1" placeholder="max" value="${esc(state.amax)}"></label>
        <label>sort <select id="sort">${sorts}</select></label>
        <button id="dir" title="sort direction">${state.dir === "asc" ? "↑ ascending" : "↓ descending"}</button>
        <span id="count" class="muted"></span>
      </div>
      <table><thead><tr><th class="num">latent</th><th>label</th><th>modality</th>
        <th class="num">density</th><th class="num">max act</th><th class="num">AUROC</th>
        <th class="num">speech</th></tr></thead><tbody id="rows"></tbody></table>
      <div class="pager"><button id="prev">← previous</button><span id="pageinfo"></span>
        <button id="next">next →</button></div>`;
    const refresh = (resetPage = true) => { if (resetPage) state.page = 0; renderRows(layer, idx); };
    for (const id of ["q", "amin", "amax"]) {
      document.getElementById(id).addEventListener("input", (e) => { state[id] = e.target.value; refresh(); });
    }
    for (const id of ["mod", "sort"]) {
      document.getElementById(id).addEventListener("change", (e) => { state[id] = e.target.value; refresh(); });
    }
    document.getElementById("dir").addEventListener("click", (e) => {
      state.dir = state.dir === "asc" ? "desc" : "asc";
      e.target.textContent = state.dir === "asc" ? "↑ ascending" : "↓ descending";
      refresh();
    });
    document.getElementById("prev").addEventListener("click", () => { state.page--; refresh(false); });
    document.getElementById("next").addEventListener("click", () => { state.page++; refresh(false); });
    document.getElementById("rows").addEventListener("click", (e) => {
      const tr = e.target.closest("tr[data-latent]");
      if (tr && e.target.tagName !== "A") location.hash = `layer=${layer}&latent=${tr.dataset.latent}`;
    });
    renderRows(layer, idx);
    ready("index");
    (window.requestIdleCallback || setTimeout)(() => Dash.loadPlotly().catch(() => {}));  // for latent pages
  }

  async function route() {
    document.body.dataset.ready = "";
    try {
      if (!site.meta) {
        site.meta = await getJSON("data/site.json");
        document.getElementById("title").textContent = site.meta.title;
        const sel = document.getElementById("layer");
        sel.innerHTML = site.meta.layers.map((e) => `<option value="${e.layer}">${e.layer}</option>`).join("");
        sel.addEventListener("change", () => { state.page = 0; location.hash = `layer=${sel.value}`; });
      }
      const p = hashParams();
      const layers = site.meta.layers.map((e) => e.layer);
      const layer = layers.includes(+p.get("layer")) ? +p.get("layer") : layers[0];
      document.getElementById("layer").value = layer;
      document.getElementById("home").href = site.lastIndexHash || `#layer=${layer}`;
      if (p.has("latent")) await Dash.renderLatent(layer, +p.get("latent"));
      else await renderIndex(layer, p);
    } catch (err) {
      view().innerHTML = `<p class="error">Could not load the dashboard: ${esc(err.message)}</p>`;
      ready("error");
    }
  }

  function start() {
    window.addEventListener("hashchange", route);
    route();
  }

  return { start, getJSON, layerIndex, esc, fmt, pct, tag, ready, view, site };
})();
