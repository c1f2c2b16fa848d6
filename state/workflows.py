"""Workflows as data: a trigger, steps (conditions, splits, delays, waits, actions), a goal, a re-entry rule.

Marketers write workflows through the admin API; each is part of the live
configuration (`ActiveConfig.workflows`), versioned with it, and run by the
dataflow for every contact on its live state: a trigger enters the contact
within a second of its cause, a delay ends within a second of its due
time, and every action is decided once (its id derives from the contact,
the workflow, its version, the step and the trigger's occurrence).

Steps form a graph by id: each names the step after it (`next`; none ends
the run); a branch, a split and a wait name their own successors. Times of
day are read in the contact's time zone (trait `timezone`, an IANA name;
`MessagingPolicy.default_timezone` otherwise).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from state.conditions import Condition, EventMatch, Identifier, Points, Seconds

TimeOfDay = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Percent = Annotated[float, msgspec.Meta(gt=0, le=100)]
Channel = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[a-z0-9_-]+$")]


# ---- triggers ------------------------------------------------------------------

class OnEvent(msgspec.Struct, frozen=True, tag="event", tag_field="kind", forbid_unknown_fields=True):
    """The contact does something: an event (by name, with property conditions)."""

    match: EventMatch


class OnSegment(msgspec.Struct, frozen=True, tag="segment", tag_field="kind", forbid_unknown_fields=True):
    """The contact enters (or, with `entered: false`, leaves) a segment."""

    segment: Identifier
    entered: bool = True


class OnScore(msgspec.Struct, frozen=True, tag="score", tag_field="kind", forbid_unknown_fields=True):
    """The score crosses `threshold`, upwards (or downwards, as decay carries it)."""

    threshold: float
    direction: Literal["up", "down"] = "up"


class OnChange(msgspec.Struct, frozen=True, tag="change", tag_field="kind", forbid_unknown_fields=True):
    """The temperature or the stage changes (to one of `to`, when given)."""

    field: Literal["temperature", "stage"]
    to: list[str] = msgspec.field(default_factory=list)


class OnCartIdle(msgspec.Struct, frozen=True, tag="cart_idle", tag_field="kind", forbid_unknown_fields=True):
    """Abandoned cart: a non-empty cart untouched for `idle_s` without a checkout."""

    idle_s: Seconds


class OnInactivity(msgspec.Struct, frozen=True, tag="inactive", tag_field="kind", forbid_unknown_fields=True):
    """No activity for `for_s`: none of `events` (event names; empty means any event)."""

    for_s: Seconds
    events: list[str] = msgspec.field(default_factory=list)


class OnAnniversary(msgspec.Struct, frozen=True, tag="anniversary", tag_field="kind",
                    forbid_unknown_fields=True):
    """A date trait's yearly recurrence (birthday, signed_up_at), at a time of day in the contact's zone."""

    field: str
    at: TimeOfDay = "09:00"


class OnLoyalty(msgspec.Struct, frozen=True, tag="loyalty", tag_field="kind", forbid_unknown_fields=True):
    """The `orders`-th order, or revenue reaching `revenue` (whichever is given; both: either)."""

    orders: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    revenue: Annotated[float, msgspec.Meta(ge=0, le=1e12)] | None = None


class OnManual(msgspec.Struct, frozen=True, tag="manual", tag_field="kind", forbid_unknown_fields=True):
    """Entered through the admin API only (`POST /v1/admin/workflows/{id}/enter`)."""


Trigger = OnEvent | OnSegment | OnScore | OnChange | OnCartIdle | OnInactivity | OnAnniversary | OnLoyalty | OnManual


# ---- steps ---------------------------------------------------------------------

class SendWebhook(msgspec.Struct, frozen=True, tag="webhook", tag_field="kind", forbid_unknown_fields=True):
    """Send a webhook to `endpoint` (configured under `/v1/admin/webhooks`), counted under `channel`."""

    id: Identifier
    endpoint: Identifier
    channel: Channel = "crm"
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    next: Identifier | None = None


class SendEmail(msgspec.Struct, frozen=True, tag="email", tag_field="kind", forbid_unknown_fields=True):
    """Send an e-mail through Attimo's SMTP settings; templates as in `state.templates`."""

    id: Identifier
    subject: str
    text: str
    html: str | None = None
    channel: Channel = "email"
    next: Identifier | None = None


class ChangeTags(msgspec.Struct, frozen=True, tag="tag", tag_field="kind", forbid_unknown_fields=True):
    """Add and remove tags."""

    id: Identifier
    add: list[str] = msgspec.field(default_factory=list)
    remove: list[str] = msgspec.field(default_factory=list)
    next: Identifier | None = None


class ChangeList(msgspec.Struct, frozen=True, tag="list", tag_field="kind", forbid_unknown_fields=True):
    """Put the contact on a list, or take it off."""

    id: Identifier
    list_id: Identifier
    member: bool = True
    next: Identifier | None = None


