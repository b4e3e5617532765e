/* Lists the API's operations from its OpenAPI document (served by the console; no CDN, no eval). */
"use strict";

(async () => {
  const box = document.getElementById("api-list");
  const doc = await K.api("GET", "/api/openapi.json");
  const rows = [];
  for (const [path, ops] of Object.entries(doc.paths || {})) {
    for (const [method, op] of Object.entries(ops)) {
      rows.push(K.el("tr", {},
        K.el("td", { class: "mono" }, method.toUpperCase()),
        K.el("td", { class: "mono" }, path),
        K.el("td", {}, (op.tags || []).join(", ")),
        K.el("td", {}, op.summary || ""),
        K.el("td", { class: "muted" }, (op.description || "").split("\n")[0])));
    }
  }
  box.append(K.el("table", { class: "grid" },
    K.el("thead", {}, K.el("tr", {}, ...["Method", "Path", "Tag", "Summary", "What it does"].map((h) => K.el("th", {}, h)))),
    K.el("tbody", {}, ...rows)));
})();
