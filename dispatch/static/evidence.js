/* Incident evidence: play the clip (masked for dispatchers) through an audited, short-lived link, export the
   evidence bundle with a reason, and put the incident on legal hold. Every view is audited by the server first. */
"use strict";

(() => {
  const boot = K.boot();
  const id = boot.incident_id;
  const box = document.getElementById("evidence");
  if (!box || !id) return;
  const video = document.getElementById("ev-video");
  const info = document.getElementById("ev-clip-info");
  const holdInfo = document.getElementById("ev-hold-info");
  const form = document.getElementById("ev-bundle-form");
  const errorBox = document.getElementById("d-error");

  function showError(msg) { errorBox.textContent = msg; errorBox.hidden = !msg; }

  function renderHold(hold) {
    holdInfo.textContent = hold ? `On legal hold (${hold.held_by}: ${hold.reason})` : "";
    document.getElementById("ev-hold").textContent = hold ? "Release legal hold" : "Legal hold";
  }

  async function play(variant) {
    showError("");
    try {
      const res = await K.api("POST", `/api/incidents/${id}/clip/play`, { variant });
      video.hidden = false;
      video.src = res.url;
      await video.play().catch(() => {});
    } catch (err) { showError(err.message); }
  }

  async function load() {
    let ev;
    try { ev = await K.api("GET", `/api/incidents/${id}/evidence`); } catch (err) { return; }
    box.hidden = false;
    renderHold(ev.hold);
    const clip = ev.clip;
    if (clip) {
      const status = clip.status === "complete" ? "" : ` — incomplete: ${clip.reason}`;
      info.textContent = `Clip ${Math.round(clip.duration_s)} s${ev.masked_for_you ? " (privacy masks applied)" : ""}${status}`;
      document.getElementById("ev-play").hidden = false;
      document.getElementById("ev-play-original").hidden = ev.masked_for_you;
    } else {
      info.textContent = "No clip yet (it is published once the post-roll is recorded).";
    }
    form.hidden = !ev.may_export;
  }

  document.getElementById("ev-play").addEventListener("click", () => play("masked"));
  document.getElementById("ev-play-original").addEventListener("click", () => play("original"));

  const liveButton = document.getElementById("ev-live");
  liveButton.addEventListener("click", () => {
    showError("");
    if (liveButton.dataset.on) {
      KLive.stop();
      delete liveButton.dataset.on;
      liveButton.textContent = "Live view";
      return;
    }
    liveButton.dataset.on = "1";
    liveButton.textContent = "Stop live view";
    KLive.open(document.getElementById("live-video"), liveButton.dataset.camera, id)
      .catch((err) => showError(err.message));
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError("");
    const reason = document.getElementById("ev-reason").value.trim();
    const original = document.getElementById("ev-original").checked;
    const res = await fetch(`/api/incidents/${id}/bundle`, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": K.csrf() },
      body: JSON.stringify({ reason, original }),
    });
    if (!res.ok) { showError(`export refused (${res.status})`); return; }
    const blob = await res.blob();
    const a = K.el("a", { href: URL.createObjectURL(blob), download: `kuzet-evidence-${id}.zip` });
    document.body.append(a);
    a.click();
    a.remove();
  });

  document.getElementById("ev-hold").addEventListener("click", async () => {
    showError("");
    const reason = document.getElementById("ev-reason").value.trim();
    const on = !holdInfo.textContent;
    try {
      const res = await K.api("POST", `/api/incidents/${id}/hold`, { on, reason });
      renderHold(res.hold);
    } catch (err) { showError(err.message); }
  });

  load();
})();
