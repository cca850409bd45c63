// Contrast ratios (WCAG) of every badge, the body text and muted text, as the page shows them.
(() => {
  const rgb = (c) => c.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number);
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const probe = document.createElement("span");
  document.body.append(probe);
  const out = {};
  for (const s of ["queued","scheduled","active","retrying","completed","failed","cancelled","unknown","online","offline","lost"]) {
    probe.className = "badge " + s;
    const st = getComputedStyle(probe);
    out[s] = ratio(rgb(st.color), rgb(st.backgroundColor));
  }
  const body = getComputedStyle(document.body);
  out.text = ratio(rgb(body.color), rgb(body.backgroundColor));
  probe.className = "muted";
  out.muted = ratio(rgb(getComputedStyle(probe).color), rgb(body.backgroundColor));
  probe.remove();
  return out;
})
