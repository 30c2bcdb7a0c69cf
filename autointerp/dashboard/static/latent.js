// Feature dashboard: one latent's page — label, what activates it beside what it does (the
// output side: a sentence and the rendered codes), scores, histogram (plotly, loaded on demand),
// logit lens, steering runs, and example windows (text shading; audio clips with the waveform
// envelope and the activation trace drawn on a canvas under the player).
"use strict";

(() => {
  const { esc, fmt, pct, tag, getJSON, ready, view } = Dash;
  let plotlyLoading = null;

  function loadPlotly() {
    if (window.Plotly) return Promise.resolve();
    plotlyLoading = plotlyLoading || new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = "static/plotly.min.js";
      s.onload = resolve;
      s.onerror = () => reject(new Error("static/plotly.min.js did not load"));
      document.head.appendChild(s);
    });
    return plotlyLoading;
  }

  const card = (k, v) => `<div class="card"><b>${esc(v)}</b><span>${esc(k)}</span></div>`;

  function tokensHTML(text, scale) {
    return text.tokens.map((t, i) => {
      const a = text.acts[i] ?? 0, alpha = Math.min(1, Math.max(0, a / scale));
      const cls = i === text.center ? "tok center" : "tok";
      return `<span class="${cls}" style="background:rgba(232,89,12,${alpha.toFixed(3)})" ` +
        `title="${esc(fmt(a))}">${esc(t)}</span>`;
    }).join("");
  }

  // Waveform envelope (grey) with the activation trace (orange) and the playhead on top.
  function drawClip(canvas, clip, scale, now) {
    const w = canvas.width = canvas.clientWidth * devicePixelRatio || 480;
    const h = canvas.height = 90 * devicePixelRatio;
    const g = canvas.getContext("2d"), env = clip.env, dur = clip.duration || 1;
    g.clearRect(0, 0, w, h);
    g.fillStyle = "#adb5bd";
    const n = env ? env.hi.length : 0, mid = h * 0.4;
    const amp = env ? Math.max(1e-6, ...env.hi.map(Math.abs), ...env.lo.map(Math.abs)) : 1;
    for (let i = 0; i < n; i++) {
      const x = (i / n) * w, y0 = mid - (env.hi[i] / amp) * mid * 0.95, y1 = mid - (env.lo[i] / amp) * mid * 0.95;
      g.fillRect(x, y0, Math.max(1, w / n - 0.5), Math.max(1, y1 - y0));
    }
    if (clip.trace.length) {
      g.strokeStyle = "#e8590c";
      g.lineWidth = 2 * devicePixelRatio;
      g.beginPath();
      clip.trace.forEach(([t, a], i) => {
        const x = (t / dur) * w, y = h - 4 - (Math.max(0, a) / scale) * (h * 0.9 - 4);
        if (i) g.lineTo(x, y); else g.moveTo(x, y);
      });
      g.stroke();
    }
    if (now > 0) {
      g.fillStyle = "#1d2330";
      g.fillRect((now / dur) * w, 0, 1.5 * devicePixelRatio, h);
    }
  }

  function exampleHTML(ex, k, layer) {
    const meta = `<div class="meta">act <b>${fmt(ex.act)}</b> · ${esc(ex.modality)} · ` +
      `${esc(ex.utt_id)} @ ${esc(ex.position)}${ex.src_utt_id ? " · source " + esc(ex.src_utt_id) : ""}</div>`;
    let body = "";
    if (ex.clip) {
      const player = ex.clip.wav ? `<audio controls preload="metadata" src="data/layer_${layer}/` +
        `${esc(ex.clip.wav)}"></audio>` : '<div class="muted">activation trace (no audio kept)</div>';
      body += `<div class="clip">${player}<canvas data-k="${k}"></canvas>` +
        `<div class="muted">clip ${fmt(ex.clip.t0, 2)}–${fmt(ex.clip.t1, 2)} s of the utterance</div></div>`;
    }
    if (ex.text) body += `<div class="tokens" data-k="${k}"></div>`;
    return `<div class="ex">${meta}${body || '<span class="muted">no window</span>'}</div>`;
  }

  function lensTable(title, pairs) {
    const rows = pairs.map(([c, v]) => `<tr><td>${esc(c)}</td><td>${fmt(v)}</td></tr>`).join("");
    return `<div><h4>${title}</h4><table class="lens"><tr><th>output token (code)</th><th>logit</th></tr>` +
      `${rows || '<tr><td colspan="2" class="muted">none</td></tr>'}</table></div>`;
  }

  // What the latent does to the sound: the output-side sentence, the rendered promoted and
  // suppressed codes, and the two weighted code profiles (autointerp.output_side).
  function outputHTML(out, layer) {
    if (!out) return '<p class="muted">No output side: this model has no per-code acoustic ' +
      "profile, or the auto-interp run predates it.</p>";
    const player = (side) => (out.wav && out.wav[side] ?
      `<div class="out-wav"><span>${side}</span><audio controls preload="none" ` +
      `src="data/layer_${layer}/${esc(out.wav[side])}"></audio></div>` : "");
    const row = (name, key, d) => `<tr><td>${name}</td><td>${fmt(out.promoted[key], d)}</td>` +
      `<td>${fmt(out.suppressed[key], d)}</td></tr>`;
    return `<p class="output-text">${esc(out.text)}</p>${player("promoted")}${player("suppressed")}` +
      `<table class="lens profile"><tr><th>sound of the codes</th><th>promoted</th><th>suppressed</th></tr>` +
      `${row("F0 (Hz)", "f0_hz", 0)}${row("voiced share", "voiced", 2)}${row("energy (dB)", "energy_db", 1)}` +
      `${row("spectral centroid (Hz)", "centroid_hz", 0)}${row("tilt (dB/octave)", "tilt_db_oct", 1)}</table>`;
  }

  function steeringHTML(runs) {
    if (!runs.length) return '<p class="muted">No steering run used this latent.</p>';
    return runs.map((r) => {
      const groups = new Map();  // "effects.laughter.4.sae" → row "effects.laughter.4", entry "sae"
      for (const [k, v] of Object.entries(r.metrics)) {
        const cut = k.lastIndexOf("."), g = cut > 0 ? k.slice(0, cut) : "", name = k.slice(cut + 1);
        if (!groups.has(g)) groups.set(g, []);
        groups.get(g).push(`${esc(name)} <b>${typeof v === "number" ? fmt(v) : esc(v)}</b>`);
      }
      const rows = [...groups].map(([g, items]) =>
        `<tr><td>${esc(g)}</td><td>${items.join(" · ")}</td></tr>`).join("");
      const targets = (r.targets || []).length ? ` <span class="muted">(selected for ${esc(r.targets.join(", "))})</span>` : "";
      return `<h4>${esc(r.concept)}${targets}</h4>` +
        `<table>${rows || '<tr><td class="muted">no figures</td></tr>'}</table>`;
    }).join("");
  }

  function wireExamples(examples, scale, layer) {
    document.querySelectorAll(".tokens[data-k]").forEach((el) => {
      el.innerHTML = tokensHTML(examples[+el.dataset.k].text, scale);
    });
    document.querySelectorAll("canvas[data-k]").forEach((cv) => {
      const clip = examples[+cv.dataset.k].clip, audio = cv.previousElementSibling;
      if (!clip.wav) { drawClip(cv, clip, scale, 0); return; }
      const draw = () => drawClip(cv, clip, scale, audio.currentTime);
      audio.addEventListener("timeupdate", draw);
      cv.addEventListener("click", (e) => {  // click the drawing to seek
        audio.currentTime = (e.offsetX / cv.clientWidth) * clip.duration;
      });
      draw();
    });
  }

  async function histogram(ev) {
    const el = document.getElementById("hist"), h = ev && ev.histogram;
    if (!h || !h.counts.length) { el.outerHTML = '<p class="muted">No histogram.</p>'; return; }
    await loadPlotly();
    const x = h.counts.map((_, i) => (h.edges[i] + h.edges[i + 1]) / 2);
    const width = h.counts.map((_, i) => h.edges[i + 1] - h.edges[i]);
    Plotly.newPlot(el, [{ type: "bar", x, y: h.counts, width, marker: { color: "#e8590c" } }], {
      margin: { l: 50, r: 10, t: 10, b: 40 }, xaxis: { title: { text: "activation" } },
      yaxis: { title: { text: "count" }, type: "log", dtick: 1 }, bargap: 0.05,
    }, { displayModeBar: false, responsive: true });
  }

  async function renderLatent(layer, id) {
    const idx = await Dash.layerIndex(layer);
    let d;
    try {
      d = await getJSON(`data/layer_${layer}/latents/latent_${String(id).padStart(5, "0")}.json`);
    } catch (err) {
      view().innerHTML = `<p>Latent ${esc(id)} is not in layer ${layer}. <a href="#layer=${layer}">back</a></p>`;
      ready("latent");
      return;
    }
    const i = idx.pos.get(id), ids = idx.columns.latent;
    const nav = (j, text) => (j >= 0 && j < ids.length ?
      `<a href="#layer=${layer}&latent=${ids[j]}">${text}</a>` : "");
    const s = d.scores, ev = d.evidence;
    const examples = ev ? ["top", "quantiles", "random"].flatMap((g) => ev[g].map((e) => ({ ...e, group: g }))) : [];
    const scale = Math.max(d.max_act || 0, ...examples.map((e) => e.act || 0), 1e-6);
    const section = (g, title) => {
      const items = examples.map((e, k) => [e, k]).filter(([e]) => e.group === g);
      return items.length ? `<section><h3>${title}</h3><div class="examples">` +
        items.map(([e, k]) => exampleHTML(e, k, layer)).join("") + `</div></section>` : "";
    };
    view().innerHTML = `
      <div class="muted">${[`<a href="${Dash.site.lastIndexHash || "#layer=" + layer}">← all latents</a>`,
        nav(i - 1, "previous"), nav(i + 1, "next")].filter(Boolean).join(" · ")}</div>
      <div class="latent-head"><h2>Layer ${layer} · latent ${id} ${tag(d.modality)}</h2>
        <div class="label">${esc(d.label || "(no label)")}</div></div>
      <div class="grid2"><section><h3>What activates it</h3>
        ${d.explanation ? `<p class="explanation">${esc(d.explanation)}<br><span class="muted">explainer: ` +
          `${esc(d.explainer || "?")}</span></p>` : `<p class="muted">${esc(d.label || "(no label)")}</p>`}</section>
        <section id="output-side"><h3>What it does</h3>${outputHTML(ev ? ev.output_side : null, layer)}
          ${ev && ev.intervention ? `<p class="output-text intervention">${esc(ev.intervention.text)}</p>` : ""}</section></div>
      <div class="cards">${card("detection AUROC", fmt(s.auroc))}${card("balanced accuracy", fmt(s.balanced_accuracy))}
        ${card("scorer", s.scorer || "–")}${card("density", pct(d.density))}${card("max act", fmt(d.max_act))}
        ${card("mean act", fmt(d.mean_act))}${card("speech fraction", pct(d.speech_frac))}
        ${card("quantiles", d.quantiles.map((q) => fmt(q)).join(" / ") || "–")}</div>
      <div class="grid2"><section><h3>Activation histogram</h3><div id="hist"></div></section>
        <section><h3>Logit lens (decoder direction)</h3><div class="grid2">
          ${lensTable("promoted", ev ? ev.logit_lens.promoted : [])}
          ${lensTable("suppressed", ev ? ev.logit_lens.suppressed : [])}</div></section></div>
      <section><h3>Steering</h3>${steeringHTML(d.steering || [])}</section>
      ${ev ? "" : '<p class="muted">No evidence for this latent (dead or not explained).</p>'}
      ${section("top", "Top activations")}${section("quantiles", "Quantile examples")}
      ${section("random", "Random examples")}`;
    wireExamples(examples, scale, layer);
    window.scrollTo(0, 0);
    try { await histogram(ev); } catch (err) { console.warn(err); }
    ready("latent");
  }

  Dash.renderLatent = renderLatent;
  Dash.loadPlotly = loadPlotly;
})();
