/* Camera health board: one row per camera, updated live from camera-status events; sortable.
   "Last frame" ticks every second for cameras that are not up (their last frame only gets older).
   Workers re-send every camera's status on a heartbeat; a camera with no status for two heartbeats
   (stale_after_ms from the server) is shown "stale": its worker stopped or lost the bus. */
"use strict";

(() => {
  const body = document.querySelector("#cameras tbody");
  const summary = document.getElementById("cam-summary");
  const emptyNote = document.getElementById("cam-empty");
  const cams = new Map();
  let skew = 0; // server clock - browser clock, ms
  let staleAfter = 0; // ms without a status after which a camera is stale (0: never)
  let sortKey = "state";
  let sortDir = 1;
  const STATE_ORDER = { down: 0, stale: 1, degraded: 2, up: 3 };

  function shown(c) {
    if (c.state !== "down" && staleAfter > 0 && Date.now() + skew - c.at_ms > staleAfter) return "stale";
    return c.state;
  }
  function age(c) {
    const st = shown(c);
    if (st === "up" || st === "degraded") return 0; // frames are flowing (degraded: too slowly)
    if (c.last_frame_at_ms === null || c.last_frame_at_ms === undefined) return Infinity;
    return (Date.now() + skew - c.last_frame_at_ms) / 1000;
  }
  function value(c, key) {
    if (key === "last_frame_age") return age(c);
    if (key === "state") return STATE_ORDER[shown(c)] ?? 9;
    if (key === "groups") return (c.groups || []).join(",");
    return c[key];
  }
  function compare(a, b) {
    const va = value(a, sortKey), vb = value(b, sortKey);
    if (va < vb) return -sortDir;
    if (va > vb) return sortDir;
    return a.camera_id < b.camera_id ? -1 : 1;
  }

  function row(c) {
    const st = shown(c);
    const flowing = st === "up" || st === "degraded";
    const lastFrame = flowing ? "live" : (c.last_frame_at_ms ? `${K.fmtAge(age(c))} ago` : "never");
    return K.el("tr", { class: `state-${st}`, dataset: { camera: c.camera_id }, "data-testid": "camera-row" },
      K.el("td", { class: "mono" }, c.camera_id),
      K.el("td", {}, K.el("span", { class: `pill pill-${st}`, "data-testid": "camera-state" }, st)),
      K.el("td", { class: "age" }, lastFrame),
      K.el("td", { class: "num" }, flowing ? c.analysed_fps.toFixed(1) : "—"),
      K.el("td", { class: "num" }, flowing ? c.input_fps.toFixed(1) : "—"),
      K.el("td", { class: "num" }, String(c.reconnects)),
      K.el("td", { class: "mono" }, c.worker_id),
      K.el("td", {}, (c.groups || []).join(", ")),
      K.el("td", { class: "reason" }, c.reason),
      K.el("td", {}, K.el("time", { title: K.fmtDateTime(c.at_ms) }, K.fmtTime(c.at_ms))),
      K.el("td", {}, K.el("button", { type: "button", class: "live-open", dataset: { camera: c.camera_id },
        "data-testid": "live-open" }, "Live")));
  }

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

  function render() {
    const list = [...cams.values()].sort(compare);
    body.replaceChildren(...list.map(row));
    emptyNote.hidden = list.length > 0;
    const n = { up: 0, degraded: 0, stale: 0, down: 0 };
    for (const c of list) n[shown(c)] = (n[shown(c)] || 0) + 1;
    summary.textContent =
      `${list.length} cameras · ${n.up} up · ${n.degraded} degraded · ${n.stale} stale · ${n.down} down`;
    for (const th of document.querySelectorAll("#cameras th")) {
      th.classList.toggle("sorted", th.dataset.key === sortKey);
      th.dataset.dir = th.dataset.key === sortKey ? (sortDir > 0 ? "asc" : "desc") : "";
    }
  }

  document.querySelector("#cameras thead").addEventListener("click", (e) => {
    const th = e.target.closest("th[data-key]");
    if (!th) return;
    if (sortKey === th.dataset.key) sortDir = -sortDir; else { sortKey = th.dataset.key; sortDir = 1; }
    render();
  });

  async function load() {
    const res = await K.api("GET", "/api/cameras");
    skew = res.server_now_ms - Date.now();
    staleAfter = res.stale_after_ms || 0;
    cams.clear();
    for (const c of res.items) cams.set(c.camera_id, c);
    render();
    return null;
  }

  (async () => {
    await load();
    const feed = new K.Feed({
      kinds: "cameras",
      onCamera: (c) => {
        const known = cams.get(c.camera_id);
        c.groups = known ? known.groups : c.groups || [];
        if (!known || known.at_ms <= c.at_ms) { cams.set(c.camera_id, c); render(); }
        if (!known) load(); // a new camera: fetch its groups
      },
      onReset: load,
    });
    feed.start();
    setInterval(render, 1000);
  })();
})();
