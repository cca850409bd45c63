// The tasks search box: free text plus field:value terms, to and from the list endpoint's
// query parameters (state, queue, worker, name, id, q), so the address reproduces the view.
export const FIELDS = ["state", "queue", "worker", "name", "id"];
const LIST = ["state"];  // repeatable: `state:failed state:retrying` or `state:failed,retrying`

function tokens(text) {
  const out = [];
  const re = /(\w+):"([^"]*)"|(\w+):(\S+)|"([^"]*)"|(\S+)/g;
  let m;
  while ((m = re.exec(text))) {
    if (m[1]) out.push([m[1].toLowerCase(), m[2]]);
    else if (m[3]) out.push([m[3].toLowerCase(), m[4]]);
    else out.push([null, m[5] ?? m[6]]);
  }
  return out;
}

// -> {params: URLSearchParams of filters, unknown: [field...]}
export function parse(text) {
  const params = new URLSearchParams();
  const free = [];
  const unknown = [];
  for (const [field, value] of tokens(text)) {
    if (field === null) free.push(value);
    else if (LIST.includes(field)) value.split(",").filter(Boolean).forEach((v) => params.append(field, v.toLowerCase()));
    else if (FIELDS.includes(field)) params.set(field, value);
    else { unknown.push(field); free.push(`${field}:${value}`); }
  }
  if (free.length) params.set("q", free.join(" "));
  return { params, unknown };
}

const quote = (v) => (/\s/.test(v) ? `"${v}"` : v);

export function format(params) {
  const parts = [];
  for (const field of FIELDS) for (const v of params.getAll(field)) parts.push(`${field}:${quote(v)}`);
  const q = params.get("q");
  if (q) parts.push(q);
  return parts.join(" ");
}
