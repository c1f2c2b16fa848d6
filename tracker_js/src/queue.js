// A capped, persistent queue of events not yet acknowledged by the server.
// It is read from and written to storage on every change (not only at unload)
// so that events survive a crash or a navigation, and so that two tabs of the
// same shop do not overwrite each other's events (duplicates are harmless: the
// server dedupes by messageId, losses are not).
import { lsGet, lsSet } from './storage.js'

export function createQueue(key, cap, get, set) {
  get = get || lsGet
  set = set || lsSet
  let mem = []

  function load() {
    const raw = get(key)
    if (raw === undefined) return mem // storage unusable: keep the memory copy
    try {
      const v = JSON.parse(raw || '[]')
      mem = Array.isArray(v) ? v : []
    } catch (e) {
      mem = []
    }
    return mem
  }

  function save() {
    set(key, mem.length ? JSON.stringify(mem) : null)
  }

  return {
    push(ev) {
      load().push(ev)
      // Drop the oldest: recent behaviour matters more for live decisions.
      if (mem.length > cap) mem.splice(0, mem.length - cap)
      save()
    },
    all() {
      return load().slice()
    },
    remove(ids) {
      mem = load().filter((e) => !ids.has(e.messageId))
      save()
    },
  }
}
