/* Incident detail: workflow buttons call the JSON API; the page follows the live feed so an action
   taken in another console shows here within a second. */
"use strict";

(() => {
  const boot = K.boot();
  const id = boot.incident_id;
  const errorBox = document.getElementById("d-error");
  const history = document.getElementById("d-history");
  const assignTo = document.getElementById("d-assign-to");
  let version = -1;

  function showError(msg) {
    errorBox.textContent = msg;
    errorBox.hidden = !msg;
  }

  function renderIncident(d) {
    if (d.version <= version) return false;
    version = d.version;
    const status = document.getElementById("d-status");
    status.textContent = K.label(d.status);
    status.className = `status status-${d.status}`;
    document.getElementById("d-assignee").textContent = d.assignee || "—";
    document.getElementById("d-detection").textContent = d.detection_state;
    document.getElementById("d-confidence").textContent = `${Math.round(d.confidence * 100)} %`;
    const admin = boot.role === "admin";
    const closed = d.status === "resolved" || d.status === "false_alarm";
    for (const b of document.querySelectorAll("#d-actions button[data-action]")) {
      const a = b.dataset.action;
      let ok = true;
      if (a === "acknowledge") ok = d.status === "new";
      if (a === "resolve" || a === "false_alarm") ok = d.status === "acknowledged" || (admin && d.status === "new");
      if (a === "assign") ok = !closed;
      if (a === "reopen") ok = closed;
      b.disabled = !ok;
    }
    assignTo.disabled = closed;
    return true;
  }

  function renderHistory(actions) {
    if (!actions.length) { history.replaceChildren(K.el("li", { class: "muted" }, "No actions yet.")); return; }
    history.replaceChildren(...actions.map((a) => K.el("li", {},
      K.el("time", {}, K.fmtDateTime(a.at_ms)), " ",
      K.el("b", {}, a.actor), " ", K.el("span", { class: "muted" }, a.role), " ", K.label(a.action),
      a.assignee ? ` → ${a.assignee}` : "",
      a.from_status !== a.to_status ? K.el("span", { class: "muted" }, ` (${a.from_status} → ${a.to_status})`) : "",
      a.note ? K.el("p", { class: "note" }, a.note) : "")));
  }

  async function refresh() {
    const res = await K.api("GET", `/api/incidents/${id}`);
    renderIncident(res.incident);
    renderHistory(res.actions);
  }

  async function act(body) {
    showError("");
    try {
      const res = await K.api("POST", `/api/incidents/${id}/actions`, body);
      renderIncident(res.incident);
      await refresh();
      return true;
    } catch (err) {
      showError(err.message);
      return false;
    }
  }

  document.getElementById("d-actions").addEventListener("click", (e) => {
    const b = e.target.closest("button[data-action]");
    if (!b) return;
    const action = b.dataset.action;
    if (action === "assign") {
      if (!assignTo.value) { showError("Choose someone to assign to."); return; }
      act({ action, assignee: assignTo.value });
    } else {
      act({ action });
    }
  });
  document.getElementById("d-note-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const area = document.getElementById("d-note");
    if (!area.value.trim()) { showError("Write something first."); return; }
    if (await act({ action: "note", note: area.value })) area.value = "";
  });

  (async () => {
    const users = await K.api("GET", "/api/users");
    for (const u of users.items) assignTo.append(K.el("option", { value: u.username }, `${u.display_name} (${u.role})`));
    await refresh();
    const feed = new K.Feed({
      kinds: "incidents",
      lastId: null,
      onIncident: (d) => { if (d.incident_id === id && d.version > version) refresh(); },
      onReset: async () => { await refresh(); return null; },
    });
    feed.start();
  })();
})();
