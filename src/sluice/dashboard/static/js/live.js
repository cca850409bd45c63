// The live stream: the browser's own EventSource (cookie auth; it parses the stream, reconnects
// and sends Last-Event-ID itself). When the browser gives up on a stream (a 503 while a server
// restarts, say), a new one resumes after the last id seen (?last_event_id=), so nothing is
// missed. Events reach the page in batches, at most a few times a second.
const FLUSH_MS = 250;
const RETRY_MS = [1000, 2000, 5000, 10000];

export class Live {
  constructor(indicator, onBatch) {
    this.indicator = indicator;
    this.onBatch = onBatch;
    this.source = null;
    this.lastId = null;
    this.pending = [];
    this.timer = null;
    this.paused = false;
    this.failures = 0;
    this.retryTimer = null;
    this.wasDown = false;
    this.onReset = () => {};
    indicator.addEventListener("click", () => (this.paused ? this.resume() : this.pause()));
  }

  show(state, text) {
    this.indicator.dataset.state = state;
    this.indicator.textContent = text;
    this.indicator.title = state === "paused" ? "Paused: click to resume live updates"
      : "Live updates: click to pause";
  }

  start() {
    clearTimeout(this.retryTimer);
    if (this.source) this.source.close();
    const url = this.lastId == null ? "/api/events/stream"
      : `/api/events/stream?last_event_id=${encodeURIComponent(this.lastId)}`;
    const source = new EventSource(url, { withCredentials: true });
    this.source = source;
    this.show("reconnecting", "connecting");
    source.onopen = () => {
      this.failures = 0;
      this.show("live", "live");
      if (this.wasDown) { this.wasDown = false; this.onReset(); }  // what is not in the log
    };
    source.onmessage = (e) => {
      if (e.lastEventId) this.lastId = e.lastEventId;
      try { this.push(JSON.parse(e.data)); } catch (err) { /* not an event: skip it */ }
    };
    source.addEventListener("reset", (e) => {
      if (e.lastEventId) this.lastId = e.lastEventId;
      this.onReset();
    });
    source.onerror = () => {
      if (this.source !== source) return;
      this.wasDown = true;
      this.show("reconnecting", "reconnecting");
      if (source.readyState === EventSource.CLOSED) this.retry();
    };
  }

  retry() {
    const wait = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)];
    this.failures += 1;
    this.retryTimer = setTimeout(async () => {
      try {  // a lost session ends here: the sign-in page, not an endless retry
        const r = await fetch("/api/session", { credentials: "same-origin", cache: "no-store" });
        if (r.status === 401) { location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`); return; }
      } catch (e) { /* server down: keep trying */ }
      if (!this.paused) this.start();
    }, wait);
  }

  push(event) {
    this.pending.push(event);
    if (this.pending.length > 5000) this.pending.splice(0, this.pending.length - 5000);
    if (!this.timer) this.timer = setTimeout(() => this.flush(), FLUSH_MS);
  }

  flush() {
    this.timer = null;
    const batch = this.pending;
    this.pending = [];
    if (batch.length && !this.paused) this.onBatch(batch);
  }

  pause() {
    this.paused = true;
    clearTimeout(this.retryTimer);
    if (this.source) { this.source.close(); this.source = null; }
    this.pending = [];
    this.show("paused", "paused");
  }

  resume() {
    this.paused = false;
    this.start();  // from the last id seen: the events of the pause arrive now
  }
}
