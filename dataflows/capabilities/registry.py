"""The registry of per-contact capabilities.

`CAPABILITIES` is the order in which each contact's parts are
changed by an event, evaluated and rendered (each after the parts it reads;
the decision document last: it reads everything). A new capability is one
module plus one line here, appended at the end so that snapshots written
before still decode.
"""

from __future__ import annotations

from typing import Any, Final

from dataflows.capabilities.base import Capability
from dataflows.capabilities.cart import CartCapability
from dataflows.capabilities.counters import CountersCapability
from dataflows.capabilities.decision_doc import DecisionDocCapability
from dataflows.capabilities.event_log import EventLogCapability
from dataflows.capabilities.orders import OrdersCapability
from dataflows.capabilities.popups import PopupsCapability
from dataflows.capabilities.scoring import ScoringCapability
from dataflows.capabilities.segments import SegmentsCapability
from dataflows.capabilities.sessions import SessionsCapability
from dataflows.capabilities.tags import TagsCapability
from dataflows.capabilities.touches import TouchesCapability
from dataflows.capabilities.traits import TraitsCapability
from dataflows.capabilities.visit import VisitCapability
from dataflows.capabilities.windows import WindowsCapability
from dataflows.capabilities.workflows import WorkflowsCapability
from dataflows.recommendations.capability import RecommendationsCapability

CAPABILITIES: Final[tuple[Capability[Any], ...]] = (
    TraitsCapability(),
    CountersCapability(),
    OrdersCapability(),
    CartCapability(),
    SessionsCapability(),
    WindowsCapability(),
    ScoringCapability(),
    TagsCapability(),
    SegmentsCapability(),
    WorkflowsCapability(),
    VisitCapability(),
    TouchesCapability(),
    PopupsCapability(),
    DecisionDocCapability(),  # last: it reads every other part as this evaluation left it
    RecommendationsCapability(),  # after it only for snapshot order: nothing reads this part
    EventLogCapability(),  # appended for snapshot order: nothing reads this part
)
