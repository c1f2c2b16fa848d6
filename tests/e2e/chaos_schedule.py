"""A seeded plan for the workflows chaos test: who does what when, what breaks when, and what must arrive.

Everything here is decided from the seed alone, before anything runs, so
the expected deliveries are known independently of what the system did:

- `feed` is the stream of events: many contacts (some known by a user id,
  some anonymous), each browsing, some signing up (now and then twice),
  some starting a trial and some of those buying a plan a moment later;
- `timeline` is the chaos: when the dataflow is killed -9 (and how long it
  stays down), when a dispatcher is killed -9, when the receiver is down;
- `expected_pairs` is what the workflows must make happen, by their
  definition, for the events sent: one (contact id, step id) per action.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final, Literal

SIGNED_UP: Final = "Signed Up"
TRIAL_STARTED: Final = "Trial Started"
PLAN_PURCHASED: Final = "Plan Purchased"
BROWSING: Final = ("Product Viewed", "Products Searched", "Product List Viewed")

# welcome: Signed Up → hello, WELCOME_DELAY_S, tips. trial: Trial Started → offer, TRIAL_DELAY_S, reminder,
# unless Plan Purchased (its goal) comes first.
WELCOME_DELAY_S: Final = 2.0
TRIAL_DELAY_S: Final = 10.0


@dataclass(frozen=True)
class Plan:
    """How big and how rough one run is."""

    contacts: int
    feed_s: float
    dataflow_kills: int
    dispatcher_kills: int
    outages: int
    outage_s: tuple[float, float] = (3.0, 5.0)
    # The dataflow stays down this long after a kill (a supervisor's restart delay).
    dataflow_down_s: tuple[float, float] = (0.0, 1.0)
    # A converter buys this long after starting its trial: well inside the delay whatever a restart costs,
    # and often within what a restart's replay reads in one batch with the trigger (see
    # test_workflow_chaos.TestFoundByChaos).
    goal_after_s: tuple[float, float] = (0.3, 2.0)
    # Kills of the dataflow are at least this far apart, so each incarnation snapshots before it dies.
    dataflow_kill_gap_s: float = 4.0


SHORT: Final = Plan(contacts=600, feed_s=20.0, dataflow_kills=3, dispatcher_kills=4, outages=1)
LONG: Final = Plan(contacts=3000, feed_s=120.0, dataflow_kills=12, dispatcher_kills=16, outages=4)


@dataclass(frozen=True)
class Who:
    """A contact as the tracker names it; `contact_id` is what its actions carry."""

    anonymous_id: str
    user_id: str | None

    @property
    def contact_id(self) -> str:
        """Known contacts are their user id, anonymous visitors their anonymous id."""
        return self.user_id or self.anonymous_id


@dataclass(frozen=True)
class Planned:
    """One event to send `at` seconds after the feed starts."""

    at: float
    who: Who
    name: str


def feed(rng: random.Random, plan: Plan) -> list[Planned]:
    """Every event of the run, in the order to send them (a few per contact per second at most)."""
    events: list[Planned] = []
    last_start = plan.feed_s - plan.goal_after_s[1] - 3.0
    for n in range(plan.contacts):
        who = Who(f"v{n}", f"u{n}" if rng.random() < 0.5 else None)
        at = rng.uniform(0.0, last_start)

        def then(name: str, after: float, who: Who = who) -> None:
            nonlocal at
            at += after
            events.append(Planned(at, who, name))

        for _ in range(rng.randint(1, 3)):
            then(rng.choice(BROWSING), rng.uniform(0.05, 0.5))
        if rng.random() < 0.5:
            then(SIGNED_UP, rng.uniform(0.05, 0.5))
            if rng.random() < 0.2:
                then(SIGNED_UP, rng.uniform(0.05, 1.0))  # sent again: re-entry "never" keeps one run
        if rng.random() < 0.4:
            then(TRIAL_STARTED, rng.uniform(0.05, 0.5))
            if rng.random() < 0.5:
                then(PLAN_PURCHASED, rng.uniform(*plan.goal_after_s))
        then(rng.choice(BROWSING), rng.uniform(0.05, 0.5))
    return sorted(events, key=lambda e: e.at)


def expected_pairs(events: list[Planned]) -> set[tuple[str, str]]:
    """The (contact id, step id) of every action the two workflows must decide for these events.

    welcome: a contact that signed up gets `hello` and, after the delay, `tips`.
    trial: a contact that started a trial gets `offer`, and `reminder` unless it bought a
    plan after starting (each purchase comes well before the delay ends; see `Plan.goal_after_s`).
    Re-entry is "never": a second trigger changes nothing.
    """
    pairs: set[tuple[str, str]] = set()
    started: set[str] = set()
    converted: set[str] = set()
    for event in events:
        contact = event.who.contact_id
        if event.name == SIGNED_UP:
            pairs |= {(contact, "hello"), (contact, "tips")}
        elif event.name == TRIAL_STARTED:
            started.add(contact)
        elif event.name == PLAN_PURCHASED and contact in started:
            converted.add(contact)
    pairs |= {(contact, "offer") for contact in started}
    pairs |= {(contact, "reminder") for contact in started - converted}
    return pairs


Chaos = Literal["kill dataflow", "start dataflow", "kill dispatcher", "receiver down", "receiver up"]


@dataclass(frozen=True)
class Blow:
    """One chaos step `at` seconds after the feed starts (`victim`: which dispatcher)."""

    at: float
    what: Chaos
    victim: int = 0


def timeline(rng: random.Random, plan: Plan, dispatchers: int) -> list[Blow]:
    """The chaos of one run: kills spread over the feed and a little after it, outages during it."""
    blows: list[Blow] = []
    slot = (plan.feed_s - 2.0) / plan.dataflow_kills
    for n in range(plan.dataflow_kills):  # one per slot, far enough apart to snapshot in between
        at = 2.0 + n * slot + rng.uniform(0.0, max(0.0, slot - plan.dataflow_kill_gap_s))
        blows += [Blow(at, "kill dataflow"), Blow(at + rng.uniform(*plan.dataflow_down_s), "start dataflow")]
    for _ in range(plan.dispatcher_kills):
        blows.append(Blow(rng.uniform(2.0, plan.feed_s + TRIAL_DELAY_S), "kill dispatcher",
                          victim=rng.randrange(dispatchers)))
    slot = (plan.feed_s - 4.0) / plan.outages
    for n in range(plan.outages):
        down_for = rng.uniform(*plan.outage_s)
        at = 2.0 + n * slot + rng.uniform(0.0, max(0.0, slot - down_for - 1.0))
        blows += [Blow(at, "receiver down"), Blow(at + down_for, "receiver up")]
    return sorted(blows, key=lambda b: b.at)
