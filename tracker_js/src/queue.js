// A capped, persistent queue of events not yet acknowledged by the server.
//
// Storage is the source of truth between pages and tabs: before each use the
// queue re-reads it (cheaply: the last raw string is remembered, so only a
// change by another tab costs a parse), so two tabs do not overwrite each
// other's events. Writes are coalesced into one per task, because a burst of
// calls (or an offline visitor with a full queue) would otherwise serialise
// the whole queue once per event. Duplicates between tabs are harmless (the
// server dedupes by messageId); losses are not, so the page owner calls
// persist() on pagehide.
import { lsGet, lsSet } from './storage.js'

export function createQueue(key, cap, get, set) {
  get = get || lsGet
  set = set || lsSet
  let mem = []
  let lastRaw = null
  let timer = 0

  function load() {
    // Unsaved local changes (timer) are the newest state; undefined: storage is unusable.
    const raw = timer ? lastRaw : get(key)
    if (raw !== undefined && raw !== lastRaw) {
      lastRaw = raw
      try {
        mem = JSON.parse(raw)
      } catch (e) {
        mem = 0
      }
      if (!Array.isArray(mem)) mem = []
    }
    return mem
  }

  function persist() {
    clearTimeout(timer)
    timer = 0
    const raw = mem.length ? JSON.stringify(mem) : null
    // If the write fails (quota, disabled storage) remember what storage still
    // holds, so the next load() keeps the in-memory copy instead of it.
    lastRaw = set(key, raw) ? raw : get(key)
  }

  function changed() {
    if (!timer) timer = setTimeout(persist, 0)
  }

  return {
    push(ev) {
      load().push(ev)
      // Drop the oldest: recent behaviour matters more for live decisions.
      if (mem.length > cap) mem.splice(0, mem.length - cap)
      changed()
    },
    all() {
      return load().slice()
    },
    remove(ids) {
      mem = load().filter((e) => !ids.has(e.messageId))
      changed()
    },
    persist,
  }
}
