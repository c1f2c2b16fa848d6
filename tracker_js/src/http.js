// The HTTP fallback for networks that block websockets: one batch per
// `POST ${api}/v1/batch`, answered the way the gateway acks a frame.
//
// The body is text/plain JSON with the write key inside (`writeKey`, as the
// ingest accepts it from a browser): a "simple" request, so no CORS
// preflight, and `keepalive` lets it finish after the page is gone (the
// browser caps keepalive bodies at 64 KB; index.js keeps batches under that).
// Resolves to what index.js needs:
//   {rejected: [...]}  stored, except these (400 with per-event errors: the body itself)
//   {error}            the whole batch refused (400 / 413): resending would fail again
//   {refused: status}  401 / 403: the key or origin is refused
//   {retry: 1}         not stored (network error, CORS, 429, 5xx): send again after a backoff
import { iso } from './util.js'

export function postBatch(api, writeKey, batch) {
  return fetch(api + '/v1/batch', {
    method: 'POST',
    body: JSON.stringify({ batch, writeKey, sentAt: iso() }),
    keepalive: true,
    credentials: 'omit',
  }).then(
    (r) => {
      const s = r.status
      if (s < 300) return { rejected: [] }
      if (s === 401 || s === 403) return { refused: s }
      if (s === 400 || s === 413) return r.json().then((b) => (b.rejected ? b : { error: b.error || s })).catch(() => ({ error: s }))
      return { retry: 1 }
    },
    () => ({ retry: 1 })
  )
}
