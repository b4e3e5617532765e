/* Camera health board for 20,000 cameras: the server filters, counts, sorts and pages (GET /api/cameras);
   the DOM holds one page (100 rows), never the fleet.
   Live: the feed's `camera_changes` event says "some camera changed" (one message however many did), and the
   board re-fetches its page at most once a second; it also re-fetches every 5 s, because a camera turns
   "stale" when its worker goes silent, which sends nothing. Between fetches, every second, the last-frame
   age of down and stale cameras counts up and a row whose status is older than stale_after_ms turns stale. Filters and sort live in the URL, so a view can be shared.
   Line counts: each row shows its camera's newest count period per line; new counts arrive as `camera_changes`. */
"use strict";

(() => {
  const PAGE = 100;
  const MIN_GAP_MS = 1000;
  const REFRESH_MS = 5000;
  const table = document.getElementById("cameras");
  const body = table.querySelector("tbody");
  const summary = document.getElementById("cam-summary");
  const countsBox = document.getElementById("cam-counts");
  const pageInfo = document.getElementById("page-info");
  const prev = document.getElementById("page-prev");
  const next = document.getElementById("page-next");
  const emptyNote = document.getElementById("cam-empty");
  const errorBox = document.getElementById("cam-error");
  const form = document.getElementById("cam-filters");
  const f = K.filterInputs(["state", "zone", "worker", "q"]);
  const fmt = new Intl.NumberFormat("en-US");
  const view = { sort: "state", order: "asc", offset: 0 };
  let fetchedAt = 0; // browser time of the last answer
  let serverAt = 0; // server time of the last answer
  let staleAfter = 0; // ms without a status after which a camera is stale (0: never)
  let seq = 0; // request counter: only the newest answer is drawn
  let inFlight = false, again = false, lastFetch = 0, timer = 0;

  (function fromUrl() {
    const p = new URLSearchParams(location.search);
    for (const k of ["state", "worker", "q"]) if (p.get(k)) f[k].value = p.get(k);
    view.zone = p.get("zone") || "";
    if (p.get("sort")) view.sort = p.get("sort");
    if (p.get("order") === "desc") view.order = "desc";
    view.offset = Math.max(0, parseInt(p.get("offset") || "0", 10) || 0);
  })();

  function query() {
    const p = new URLSearchParams();
    for (const k of ["state", "worker", "q"]) if (f[k].value.trim()) p.set(k, f[k].value.trim());
    const zone = f.zone.value || view.zone;
    if (zone) p.set("zone", zone);
    if (view.sort !== "state") p.set("sort", view.sort);
    if (view.order !== "asc") p.set("order", view.order);
    if (view.offset) p.set("offset", String(view.offset));
    return p;
  }

  function ageText(c) {
    if (c.last_frame_age_ms === null) return "never";
    const flowing = c.shown === "up" || c.shown === "degraded";
    const ms = c.last_frame_age_ms + (flowing ? 0 : Date.now() - fetchedAt);
    if (ms < 10000) return `${(ms / 1000).toFixed(1)}s ago`;
    return `${K.fmtAge(ms / 1000)} ago`;
  }

  /** Each line of the camera's newest count period: "gate 12 in / 9 out"; per label and the period in the title.
      Counts two periods or more behind the server's clock (the worker stopped sending them) are dimmed and say when. */
  function lineCounts(c) {
    const lc = c.line_counts;
    const td = K.el("td", { class: "line-counts", "data-testid": "camera-line-counts" });
    if (!lc) return td;
    const period = `${K.fmtTime(lc.period_start_ms)}–${K.fmtTime(lc.period_end_ms)}` + (lc.complete ? "" : " (partial)");
    td.title = `counts of ${period}`;
    for (const l of lc.lines) {
      const labels = Object.entries(l.labels).map(([name, n]) => `${name} ${n.in} in / ${n.out} out`).join(", ");
      td.append(K.el("div", { "data-testid": "line-count", dataset: { line: l.line }, title: `${l.line}: ${labels} · ${period}` },
        K.el("span", { class: "mono" }, l.line), ` ${l.in} in / ${l.out} out`));
    }
    const behind = serverAt + (Date.now() - fetchedAt) - lc.period_end_ms;
    if (behind > 2 * Math.max(lc.period_end_ms - lc.period_start_ms, 1000)) {
      td.classList.add("old");
      td.append(K.el("div", { class: "muted", "data-testid": "line-counts-old" }, `as of ${K.fmtTime(lc.period_end_ms)}`));
    }
    return td;
  }

  function row(c) {
    const st = c.shown;
    const flowing = st === "up" || st === "degraded";
    const age = K.el("td", { class: "age num", "data-testid": "camera-age" }, ageText(c));
    const tr = K.el("tr", { class: `state-${st}`, dataset: { camera: c.camera_id }, "data-testid": "camera-row" },
      K.el("td", { class: "mono" }, c.camera_id),
      K.el("td", {}, K.el("span", { class: `pill pill-${st}`, "data-testid": "camera-state" }, st)),
      age,
      K.el("td", { class: "num" }, flowing ? c.analysed_fps.toFixed(1) : "—"),
      K.el("td", { class: "num" }, flowing ? c.input_fps.toFixed(1) : "—"),
      K.el("td", { class: "num" }, String(c.reconnects)),
      K.el("td", { class: "mono", "data-testid": "camera-worker" }, c.worker_id),
      K.el("td", { "data-testid": "camera-zones" }, (c.groups || []).join(", ")),
      lineCounts(c),
      K.el("td", { class: "reason", title: c.reason }, st === "stale" ? `no status since ${K.fmtTime(c.at_ms)}: worker silent` : c.reason),
      K.el("td", {}, K.el("time", { title: K.fmtDateTime(c.at_ms) }, K.fmtTime(c.at_ms))),
      K.el("td", {}, K.el("button", { type: "button", class: "live-open", dataset: { camera: c.camera_id },
        "data-testid": "live-open" }, "Live")));
    tr._cam = c;
    return tr;
  }

  /** Between fetches a flowing camera whose worker went silent turns stale here, on the server's clock. */
  function staleNow(c) {
    const flowing = c.shown === "up" || c.shown === "degraded";
    return flowing && staleAfter > 0 && serverAt + (Date.now() - fetchedAt) - c.at_ms > staleAfter;
  }

  function tick() {
    let turned = false;
    for (const tr of body.rows) {
      const c = tr._cam;
      if (staleNow(c)) {
        c.shown = "stale";
        c.last_frame_age_ms = c.last_frame_at_ms === null ? null : serverAt - c.last_frame_at_ms;
        tr.replaceWith(row(c));
        turned = true;
      } else {
        tr.querySelector("td.age").textContent = ageText(c);
      }
    }
    if (turned) soon(); // counts and order follow within a second
  }

  function options(select, values, current) {
    const have = [...select.options].map((o) => o.value).slice(1);
    if (have.join("\n") === values.join("\n")) return;
    select.replaceChildren(K.el("option", { value: "" }, "all"), ...values.map((v) => K.el("option", { value: v }, v)));
    select.value = values.includes(current) ? current : "";
  }

  function draw(res, q) {
    fetchedAt = Date.now();
    serverAt = res.server_now_ms;
    staleAfter = res.stale_after_ms || 0;
    options(f.zone, res.zones, f.zone.value || view.zone);
    view.zone = "";
    const list = document.getElementById("worker-list");
    if (list.children.length !== res.workers.length) {
      list.replaceChildren(...res.workers.map((w) => K.el("option", { value: w })));
    }
    body.replaceChildren(...res.items.map(row));
    const n = res.counts;
    const inFilter = n.up + n.degraded + n.stale + n.down;
    summary.textContent = `${fmt.format(res.total)} cameras` +
      (res.matching !== res.total ? ` · ${fmt.format(res.matching)} match` : "");
    countsBox.replaceChildren(...["down", "stale", "degraded", "up"].map((s) =>
      K.el("button", { type: "button", class: `count pill pill-${s}` + (f.state.value === s ? " on" : ""),
        dataset: { state: s }, "data-testid": `count-${s}`, title: `show only ${s} (of ${fmt.format(inFilter)})` },
        `${fmt.format(n[s])} ${s}`)));
    const first = res.matching ? res.offset + 1 : 0;
    pageInfo.textContent = `${fmt.format(first)}–${fmt.format(res.offset + res.items.length)} of ${fmt.format(res.matching)}`;
    prev.disabled = res.offset <= 0;
    next.disabled = res.offset + res.items.length >= res.matching;
    emptyNote.hidden = res.items.length > 0;
    emptyNote.textContent = res.total ? "No camera matches these filters." : "No camera has reported yet.";
    for (const th of table.querySelectorAll("th")) {
      th.classList.toggle("sorted", th.dataset.key === view.sort);
      th.dataset.dir = th.dataset.key === view.sort ? (view.order === "asc" ? "asc" : "desc") : "";
    }
    table.dataset.query = q; // what the rows show (tests and measurements wait on it)
    table.dataset.matching = String(res.matching);
  }

  async function load() {
    if (inFlight) { again = true; return; }
    inFlight = true;
    lastFetch = Date.now();
    const p = query();
    const q = p.toString();
    history.replaceState(null, "", q ? `?${q}` : location.pathname);
    p.set("limit", String(PAGE));
    const mine = ++seq;
    try {
      const res = await K.api("GET", `/api/cameras?${p}`);
      if (mine === seq) { draw(res, q); errorBox.hidden = true; }
    } catch (err) {
      errorBox.textContent = err.message;
      errorBox.hidden = false;
    } finally {
      inFlight = false;
      if (again) { again = false; load(); }
    }
  }

  /** Re-fetch soon, but not more than once per MIN_GAP_MS (a heartbeat storm is one fetch a second). */
  function soon() {
    if (timer) return;
    timer = setTimeout(() => { timer = 0; load(); }, Math.max(0, lastFetch + MIN_GAP_MS - Date.now()));
  }

  function refilter() { view.offset = 0; load(); }
  let typing = 0;
  f.q.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(refilter, 150); });
  f.worker.addEventListener("change", refilter);
  f.state.addEventListener("change", refilter);
  f.zone.addEventListener("change", refilter);
  form.addEventListener("submit", (e) => { e.preventDefault(); refilter(); });
  countsBox.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-state]");
    if (!b) return;
    f.state.value = f.state.value === b.dataset.state ? "" : b.dataset.state;
    refilter();
  });
  prev.addEventListener("click", () => { view.offset = Math.max(0, view.offset - PAGE); load(); });
  next.addEventListener("click", () => { view.offset += PAGE; load(); });
  table.querySelector("thead").addEventListener("click", (e) => {
    const th = e.target.closest("th[data-key]");
    if (!th) return;
    if (view.sort === th.dataset.key) view.order = view.order === "asc" ? "desc" : "asc";
    else { view.sort = th.dataset.key; view.order = "asc"; }
    refilter();
  });

  // live view: one camera at a time, only when asked for (the server audits every view)
  const livePanel = document.getElementById("live");
  const liveError = document.getElementById("live-error");
  body.addEventListener("click", (e) => {
    const button = e.target.closest("button.live-open");
    if (!button) return;
    livePanel.hidden = false;
    liveError.hidden = true;
    document.getElementById("live-title").textContent = `Live: ${button.dataset.camera}`;
    KLive.open(document.getElementById("live-video"), button.dataset.camera, "")
      .catch((err) => { liveError.textContent = err.message; liveError.hidden = false; });
  });
  document.getElementById("live-stop").addEventListener("click", () => { KLive.stop(); livePanel.hidden = true; });

  load();
  new K.Feed({ kinds: "camera_changes", onCameraChanges: soon, onReset: async () => { soon(); return null; } }).start();
  setInterval(() => {
    if (Date.now() - lastFetch >= REFRESH_MS) load();
    tick();
  }, 1000);
})();
