/* Live feed page: cards keyed by incident id, updated in place; the DOM holds at most max_cards cards
   (older ones are paged out to the Incidents list), and updates are applied once per animation frame
   so a burst of hundreds of events a second costs one layout, not hundreds.
   Only alerts are cards (detections stay in the Incidents list). Alerts of one camera, type and zone that
   start within fold_window_ms of each other fold into one card: the newest one, with a count
   (the same rule as dispatch/grouping.py, which serves /api/feed/cards); a folded card's buttons act on every
   alert in it (POST /api/feed/cards/actions). */
"use strict";

(() => {
  const boot = K.boot();
  const MAX_CARDS = boot.max_cards || 150;
  const FOLD_MS = boot.fold_window_ms || 0;
  const MAX_KEPT = Math.max(1000, MAX_CARDS * 5); // incident states kept in memory for re-filtering
  const FLUSH_MS = 200;
  const root = document.getElementById("feed");
  const empty = document.getElementById("feed-empty");
  const counts = document.getElementById("counts");
  const filters = K.filterInputs(["type", "severity", "group", "status"]);
  const incidents = new Map(); // id -> latest state
  const cards = new Map(); // id -> element in the DOM
  const folds = new Map(); // camera|type|zone -> {ids: [newest first], last: started ms} of the open fold
  const foldOf = new Map(); // incident id -> its fold
  let dirty = new Set();
  let frame = 0;
  let received = 0;

  const groupPatterns = Object.entries(boot.groups || {}).map(([name, pats]) => [name, pats.map(globRe)]);
  function globRe(p) {
    return new RegExp("^" + p.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$");
  }
  function inGroup(cameraId, group) {
    const entry = groupPatterns.find(([n]) => n === group);
    return !!entry && entry[1].some((re) => re.test(cameraId));
  }
  function groupKey(d) { return `${d.camera_id}|${d.type}|${d.zone || ""}`; }
  function fold(d) {
    // a new alert joins its camera's open fold when it starts within the window of the fold's newest
    if (foldOf.has(d.incident_id) || (d.review || "alert") !== "alert") return;
    const key = groupKey(d);
    let f = folds.get(key);
    if (!f || FOLD_MS <= 0 || Math.abs(d.started_at_ms - f.last) > FOLD_MS) {
      f = { ids: [], last: d.started_at_ms };
      folds.set(key, f);
    }
    const prev = f.ids[0];
    f.ids.push(d.incident_id);
    const startOf = (id) => (incidents.get(id) || { started_at_ms: 0 }).started_at_ms; // trimmed: oldest
    f.ids.sort((a, b) => startOf(b) - startOf(a));
    f.last = Math.max(f.last, d.started_at_ms);
    foldOf.set(d.incident_id, f);
    if (prev && prev !== f.ids[0]) dirty.add(prev); // the old card gives way to the newest
  }
  function folded(d) {
    const f = foldOf.get(d.incident_id);
    return !!f && f.ids[0] !== d.incident_id;
  }
  function visible(d) {
    if ((d.review || "alert") !== "alert" || folded(d)) return false;
    if (filters.type.value && d.type !== filters.type.value) return false;
    if (filters.severity.value && d.severity !== filters.severity.value) return false;
    if (filters.group.value && !inGroup(d.camera_id, filters.group.value)) return false;
    const st = filters.status.value;
    if (st === "open" && (d.status === "resolved" || d.status === "false_alarm")) return false;
    if (st && st !== "open" && d.status !== st) return false;
    return true;
  }

  function button(action, text, cls) {
    return K.el("button", { class: cls || "", dataset: { action }, type: "button" }, text);
  }

  function fill(card, d) {
    card.className = `card card-${d.severity} card-${d.status}` + (d.detection_state === "end" ? " ended" : " live");
    card.dataset.version = d.version;
    card.dataset.status = d.status;
    card.dataset.started = d.started_at_ms;
    const media = d.has_snapshot
      ? K.el("img", { src: `/api/incidents/${d.incident_id}/snapshot`, alt: "snapshot", loading: "lazy", class: "snap" })
      : K.el("div", { class: "snap nosnap" }, "no snapshot");
    const f = foldOf.get(d.incident_id);
    const more = f && f.ids.length > 1 ? f.ids.length - 1 : 0;
    const all = more ? ` all ${more + 1}` : ""; // a folded card's buttons act on every alert in it
    const actions = K.el("div", { class: "card-actions" });
    const admin = boot.role === "admin";
    if (d.status === "new") actions.append(button("acknowledge", `Acknowledge${all}`, "primary"));
    if (d.status === "acknowledged" || (admin && d.status === "new")) {
      actions.append(button("resolve", `Resolve${all}`), button("false_alarm", more ? `False alarm (${all.trim()})` : "False alarm"));
    }
    actions.append(K.el("a", { href: `/incidents/${d.incident_id}`, class: "button" }, "Details"));
    const detection = d.detection_state === "end" ? "ended" : "ongoing";
    card.dataset.groupCount = String(more + 1);
    card.replaceChildren(
      K.el("a", { href: `/incidents/${d.incident_id}`, class: "snap-link", tabindex: "-1" }, media),
      K.el("div", { class: "card-body" },
        K.el("div", { class: "card-head" },
          K.el("span", { class: `sev sev-${d.severity}` }, d.severity),
          K.el("span", { class: "type" }, K.label(d.type)),
          K.el("span", { class: `status status-${d.status}`, "data-testid": "card-status" }, K.label(d.status)),
          more ? K.el("span", { class: "fold", "data-testid": "card-fold", title: "related alerts on this camera" },
            `+${more}`) : ""),
        K.el("div", { class: "camera" }, d.camera_name || d.camera_id),
        K.el("div", { class: "where muted" }, [d.location, d.zone ? `zone ${d.zone}` : "",
          d.object_count ? `${d.object_count} inside` : ""].filter(Boolean).join(" · ") || "\u00a0"),
        d.analytics ? K.el("div", { class: "facts-line", "data-testid": "card-facts" }, K.facts(d.analytics).join(" · ")) : "",
        K.el("div", { class: "meta" },
          K.el("time", { title: K.fmtDateTime(d.started_at_ms) }, K.fmtTime(d.started_at_ms)),
          ` · ${Math.round(d.confidence * 100)} % · `,
          K.el("span", { class: "detection" }, detection),
          d.assignee ? ` · → ${d.assignee}` : "",
          d.notes ? ` · ${d.notes} note${d.notes === 1 ? "" : "s"}` : ""),
        actions));
  }

  function place(card, d) {
    // Newest start first; a replayed older incident goes where it belongs, not on top.
    let before = null;
    for (const other of root.children) {
      if (Number(other.dataset.started) < d.started_at_ms) { before = other; break; }
    }
    root.insertBefore(card, before);
  }

  function trim() {
    while (root.children.length > MAX_CARDS) {
      const last = root.lastElementChild;
      cards.delete(last.dataset.id);
      last.remove();
    }
    if (incidents.size > MAX_KEPT * 1.2) { // amortised: sort once per 20 % overshoot, not on every update
      const oldest = [...incidents.values()].sort((a, b) => a.started_at_ms - b.started_at_ms);
      for (const d of oldest.slice(0, incidents.size - MAX_KEPT)) {
        if (!cards.has(d.incident_id)) incidents.delete(d.incident_id);
      }
    }
  }

  function renderOne(id) {
    const d = incidents.get(id);
    if (!d) return;
    let card = cards.get(id);
    if (!visible(d)) {
      if (card) { card.remove(); cards.delete(id); }
      return;
    }
    if (card) { fill(card, d); return; }
    // Not shown: only show it if it is newer than the oldest card on a full page.
    if (root.children.length >= MAX_CARDS && Number(root.lastElementChild.dataset.started) > d.started_at_ms) return;
    card = K.el("article", { class: "card", dataset: { id }, "data-testid": "incident-card" });
    fill(card, d);
    cards.set(id, card);
    place(card, d);
  }

  let flushMs = 0;
  function flush() {
    const t0 = performance.now();
    frame = 0;
    const ids = dirty;
    dirty = new Set();
    for (const id of ids) renderOne(id);
    trim();
    updateCounts();
    flushMs += performance.now() - t0;
  }

  function updateCounts() {
    empty.hidden = root.children.length > 0;
    let open = 0;
    for (const d of incidents.values()) if (d.status === "new") open += 1;
    counts.textContent = `${root.children.length} shown · ${open} new · ${received} updates`;
    root.dataset.cards = String(root.children.length);
  }

  function accept(d) {
    const known = incidents.get(d.incident_id);
    if (known && known.version >= d.version) return; // duplicate or stale: exactly once on screen
    received += 1;
    d.rx_ms = Date.now(); // when this browser got it (latency diagnostics, benchmarks/console_load.py)
    incidents.set(d.incident_id, d);
    fold(d);
    dirty.add(d.incident_id);
    // At most ~5 DOM updates a second: a burst of hundreds of events costs one layout, not hundreds.
    if (!frame) frame = setTimeout(() => requestAnimationFrame(flush), FLUSH_MS);
  }

  function refold() {
    folds.clear();
    foldOf.clear();
    for (const d of [...incidents.values()].sort((a, b) => a.started_at_ms - b.started_at_ms)) fold(d);
  }

  function rebuild() {
    root.replaceChildren();
    cards.clear();
    refold();
    const shown = [...incidents.values()].filter(visible).sort((a, b) => b.started_at_ms - a.started_at_ms || (a.incident_id < b.incident_id ? 1 : -1));
    for (const d of shown.slice(0, MAX_CARDS)) {
      const card = K.el("article", { class: "card", dataset: { id: d.incident_id }, "data-testid": "incident-card" });
      fill(card, d);
      cards.set(d.incident_id, card);
      root.append(card);
    }
    updateCounts();
  }

  async function load() {
    const params = new URLSearchParams({ limit: String(Math.min(500, MAX_KEPT)), review: "alert" });
    const page = await K.api("GET", `/api/incidents?${params}`);
    for (const d of page.items) {
      const known = incidents.get(d.incident_id);
      if (!known || known.version < d.version) incidents.set(d.incident_id, d);
    }
    rebuild();
    return `${page.store}.${page.rev}`;
  }

  root.addEventListener("click", async (e) => {
    const btn = e.target.closest("button[data-action]");
    if (!btn) return;
    const card = btn.closest(".card");
    btn.disabled = true;
    const f = foldOf.get(card.dataset.id);
    try {
      if (f && f.ids.length > 1) { // the whole card: each incident acted on (and recorded) on its own
        const res = await K.api("POST", "/api/feed/cards/actions",
          { action: btn.dataset.action, incident_ids: f.ids.slice(0, 500) });
        for (const d of res.incidents) accept(d);
      } else {
        const res = await K.api("POST", `/api/incidents/${card.dataset.id}/actions`, { action: btn.dataset.action });
        accept(res.incident);
      }
    } catch (err) {
      btn.disabled = false;
      btn.title = err.message;
      card.classList.add("flash-error");
      setTimeout(() => card.classList.remove("flash-error"), 1500);
    }
  });
  for (const f of Object.values(filters)) f.addEventListener("change", rebuild);

  (async () => {
    const lastId = await load();
    const feed = new K.Feed({ kinds: "incidents", lastId, onIncident: accept, onReset: load });
    feed.start();
    window.kuzetFeed = { feed, incidents, cards, stats: () => ({ received, cards: root.children.length, kept: incidents.size, flush_ms: flushMs }) };
  })();
})();
