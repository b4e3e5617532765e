/* Live view of one camera, on demand: the server audits the view first, then the worker's fragmented MP4 is fed
   to the <video> element through Media Source Extensions, kept near the live edge. Dispatchers get it masked. */
"use strict";

window.KLive = (() => {
  let current = null; // one live view at a time on a page

  function stop() {
    if (!current) return;
    current.cancelled = true;
    current.reader.cancel().catch(() => {});
    current.video.removeAttribute("src");
    current.video.load();
    current.video.hidden = true;
    current = null;
  }

  async function open(video, cameraId, incidentId) {
    stop();
    const grant = await K.api("POST", `/api/cameras/${encodeURIComponent(cameraId)}/live`,
      { incident_id: incidentId || "" });
    const res = await fetch(grant.url, { credentials: "same-origin" });
    if (!res.ok || !res.body) throw new Error(`live view refused (${res.status})`);
    const type = res.headers.get("content-type") || "";
    if (!window.MediaSource || !MediaSource.isTypeSupported(type)) throw new Error(`this browser cannot play ${type}`);
    const source = new MediaSource();
    const view = { video, reader: res.body.getReader(), cancelled: false };
    current = view;
    video.hidden = false;
    video.src = URL.createObjectURL(source);
    await new Promise((resolve) => source.addEventListener("sourceopen", resolve, { once: true }));
    const buffer = source.addSourceBuffer(type);
    const queue = [];
    const pump = () => {
      if (buffer.updating || !queue.length || view.cancelled) return;
      const ranges = video.buffered;
      if (ranges.length && video.currentTime - ranges.start(0) > 30) {
        buffer.remove(ranges.start(0), video.currentTime - 10); // keep memory bounded on a long view
        return;
      }
      buffer.appendBuffer(queue.shift());
    };
    buffer.addEventListener("updateend", () => {
      const ranges = video.buffered;
      if (ranges.length) {
        const edge = ranges.end(ranges.length - 1);
        if (edge - video.currentTime > 1.0) video.currentTime = Math.max(ranges.start(ranges.length - 1), edge - 0.3);
      }
      pump();
    });
    video.play().catch(() => {});
    while (!view.cancelled) {
      let chunk;
      try { chunk = await view.reader.read(); } catch (err) { break; }
      if (chunk.done) break;
      queue.push(chunk.value);
      pump();
    }
  }

  return { open, stop };
})();
