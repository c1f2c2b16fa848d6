"""One product shard: the co-occurrence model, the catalog copy, and what is owed to Redis.

Items change the shard at once (`apply`); documents are written on a
clock (`tick`, every `refresh_s` while something changed), so a burst of
interactions on one product costs one rescoring, not one per event. Each
tick rescores at most `rescore_budget` products: first those changed
(oldest change first), then, with what is left, products not rescored for
`stale_s` (decay and catalog drift move their scores too). A document is
written only when its content changed.

Guarded like the contact shards: an item that does not check out, or a
rescoring that raises, is quarantined (stage `products`) and skipped; the
stage goes on. Items are checked before anything changes, so a refused one
leaves no trace.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import msgspec
import numpy as np

from dataflows.io.outputs import MetricAdd, Output, Quarantined
from dataflows.recommendations.cards import CatalogCopy, CatalogEntry
from dataflows.recommendations.cooccurrence import Cooccurrence
from dataflows.recommendations.documents import Built, neighbour_doc, trending_doc
from dataflows.recommendations.settings import RecsSettings
from dataflows.recommendations.signals import RELATIONS, Interaction, LearnedWrite, ProductActivity, RecsWrite
from state import keys
from state.catalog import LearnedFields, Product, encode_product
from state.events import CatalogChanged
from state.quarantine import QuarantineRecord, clip, describe

log = logging.getLogger(__name__)

DELETED: Final = -1
"""`written` digest of a document known to be deleted."""
TRENDING_SHARD: Final = 0
"""The shard that writes the trending document (every shard could: each knows every popularity)."""
MAX_PRODUCT_ID: Final = 200

_json: Final = msgspec.json.Encoder()


class _Row(msgspec.Struct, array_like=True):
    product: int
    cols: bytes
    counts: bytes


class _Snapshot(msgspec.Struct, array_like=True):
    shard: int
    ids: list[str]
    marginal: bytes
    baskets: list[float]
    landmark: float | None
    rows: list[list[_Row]]
    catalog: dict[str, CatalogEntry]
    topk: dict[int, list[int]]
    written: dict[int, int]
    trending_digest: int
    dirty: list[int]
    learned: list[str]
    deleted: list[str]
    trending_dirty: bool


_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(_Snapshot)


def _check(interaction: object) -> Interaction:
    """The interaction, if everything in it can be counted; ValueError naming what cannot."""
    if not isinstance(interaction, Interaction):
        raise ValueError(f"not an interaction: {type(interaction).__name__}")
    if interaction.relation not in RELATIONS:
        raise ValueError(f"unknown relation {interaction.relation!r}")
    if not isinstance(interaction.at, int | float) or not math.isfinite(interaction.at):
        raise ValueError(f"interaction time {interaction.at!r} is not a finite number")
    for product in (interaction.product, *interaction.partners):
        if not isinstance(product, str) or not product or len(product) > MAX_PRODUCT_ID:
            raise ValueError(f"product id {product!r} is not 1 to {MAX_PRODUCT_ID} characters")
    if interaction.learned is not None and not isinstance(interaction.learned, LearnedFields):
        raise ValueError("learned product fields of the wrong type")
    return interaction


@dataclass
class _Pending:
    """What the next tick owes besides rescoring: learned fields and deletions of own products."""

    learned: dict[str, None] = field(default_factory=dict)
    deleted: dict[str, None] = field(default_factory=dict)


class ProductShard:
    """The state of one product shard and everything that changes it."""

    def __init__(self, shard: int, settings: RecsSettings, now: Callable[[], float],
                 resume: bytes | None = None) -> None:
        self.settings = settings
        self.now = now
        self.model = Cooccurrence(shard, settings.product_shards, settings)
        self.catalog = CatalogCopy()
        self.topk: dict[int, list[int]] = {}
        self.refs: dict[int, set[int]] = {}
        self.written: dict[int, int] = {}
        self.trending_digest = 0
        self.trending_dirty = False
        self.dirty: dict[int, None] = {}
        self.pending = _Pending()
        self.rescored_at: dict[int, float] = {}
        self._sweep = 0
        self._tick_at = 0.0
        self._quarantined: list[Output] = []
        self.counts: dict[str, int] = {}
        if resume is not None:
            self._restore(_decoder.decode(resume))

    @property
    def shard(self) -> int:
        return self.model.shard

    # ---- items -------------------------------------------------------------------------

    def apply(self, item: ProductActivity | CatalogChanged) -> None:
        """Take one item; one that does not check out is quarantined and changes nothing."""
        try:
            if isinstance(item, ProductActivity):
                checked = [_check(i) for i in item.interactions]
                for interaction in checked:
                    self._observe(interaction)
            elif isinstance(item, CatalogChanged):
                self._catalog(item)
            else:
                raise ValueError(f"unexpected item {type(item).__name__}")
        except Exception as exc:
            self.quarantine(item, exc)

    def _observe(self, interaction: Interaction) -> None:
        for i in self.model.observe(interaction):
            self.dirty[i] = None
        self.trending_dirty = True
        self._count("recs_interactions")
        if interaction.learned is not None:
            self._learn(interaction.product, interaction.learned)

    def _learn(self, product: str, fields: LearnedFields) -> None:
        learned, card = self.catalog.learn(product, fields)
        if learned and self.model.owns(product):
            self.pending.learned[product] = None
        if card:
            self._card_changed(product)

    def _catalog(self, change: CatalogChanged) -> None:
        product_id = change.product_id
        if not isinstance(product_id, str) or not product_id or len(product_id) > MAX_PRODUCT_ID:
            raise ValueError(f"catalog change for product id {product_id!r}")
        if change.product is None:
            changed = self.catalog.delete(product_id)
            if self.model.owns(product_id):
                self.pending.deleted[product_id] = None
                self.pending.learned.pop(product_id, None)
        else:
            product = msgspec.convert(msgspec.to_builtins(change.product), Product)  # checked, whoever wrote it
            if product.id != product_id:
                raise ValueError(f"catalog change for {product_id!r} carries product {product.id!r}")
            changed = self.catalog.upsert(product)
        if changed:
            self._card_changed(product_id)

    def _card_changed(self, product: str) -> None:
        """A product's card or stock changed: rebuild the documents that list it, and its own."""
        i = self.model.index.get(product)
        if i is None:
            return
        for row in self.refs.get(i, ()):
            self.dirty[row] = None
        if self.model.owned[i] and any(i in rows for rows in self.model.rows):
            self.dirty[i] = None
        self.trending_dirty = True

    # ---- time ----------------------------------------------------------------------------

    def due(self) -> float | None:
        """When the next tick should run."""
        pending = self.pending
        if self.dirty or pending.learned or pending.deleted or (self.trending_dirty and self.shard == TRENDING_SHARD):
            return self._tick_at
        if self.rescored_at:
            return self._tick_at + max(self.settings.refresh_s, self.settings.stale_s / 8)
        return None

    def tick(self) -> list[Output]:
        """Write what changed: learned fields, deletions, rescored documents, trending."""
        now = self.now()
        self._tick_at = now + self.settings.refresh_s
        out: list[Output] = []
        out += self._flush_pending()
        budget = self.settings.rescore_budget
        rows = list(self.dirty)[:budget]
        for i in rows:
            del self.dirty[i]
        rows += self._stale(now, budget - len(rows))
        written = 0
        for i in rows:
            try:
                write = self._rescore(i, now)
            except Exception as exc:
                self.quarantine(f"rescoring {self.model.ids[i]!r}", exc)
                continue
            if write is not None:
                out.append(write)
                written += 1
        if self.trending_dirty and self.shard == TRENDING_SHARD:
            self.trending_dirty = False
            try:
                out += self._trending(now)
            except Exception as exc:
                self.quarantine("trending", exc)
        if written:
            self._count("recs_documents_written", written)
        return out + self.drain()

    def _flush_pending(self) -> list[Output]:
        out: list[Output] = []
        for product in self.pending.deleted:
            out.append(LearnedWrite(product, None))
            i = self.model.index.get(product)
            if i is not None and self.written.get(i, DELETED) != DELETED:
                self.written[i] = DELETED
                out.append(RecsWrite(keys.product_neighbours(product), None))
        for product in self.pending.learned:
            learned = self.catalog.learned(product)
            if learned is not None:
                out.append(LearnedWrite(product, encode_product(learned)))
        self.pending = _Pending()
        return out

    def _stale(self, now: float, budget: int) -> list[int]:
        """Up to `budget` own products not rescored for `stale_s` (a bounded round-robin scan)."""
        if budget <= 0 or not self.rescored_at:
            return []
        order = list(self.rescored_at)
        horizon = now - self.settings.stale_s
        picked: list[int] = []
        for _ in range(min(len(order), 4 * budget)):
            self._sweep %= len(order)
            i = order[self._sweep]
            self._sweep += 1
            if self.rescored_at[i] <= horizon and i not in self.dirty:
                picked.append(i)
                if len(picked) >= budget:
                    break
        return picked

    def _rescore(self, i: int, now: float) -> RecsWrite | None:
        """Recompute product i's neighbours; its document when that changed."""
        model = self.model
        product = model.ids[i]
        self.rescored_at[i] = now
        entry = self.catalog.entries.get(product)
        built = Built(product) if entry is not None and entry.deleted else neighbour_doc(model, self.catalog, i, now)
        self._set_refs(i, built.refs)
        content = built.encode(0.0)
        if content is None:
            if self.written.get(i, DELETED) == DELETED:
                return None
            self.written[i] = DELETED
            return RecsWrite(keys.product_neighbours(product), None)
        digest = zlib.crc32(content)
        if self.written.get(i) == digest:
            return None
        self.written[i] = digest
        return RecsWrite(keys.product_neighbours(product), built.encode(round(now, 3)))

    def _set_refs(self, i: int, refs: set[int]) -> None:
        old = set(self.topk.get(i, ()))
        for j in old - refs:
            holders = self.refs.get(j)
            if holders is not None:
                holders.discard(i)
                if not holders:
                    del self.refs[j]
        for j in refs - old:
            self.refs.setdefault(j, set()).add(i)
        self.topk[i] = sorted(refs)

    def _trending(self, now: float) -> list[Output]:
        chosen = trending_doc(self.model, self.catalog)
        digest = zlib.crc32(chosen.encode(0.0))
        if digest == self.trending_digest:
            return []
        self.trending_digest = digest
        return [RecsWrite(keys.trending(), chosen.encode(round(now, 3)))]

    # ---- quarantine and metrics --------------------------------------------------------

    def quarantine(self, what: object, exc: BaseException) -> None:
        """Keep what could not be taken for operators; the stage goes on."""
        payload = what if isinstance(what, str) else _payload(what)
        digest = f"{zlib.crc32(payload.encode()):08x}"
        record = QuarantineRecord(id=f"products:{self.shard}:{digest}", at=self.now(), stage="products",
                                  error=describe(exc), payload=clip(payload))
        log.error("quarantined", extra={"id": record.id, "stage": "products", "error": record.error})
        self._quarantined.append(Quarantined(record))

    def _count(self, name: str, amount: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + amount

    def drain(self) -> list[Output]:
        """Quarantine records and counters gathered since the last drain."""
        out: list[Output] = self._quarantined
        self._quarantined = []
        out += [MetricAdd(name, amount) for name, amount in self.counts.items()]
        self.counts.clear()
        return out

    # ---- snapshots -----------------------------------------------------------------------

    def encode(self) -> bytes:
        """The shard's snapshot (committed by Bytewax with the stream positions)."""
        model = self.model
        n = len(model.ids)
        rows = [[_Row(i, np.fromiter(row.keys(), np.int64, len(row)).tobytes(),
                      np.fromiter(row.values(), np.float64, len(row)).tobytes())
                 for i, row in relation_rows.items()] for relation_rows in model.rows]
        return _encoder.encode(_Snapshot(
            shard=model.shard, ids=model.ids, marginal=np.ascontiguousarray(model.marginal[:, :n]).tobytes(),
            baskets=model.baskets.tolist(), landmark=model.landmark, rows=rows, catalog=self.catalog.entries,
            topk=self.topk, written=self.written, trending_digest=self.trending_digest, dirty=list(self.dirty),
            learned=list(self.pending.learned), deleted=list(self.pending.deleted),
            trending_dirty=self.trending_dirty))

    def _restore(self, snap: _Snapshot) -> None:
        model = self.model = Cooccurrence(snap.shard, self.settings.product_shards, self.settings)
        for product in snap.ids:
            model.intern(product)
        n = len(snap.ids)
        if n:
            model.marginal[:, :n] = np.frombuffer(snap.marginal, np.float64).reshape(len(RELATIONS), n)
        model.baskets = np.array(snap.baskets, dtype=np.float64)
        model.landmark = snap.landmark
        for relation, rows in enumerate(snap.rows):
            model.rows[relation] = {
                r.product: dict(zip(np.frombuffer(r.cols, np.int64).tolist(),
                                    np.frombuffer(r.counts, np.float64).tolist(), strict=True))
                for r in rows}
        self.catalog = CatalogCopy(dict(snap.catalog))
        for i, refs in snap.topk.items():
            self._set_refs(i, set(refs))
        self.written = dict(snap.written)
        self.trending_digest = snap.trending_digest
        self.dirty = dict.fromkeys(snap.dirty)
        self.pending = _Pending(dict.fromkeys(snap.learned), dict.fromkeys(snap.deleted))
        self.trending_dirty = snap.trending_dirty
        # Rescored before the crash, but when is not kept: all count as stale, swept gradually.
        self.rescored_at = dict.fromkeys(model.own_rows(), 0.0)


def _payload(item: object) -> str:
    try:
        return _json.encode(item).decode()
    except (TypeError, ValueError):
        return repr(item)
