"""A seeded synthetic shop with planted structure, for judging recommendations without a data set.

No public session data set installs here, so sessions are generated with a
structure a recommender can find and a popularity baseline cannot:

- products in categories, with Zipf popularity (a few best sellers, a long tail);
- each product has *similar* products (its category; shoppers compare them)
  and *complements* (other categories; bought with it);
- a session starts at a popular product and walks: mostly to a similar
  product of the one on screen, sometimes to a complement, sometimes
  anywhere (noise, drawn by popularity); no product twice in a session;
- a few viewed products are added to the cart, with their complements; some
  carts are ordered.

Sessions are spread over `days` in time order; the last `test_share` of
them is held out. Some products launch only in the test period (as a shop
adds products): a model rebuilt before it cannot know them.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass, field

DAY = 86_400.0
T0 = 1_800_000_000.0


@dataclass(frozen=True)
class WorldSize:
    """How big the shop and its history are."""

    products: int
    categories: int
    sessions: int
    days: float = 14.0
    test_share: float = 0.2
    new_share: float = 0.05


@dataclass(frozen=True)
class Product:
    """A product of the synthetic shop."""

    id: str
    category: str
    price: float


@dataclass
class Session:
    """One visit: products viewed in order (with times), added, and whether the cart was ordered."""

    contact: str
    start: float
    views: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    ordered: bool = False

    def view_time(self, k: int) -> float:
        return self.start + 30.0 * k


@dataclass
class World:
    """The shop, every session in time order, and where the held-out part starts."""

    products: list[Product]
    sessions: list[Session]
    test_from: int
    new_products: set[str]

    @property
    def train(self) -> list[Session]:
        return self.sessions[:self.test_from]

    @property
    def test(self) -> list[Session]:
        return self.sessions[self.test_from:]


def build_world(size: WorldSize, seed: int) -> World:
    """The shop and its sessions for this seed."""
    rng = random.Random(seed)
    categories = [f"cat{c:02d}" for c in range(size.categories)]
    products = [Product(f"p{i:05d}", categories[rng.randrange(size.categories)],
                        round(rng.lognormvariate(3.0, 0.7), 2)) for i in range(size.products)]
    by_category: dict[str, list[int]] = {}
    for i, p in enumerate(products):
        by_category.setdefault(p.category, []).append(i)
    similar = [rng.sample([j for j in by_category[p.category] if j != i], min(6, len(by_category[p.category]) - 1))
               for i, p in enumerate(products)]
    complements = [[rng.randrange(size.products) for _ in range(3)] for _ in products]
    order = list(range(size.products))
    rng.shuffle(order)  # popularity rank independent of category and id
    weights = [0.0] * size.products
    for rank, i in enumerate(order):
        weights[i] = 1.0 / (rank + 1) ** 1.0
    new = set(rng.sample(range(size.products), int(size.new_share * size.products)))
    test_from = int(size.sessions * (1 - size.test_share))
    launch = T0 + size.days * DAY * (1 - size.test_share)

    def cumulative(available: list[int]) -> tuple[list[int], list[float]]:
        return available, list(itertools.accumulate(weights[i] for i in available))

    old_pool = cumulative([i for i in range(size.products) if i not in new])
    all_pool = cumulative(list(range(size.products)))

    sessions: list[Session] = []
    for n in range(size.sessions):
        start = T0 + size.days * DAY * n / size.sessions
        pool = all_pool if start >= launch else old_pool
        allowed = (lambda j: True) if start >= launch else (lambda j: j not in new)

        def popular(pool: tuple[list[int], list[float]] = pool) -> int:
            ids, acc = pool
            return ids[bisect.bisect_left(acc, rng.random() * acc[-1])]

        session = Session(f"s{n:06d}", start)
        current = popular()
        seen = {current}
        session.views.append(products[current].id)
        length = 2 + min(13, int(rng.expovariate(1 / 3.0)))
        for _ in range(length - 1):
            nxt = current
            for _ in range(5):
                r = rng.random()
                if r < 0.6 and similar[current]:
                    nxt = similar[current][min(len(similar[current]) - 1, int(rng.expovariate(1 / 1.5)))]
                elif r < 0.8:
                    nxt = rng.choice(complements[current])
                else:
                    nxt = popular()
                if nxt not in seen and allowed(nxt):
                    break
            if nxt in seen or not allowed(nxt):
                break
            seen.add(nxt)
            session.views.append(products[nxt].id)
            current = nxt
        for pid in session.views:
            if rng.random() < 0.15:
                session.added.append(pid)
                i = int(pid[1:])
                complement = complements[i][0]
                if rng.random() < 0.5 and allowed(complement) and products[complement].id not in session.added:
                    session.added.append(products[complement].id)
        session.ordered = bool(session.added) and rng.random() < 0.5
        sessions.append(session)
    return World(products, sessions, test_from, {products[i].id for i in new})