class ChangeScore(msgspec.Struct, frozen=True, tag="score", tag_field="kind", forbid_unknown_fields=True):
    """Add points (negative to take away) to a score group."""

    id: Identifier
    points: Points
    group: str = "default"
    next: Identifier | None = None


class SetTrait(msgspec.Struct, frozen=True, tag="trait", tag_field="kind", forbid_unknown_fields=True):
    """Set a trait on the contact."""

    id: Identifier
    name: str
    value: Any = None
    next: Identifier | None = None


class EnterWorkflow(msgspec.Struct, frozen=True, tag="enter", tag_field="kind", forbid_unknown_fields=True):
    """Enter the contact into another workflow (its re-entry rule applies)."""

    id: Identifier
    workflow: Identifier
    next: Identifier | None = None


class Branch(msgspec.Struct, frozen=True, tag="branch", tag_field="kind", forbid_unknown_fields=True):
    """Go to `then` when `when` holds on the live state, else to `otherwise` (none ends the run)."""

    id: Identifier
    when: Condition
    then: Identifier | None = None
    otherwise: Identifier | None = None


class SplitArm(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One arm of an A/B/n split: its share and where it goes."""

    name: Identifier
    percent: Percent
    next: Identifier | None = None


class Split(msgspec.Struct, frozen=True, tag="split", tag_field="kind", forbid_unknown_fields=True):
    """A/B/n: each contact goes to one arm, deterministically (the same contact, the same arm)."""

    id: Identifier
    arms: list[SplitArm]


class Delay(msgspec.Struct, frozen=True, tag="delay", tag_field="kind", forbid_unknown_fields=True):
    """Wait: `seconds`, or until the next `until` time of day, or until the date in trait `until_trait`."""

    id: Identifier
    seconds: Seconds | None = None
    until: TimeOfDay | None = None
    until_trait: str | None = None
    next: Identifier | None = None


class WaitFor(msgspec.Struct, frozen=True, tag="wait", tag_field="kind", forbid_unknown_fields=True):
    """Wait for an event or a segment change, at most `timeout_s`; both outcomes continue."""

    id: Identifier
    timeout_s: Seconds
    event: EventMatch | None = None
    segment: Identifier | None = None
    entered: bool = True
    then: Identifier | None = None
    timeout: Identifier | None = None


class End(msgspec.Struct, frozen=True, tag="end", tag_field="kind", forbid_unknown_fields=True):
    """End the run here."""

    id: Identifier


Step = (SendWebhook | SendEmail | ChangeTags | ChangeList | ChangeScore | SetTrait | EnterWorkflow | Branch
        | Split | Delay | WaitFor | End)
ActionStep = SendWebhook | SendEmail


# ---- goals, workflows, messaging -------------------------------------------------

class Goal(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What ends a run as converted, the moment it happens: an event, leaving a segment, or a condition."""

    event: EventMatch | None = None
    left_segment: Identifier | None = None
    when: Condition | None = None


class Workflow(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A workflow: trigger → steps → goal; `version` counts its edits (set by the admin API)."""

    id: Identifier
    trigger: Trigger
    steps: list[Step]
    name: str = ""
    enabled: bool = True
    goal: Goal | None = None
    reentry: Literal["never", "cooldown", "always"] = "never"
    cooldown_s: Seconds = 0.0
    # Contacts inside an older version move to this one at their next step (at the same step id).
    migrate: bool = False
    version: int = 1

    @property
    def start(self) -> str:
        """The first step's id."""
        return self.steps[0].id


class QuietHours(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Messages due between `start` and `end` (contact's time zone) wait for `end`."""

    start: TimeOfDay = "21:00"
    end: TimeOfDay = "08:00"


class SharedCap(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """At most `max_touches` touches of a contact per rolling `window_s`, counted across `channels`.

    A touch is a workflow message (by its channel) or a popup impression
    (channel `popup`); an empty `channels` counts every channel. So one cap
    keeps a contact from getting a popup and an e-mail within the same hour.
    """

    window_s: Seconds
    max_touches: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    channels: Annotated[list[Channel], msgspec.Meta(max_length=50)] = msgspec.field(default_factory=list)

    def counts(self, channel: str) -> bool:
        """Whether a touch of `channel` counts against this cap."""
        return not self.channels or channel in self.channels


class MessagingPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The frequency caps per contact (across all workflows and popups), quiet hours, a default time zone.

    `caps` maps a channel to a rolling window: at most one message of that
    channel per window (Klaviyo's Smart Sending: e-mail 16 h, SMS 24 h);
    channel `popup` caps popup impressions across campaigns. `shared_cap`
    counts popups and messages together. A message over a cap is not sent
    and is recorded as held; a popup over a cap is not offered.
    """

    caps: dict[str, Seconds] = msgspec.field(default_factory=lambda: {"email": 16 * 3600.0, "sms": 24 * 3600.0})
    shared_cap: SharedCap | None = None
    quiet_hours: QuietHours | None = msgspec.field(default_factory=QuietHours)
    quiet_channels: list[str] = msgspec.field(default_factory=lambda: ["email", "sms", "push"])
    default_timezone: str = "UTC"
