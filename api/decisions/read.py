"""Everything one decisions answer needs, read in one Redis round trip.

`GET /v1/decisions/{id}` runs on every page view, and the gateway composes
the same answer for every push, so the read is one Lua script (`EVALSHA`):
it resolves the id (the contact's own id, or an alias: user id, e-mail in
any case, a merged anonymous id), reads the contact's `DecisionDoc`, takes
the product ids its strips grow from out of the document's seeds, and reads
those products' neighbour lists plus the trending list with one `MGET`.
A pipelined `MGET` cannot do it: which neighbour lists to read depends on
the document, so the keys are not known up front. Which documents are read
is `state.recommendations.read_ids` (the product on screen, then the first
`SEED_LIMITS` of each seed list, at most `MAX_ANCHORS`), done in Lua.

The products' documents are shared by every visitor: a caller that keeps
them for a moment names its sorted set of those it holds (`held_key`, see
`api.decisions.reader`) and the script sends only the others — each skipped
one answered `HELD` — so a read still takes one round trip and moves little
more than the contact's own document.

The script's key names come from `state.keys` (the script text is built
from them at import), so `keys.py` stays the only place that spells a key.
It reads keys it was not given in `KEYS`, which a single Redis (or a
replica) allows; on a Redis Cluster the contact's document and the products'
lists live on different nodes and the read would have to be split.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import msgspec

from state import keys
from state.decision_store import KNOWN_MARK
from state.decisions import Seeds
from state.recommendations import MAX_ANCHORS, SEED_LIMITS, NeighbourDocument, TrendingDocument

SeedLimits = Sequence[tuple[str, int]]
"""Which seed lists name neighbour documents to read, most recent first, and how many of each."""

def _split(build: Callable[[str], str]) -> tuple[str, str]:
    """A key function's text before and after the id (the key is prefix .. id .. suffix)."""
    marker = "\x00"
    before, after = build(marker).split(marker)
    return before, after


def _lua(text: str) -> str:
    """A Lua string literal for `text` (key prefixes are plain ASCII without quotes or backslashes)."""
    if any(c in text for c in "'\\\n") or not text.isascii():
        raise ValueError(f"key fragment {text!r} cannot be inlined in the read script")
    return f"'{text}'"


def _script() -> str:
    doc_p, doc_s = _split(keys.decision_doc)
    alias_p, alias_s = _split(keys.contact_alias)
    recs_p, recs_s = _split(keys.product_neighbours)
    return f"""
local function doc_of(id) return redis.call('GET', {_lua(doc_p)} .. id .. {_lua(doc_s)}) end
local id, lowered, product = ARGV[1], ARGV[2], ARGV[3]
local function owner_of(any) return redis.call('GET', {_lua(alias_p)} .. any .. {_lua(alias_s)}) end
local function decoded(raw)
  local ok, parsed = pcall(cjson.decode, raw)
  if ok and type(parsed) == 'table' then return parsed end
  return nil
end
local doc = doc_of(id)
local parsed = nil  -- the document decoded, once
if not doc then
  local owner = owner_of(id)
  if not owner and lowered ~= '' then owner = owner_of(lowered) end
  if owner then doc = doc_of(owner) end
elseif string.find(doc, {_lua(KNOWN_MARK)}, 1, true) then
  -- A known contact's document under an anonymous id: the id may have signed in as another user
  -- since (a shared device); its alias names the contact it is now, whose document is the answer.
  local owner = owner_of(id)
  if owner then
    parsed = decoded(doc)
    if not parsed or parsed.contact_id ~= owner then doc, parsed = doc_of(owner), nil end
  end
end
local ids, seen = {{}}, {{}}
local function want(p)
  if type(p) == 'string' and p ~= '' and not seen[p] and #ids < {MAX_ANCHORS} then
    seen[p] = true
    ids[#ids + 1] = p
  end
end
want(product)
if doc then
  parsed = parsed or decoded(doc)
  if parsed and type(parsed.seeds) == 'table' then
    for i = 6, #ARGV, 2 do
      local list, limit = parsed.seeds[ARGV[i]], tonumber(ARGV[i + 1])
      if type(list) == 'table' then
        for j = 1, math.min(#list, limit) do want(list[j]) end
      end
    end
  end
end
-- The products' documents: trending ('' below) first, then the products'. One the caller holds
-- fresh (its `held` sorted set scores the member past `now`) is answered 1 and not sent.
local held, now = ARGV[4], tonumber(ARGV[5])
local members = {{''}}
for i = 1, #ids do members[i + 1] = ids[i] end
-- One ZMSCORE for all (Redis >= 6.2); an older Redis refuses it and gets one ZSCORE each.
local scores = {{}}
if held ~= '' then
  local ok, found = pcall(redis.call, 'ZMSCORE', held, unpack(members))
  if ok then
    scores = found
  else
    for i = 1, #members do scores[i] = redis.call('ZSCORE', held, members[i]) end
  end
end
local out, names, slots = {{}}, {{}}, {{}}
for i = 1, #members do
  local score = scores[i]
  if score and tonumber(score) > now then
    out[i] = 1
  else
    out[i] = false
    names[#names + 1] = members[i] == '' and {_lua(keys.trending())} or {_lua(recs_p)} .. members[i] .. {_lua(recs_s)}
    slots[#slots + 1] = i
  end
end
if #names > 0 then
  local got = redis.call('MGET', unpack(names))
  for j = 1, #slots do out[slots[j]] = got[j] end
end
return {{doc or false, ids, out}}
"""


