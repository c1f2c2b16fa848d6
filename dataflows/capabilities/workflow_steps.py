"""Running a contact through a workflow's steps, at one instant.

`advance` executes a run's steps until it must wait (a delay, a wait-for, a
message due in quiet hours) or ends. Actions leave as `ActionOut`s with ids
derived from (contact, workflow, version, occurrence, hop, step), so the
replay after a crash decides the same ids; changes to the contact's own
state (tags, lists, score, traits) are made in place. Every step reached,
action sent or held, branch taken and run ended is counted exactly
(`Tally`, summed per workflow by the API).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time
from typing import TYPE_CHECKING, Any, Final

import msgspec
import xxhash

from dataflows.capabilities.cart import CartState
from dataflows.capabilities.messaging import contact_zone, next_time_of_day, quiet_until
from dataflows.capabilities.scoring import add_points
from dataflows.capabilities.tags import TagState, add_value, remove_value
from dataflows.capabilities.touches import Touches, cap_reason, record_touch
from dataflows.capabilities.traits import Traits, set_traits
from dataflows.capabilities.windows import ActivityLog, viewed_products
from dataflows.capabilities.workflow_state import Flows, LogEntry, Run
from dataflows.io.outputs import ActionOut, Output, Tally
from dataflows.rules.conditions import evaluate_condition, parse_date
from state import keys
from state.actions import Action, ActionContact, ProductInterest
from state.templates import TemplateError, render_email
from state.workflows import (
    Branch,
    ChangeList,
    ChangeScore,
    ChangeTags,
    Delay,
    End,
    EnterWorkflow,
    SendEmail,
    SendWebhook,
    SetTrait,
    Split,
    Step,
    WaitFor,
    Workflow,
)

if TYPE_CHECKING:
    from dataflows.capabilities.view import StateView

class _Wait:
    """What a step returns when the run must wait (a delay, a wait-for, quiet hours)."""


_WAIT: Final = _Wait()
Next = str | _Wait | None
"""A step's result: the next step's id, `_WAIT`, or None (the run ends)."""

MAX_HOPS_PER_INSTANT: Final = 64
"""Steps one run may take at one instant: a bound, whatever a configuration does."""
VIEWED_PRODUCTS: Final = 5
"""How many of the contact's most viewed products an action carries."""

Enter = Callable[[str, str, dict[str, Any] | None], None]
"""Asks for an entry into another workflow: (workflow id, marker)."""


def action_id(contact_id: str, run: Run, step_id: str) -> str:
    """The action's id: the same whenever the same run reaches the same step at the same hop."""
    key = f"{contact_id}|{run.workflow}|{run.version}|{run.occurrence}|{run.hops}|{step_id}"
    return "act_" + xxhash.xxh3_128_hexdigest(key.encode())


def split_arm(contact_id: str, workflow: Workflow, step: Split) -> str | None:
    """The arm a contact takes: by a hash of (contact, workflow, step), so it never changes."""
    point = xxhash.xxh3_64_intdigest(f"{contact_id}|{workflow.id}|{step.id}".encode()) % 1_000_000 / 10_000
    total = 0.0
    for arm in step.arms:
        total += arm.percent
        if point < total:
            return arm.name
    return step.arms[-1].name


