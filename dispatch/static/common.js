/* Kuzet console: shared helpers. Vanilla JS, no build step. Everything user-supplied goes through
   textContent (never innerHTML), so notes, names and reasons are shown as text. */
"use strict";

const K = (() => {
  const csrf = () => {
    const m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  };

  /** Element builder: el("div", {class: "x", dataset: {id: 1}}, "text", child...) */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  const pad = (n) => String(n).padStart(2, "0");
  function fmtTime(ms) {
    if (ms === null || ms === undefined) return "—";
    const d = new Date(ms);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  function fmtDateTime(ms) {
    if (ms === null || ms === undefined) return "—";
    const d = new Date(ms);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${fmtTime(ms)}`;
  }
  function fmtAge(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "—";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  }
  const label = (s) => String(s || "").replace(/_/g, " ");

  /* The rule specifics of an incident (its `analytics`), as short facts: line and direction, crowd size,
     plate and speed. Shared by the feed cards and the detail page. */
  function facts(a) {
    if (!a) return [];
    const out = [];
    const lc = a.line_crossing, cr = a.crowd, tr = a.traffic;
    if (lc) out.push(`${lc.direction === "in" ? "→ in" : "← out"} over ${lc.line}`, `${lc.label}`, `#${lc.count} this period`);
    if (cr) out.push(`${cr.count} people`, `peak ${cr.peak}`, `limit ${cr.limit}`);
    if (tr) {
      out.push(tr.plate ? `plate ${tr.plate}` + (tr.plate_confidence != null ? ` (${Math.round(tr.plate_confidence * 100)} %)` : "") : "plate unread");
      if (tr.speed_kmh != null) out.push(`${tr.speed_kmh.toFixed(1)} km/h (limit ${tr.limit_kmh})`, `${tr.distance_m} m`);
      if (tr.stopped_s != null) out.push(`stopped ${Math.round(tr.stopped_s)} s`);
      if (tr.lane) out.push(`against lane ${tr.lane}`);
    }
    return out;
  }

  async function api(method, url, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = csrf();
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(url, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); throw new Error("login required"); }
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const detail = data && data.detail;
      const msg = typeof detail === "string" ? detail : `request failed (${res.status})`;
      const err = new Error(msg); err.status = res.status; throw err;
    }
    return data;
  }

  function boot() {
    const node = document.getElementById("boot");
    return node ? JSON.parse(node.textContent) : {};
  }

  function setConn(state) {
    const c = document.getElementById("conn");
    if (!c) return;
    c.hidden = false;
    c.dataset.state = state;
    c.textContent = state === "live" ? "● live" : state === "connecting" ? "○ connecting…" : "○ reconnecting…";
  }

  /** The live feed over SSE with a watchdog: the server pings every few seconds, so silence means a
      dead connection (laptop asleep, network gone); we then reopen with the last event id we saw and
      the server replays every incident changed since, once each. */
  class Feed {
    constructor(opts) {
      this.kinds = opts.kinds;
      this.on = opts;
      this.lastId = opts.lastId || null;
      this.es = null;
      this.lastSeen = Date.now();
      this.silenceMs = opts.silenceMs || 6000;
      this.timer = setInterval(() => this.watch(), 1000);
      this.retries = 0;
      // Back online: reconnect now instead of waiting out the back-off.
      window.addEventListener("online", () => {
        this.retries = 0;
        if (this.pending) { clearTimeout(this.pending); this.pending = null; }
        if (this.es) this.es.close();
        this.start();
      });
    }
    start() {
      if (this.es) this.es.close();
      let url = `/api/feed?kinds=${encodeURIComponent(this.kinds)}`;
      if (this.lastId) url += `&last_event_id=${encodeURIComponent(this.lastId)}`;
      const sentId = this.lastId;
      setConn("connecting");
      const es = new EventSource(url, { withCredentials: true });
      this.es = es;
      this.lastSeen = Date.now();
      const seen = (e) => { this.lastSeen = Date.now(); if (e.lastEventId) this.lastId = e.lastEventId; };
      es.addEventListener("open", () => { this.lastSeen = Date.now(); this.retries = 0; setConn("live"); });
      es.addEventListener("hello", (e) => {
        seen(e);
        setConn("live");
        const d = JSON.parse(e.data);
        if (sentId && !d.resumed && this.on.onReset) { this.resync(); return; }  // too far behind, or a new database
        if (this.on.onHello) this.on.onHello(d);
      });
      es.addEventListener("ping", seen);
      es.addEventListener("incident", (e) => { seen(e); if (this.on.onIncident) this.on.onIncident(JSON.parse(e.data)); });
      es.addEventListener("camera", (e) => { seen(e); if (this.on.onCamera) this.on.onCamera(JSON.parse(e.data)); });
      es.addEventListener("camera_changes", (e) => { seen(e); if (this.on.onCameraChanges) this.on.onCameraChanges(); });
      es.addEventListener("reset", (e) => { seen(e); this.resync(); });
      // The server closed the stream because the session ended: /api/me in reopenLater sends us to the login page.
      es.addEventListener("end", () => { es.close(); this.es = null; setConn("reconnecting"); this.reopenLater(); });
      es.addEventListener("error", () => {
        setConn("reconnecting");
        if (es.readyState === EventSource.CLOSED) this.reopenLater();
      });
    }
    reopenLater() {
      if (this.pending) return;
      this.retries += 1;
      const delay = Math.min(4000, 500 * 2 ** Math.min(this.retries, 4)) * (0.75 + Math.random() / 2);
      this.pending = setTimeout(async () => {
        this.pending = null;
        try { await api("GET", "/api/me"); } catch (e) { if (e.message === "login required") return; }
        this.start();
      }, delay);
    }
    watch() {
      if (Date.now() - this.lastSeen > this.silenceMs) {
        setConn("reconnecting");
        if (this.es) { this.es.close(); this.es = null; }
        this.lastSeen = Date.now();
        this.reopenLater();
      }
    }
    async resync() {
      if (this.es) { this.es.close(); this.es = null; }
      if (this.on.onReset) this.lastId = await this.on.onReset();
      this.start();
    }
  }

  function localTimes(root) {
    for (const t of (root || document).querySelectorAll("time[data-ms]")) {
      const ms = Number(t.dataset.ms);
      if (isFinite(ms)) t.textContent = fmtDateTime(ms);
    }
  }
  document.addEventListener("DOMContentLoaded", () => localTimes());

  /** A page's filter inputs by name: every page gives each filter the id `f-<name>`. */
  const filterInputs = (names) => Object.fromEntries(names.map((n) => [n, document.getElementById(`f-${n}`)]));

  return { el, api, boot, csrf, fmtTime, fmtDateTime, fmtAge, label, facts, Feed, setConn, localTimes, filterInputs };
})();