SCRIPT: Final = _script()


def script_args(any_id: str, product: str | None, held_key: str = "", now_ms: int = 0,
                limits: SeedLimits = SEED_LIMITS) -> list[str]:
    """The script's ARGV for an id (and the product on screen, if any).

    `held_key` names the caller's sorted set of the products' documents it
    holds fresh (member: product id, '' for trending; score: until when, in
    ms, compared with `now_ms`); those are not sent again. '' reads them all.
    """
    lowered = any_id.lower() if "@" in any_id and any_id.lower() != any_id else ""
    tail = _SEED_LIMIT_ARGS if limits is SEED_LIMITS else [str(x) for pair in limits for x in pair]
    return [any_id, lowered, product or "", held_key, str(now_ms), *tail]


_SEED_LIMIT_ARGS: Final = tuple(str(x) for pair in SEED_LIMITS for x in pair)
"""`script_args`' tail for the usual limits (every read sends them)."""


class DocView(msgspec.Struct, frozen=True):
    """A stored `DecisionDoc` as the read path needs it: popups and public fields stay the JSON written.

    The dataflow validated them when it built the document; decoding them
    again (URL patterns and all) on every page view would only re-encode them.
    """

    contact_id: str
    user_id: str | None = None
    popups: msgspec.Raw = msgspec.Raw(b"[]")
    seeds: Seeds = msgspec.field(default_factory=Seeds)
    public: msgspec.Raw = msgspec.Raw(b"{}")


_doc_view: Final = msgspec.json.Decoder(DocView)


HELD: Final = 1
"""A product's document the caller holds fresh, so the script did not send it."""
TRENDING: Final = ""
"""The member that stands for the trending document in a held set."""

Fetched = bytes | None | int
"""One of the script's products' documents: its bytes, None when absent, `HELD` when not sent."""


@dataclass(frozen=True, slots=True)
class ScriptReply:
    """The script's reply: the document (None: a visitor with no state), the products read, their documents."""

    doc: DocView | None
    products: list[str]
    trending: Fetched
    neighbours: list[Fetched]


def parse_reply(reply: Sequence[object]) -> ScriptReply:
    """The script's reply `[doc or nil, product ids, [trending, documents…]]`.

    A document that does not decode is treated as missing (the visitor gets
    the answer of a new visitor) rather than failing every page view.
    """
    raw_doc, ids, found = reply
    assert isinstance(ids, list) and isinstance(found, list)
    doc: DocView | None = None
    if isinstance(raw_doc, bytes):
        try:
            doc = _doc_view.decode(raw_doc)
        except msgspec.DecodeError:
            doc = None
    products = [pid.decode() if isinstance(pid, bytes) else str(pid) for pid in ids]
    return ScriptReply(doc, products, _fetched(found[0]), [_fetched(v) for v in found[1:]])


def _fetched(value: object) -> Fetched:
    return value if isinstance(value, bytes | int) else None


@dataclass(frozen=True, slots=True)
class DecisionRead:
    """What an answer is composed from: the document and the products' documents (missing ones left out).

    A product's document is its bytes as read, or the view a reader holding
    it decoded once (`state.recommendations.NeighbourView` / `TrendingView`).
    """

    doc: DocView | None
    neighbours: Mapping[str, NeighbourDocument] = field(default_factory=dict)
    trending: TrendingDocument | None = None