class Runner:
    """Advances one contact's runs at `view.now`, collecting outputs."""

    def __init__(self, part: Flows, view: StateView, enter: Enter) -> None:
        self.part = part
        self.view = view
        self.now = view.now
        self.enter = enter
        self.out: list[Output] = []
        self.changed_contact = False  # its tags, lists, score or traits changed: evaluate again soon

    def tally(self, workflow_id: str, counter: str, amount: int = 1) -> None:
        """Count `amount` occurrences of `counter` in the workflow's stats."""
        self.out.append(Tally(keys.workflow_stats(workflow_id), counter, amount))

    def advance(self, run: Run, workflow: Workflow, steps: dict[str, Step]) -> bool:
        """Run steps until the run waits (True) or ends (False).

        A run that waits is parked (`ready` false) and counted in the gauge
        `waiting:<step>` until it goes on or ends: the stats show how many
        contacts wait at each delay and wait step now.
        """
        if not run.ready:
            self.tally(run.workflow, f"waiting:{run.step}", -1)
            run.ready = True
        for _ in range(MAX_HOPS_PER_INSTANT):
            step = steps.get(run.step)
            if step is None:
                return self.finish(run, "ended")
            following = self._step(run, workflow, step)
            if isinstance(following, _Wait):
                return self._park(run)
            run.hops += 1
            if following is None:
                return self.finish(run, "ended")
            run.step, run.step_since, run.due, run.ready = following, self.now, None, True
            self.tally(run.workflow, f"step:{following}")
        run.due = self.now + 1.0  # a bound reached: go on a second later
        return self._park(run)

    def _park(self, run: Run) -> bool:
        run.ready = False
        self.tally(run.workflow, f"waiting:{run.step}")
        return True

    def finish(self, run: Run, how: str) -> bool:
        """End a run (`ended`, `converted`, `removed` …); counted per workflow and branch."""
        if not run.ready:
            self.tally(run.workflow, f"waiting:{run.step}", -1)
        self.part.runs.pop(run.workflow, None)
        self.tally(run.workflow, how)
        if run.branch is not None:
            self.tally(run.workflow, f"branch:{run.branch}:{how}")
        return False

    def _step(self, run: Run, workflow: Workflow, step: Step) -> Next:
        """Execute one step: the next step's id, None (the end), or `_WAIT`."""
        if isinstance(step, Delay):
            return self._delay(run, step)
        if isinstance(step, WaitFor):
            if not run.waiting:
                run.waiting, run.due = True, self.now + step.timeout_s
                return _WAIT
            if run.due is not None and self.now >= run.due:
                run.waiting = False
                self.tally(run.workflow, f"timeout:{step.id}")
                return step.timeout
            return _WAIT
        if isinstance(step, Branch):
            return step.then if evaluate_condition(step.when, self.view, self.view.members) else step.otherwise
        if isinstance(step, Split):
            run.branch = split_arm(self.view.state.contact_id, workflow, step)
            self.tally(run.workflow, f"branch:{run.branch}:entered")
            return next(arm.next for arm in step.arms if arm.name == run.branch)
        if isinstance(step, End):
            return None
        if isinstance(step, SendWebhook | SendEmail):
            return self._message(run, step)
        self._change_contact(run, step)
        return step.next

    def _delay(self, run: Run, step: Delay) -> Next:
        if run.due is None:
            run.due = self._delay_end(run, step)
        if self.now < run.due:
            return _WAIT
        return step.next

    def _delay_end(self, run: Run, step: Delay) -> float:
        if step.seconds is not None:
            return run.step_since + step.seconds
        tz = contact_zone(self.view.trait("timezone"), self.view.live.config.messaging)
        if step.until is not None:
            return next_time_of_day(self.now, step.until, tz)
        day = parse_date(self.view.trait(step.until_trait or ""))
        if day is None:
            return self.now  # no such date: nothing to wait for
        return max(self.now, datetime.combine(day, time(0), tz).timestamp())

    def _message(self, run: Run, step: SendWebhook | SendEmail) -> Next:
        policy = self.view.live.config.messaging
        tz = contact_zone(self.view.trait("timezone"), policy)
        if (until := quiet_until(self.now, policy, tz, step.channel)) is not None:
            run.due = until
            self.tally(run.workflow, f"quiet:{step.id}")
            return _WAIT
        contact = self._contact()
        reason: str | None = None
        if self.part.unsubscribed and (isinstance(step, SendEmail) or step.channel == "email"):
            reason = "unsubscribed"  # Attimo's own e-mail and the shop's e-mail tool alike
        elif isinstance(step, SendEmail) and not contact.email:
            reason = "no e-mail address"
        if reason is not None:
            self._log(run, step.id, "skipped", None, reason)
            return step.next
        touches: Touches = self.view.part("touches")  # one ledger with popups: `capabilities.touches`
        if (held := cap_reason(touches, step.channel, self.now, policy)) is not None:
            self._log(run, step.id, "held", None, held)
            return step.next
        try:
            action = self._action(run, step, contact)
        except TemplateError as exc:
            self._log(run, step.id, "skipped", None, f"template: {exc}"[:200])
            return step.next
        record_touch(touches, step.channel, self.now)
        self.out.append(ActionOut(action))
        self._log(run, step.id, "queued", action.id, None)
        return step.next

    def _log(self, run: Run, step_id: str, outcome: str, action: str | None, reason: str | None) -> None:
        self.part.remember(LogEntry(self.now, run.workflow, step_id, outcome, action, reason))
        self.tally(run.workflow, f"{outcome}:{step_id}")

    def _contact(self) -> ActionContact:
        state = self.view.state
        traits: Traits = self.view.part("traits")
        email = traits.values.get("email")
        return ActionContact(contact_id=state.contact_id, user_id=state.user_id,
                             anonymous_ids=list(state.anonymous_ids),
                             email=email if isinstance(email, str) else None, traits=dict(traits.values))

    def _action(self, run: Run, step: SendWebhook | SendEmail, contact: ActionContact) -> Action:
        cart: CartState = self.view.part("cart")
        action = Action(id=action_id(contact.contact_id, run, step.id), kind="webhook", channel=step.channel,
                        contact=contact, workflow_id=run.workflow, workflow_version=run.version, step_id=step.id,
                        created_at=self.now, branch=run.branch, cart=list(cart.lines.values()),
                        products=self._viewed_products(), trigger=run.trigger or {})
        if isinstance(step, SendWebhook):
            return msgspec.structs.replace(action, endpoint=step.endpoint, payload=dict(step.payload))
        email = render_email(action, step.subject, step.text, step.html)
        return msgspec.structs.replace(action, kind="email", email=email)

    def _viewed_products(self) -> list[ProductInterest]:
        """The contact's most viewed products within the longest window (what browse abandonment shows)."""
        log: ActivityLog = self.view.part("windows")
        longest = max(self.view.live.config.windows.windows_s, default=0.0)
        return [ProductInterest(product_id=product, events=count, category=category)
                for product, count, category in viewed_products(log, self.now - longest, VIEWED_PRODUCTS)]

    def _change_contact(self, run: Run, step: Step) -> None:
        """Steps that change the contact itself: tags, lists, score, traits, another workflow."""
        if isinstance(step, ChangeTags):
            tags: TagState = self.view.part("tags")
            for tag in step.add:
                add_value(tags.tags, tag)
            for tag in step.remove:
                remove_value(tags.tags, tag)
        elif isinstance(step, ChangeList):
            lists: TagState = self.view.part("tags")
            (add_value if step.member else remove_value)(lists.lists, step.list_id)
        elif isinstance(step, ChangeScore):
            add_points(self.view.part("scoring"), step.group, step.points, self.now, self.view.live)
        elif isinstance(step, SetTrait):
            set_traits(self.view.part("traits").values, {step.name: step.value})
        elif isinstance(step, EnterWorkflow):
            self.enter(step.workflow, f"step:{self.now!r}", run.trigger)  # the same cause, the same data
            return
        self.changed_contact = True


