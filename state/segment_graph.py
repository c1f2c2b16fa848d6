"""The segment graph: which segments refer to which, in what order to evaluate them.

Both the admin API (to reject a bad definition with a clear message) and
the dataflow (to evaluate `InSegment` dependencies first) need exactly this
check, so it lives in the shared layer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from state.config import All, AnyOf, Condition, InSegment, Not, SegmentDef, StageIs, StageRule


class SegmentDefinitionError(ValueError):
    """A segment set that cannot be evaluated: unknown reference, cycle or duplicate id."""


def walk(condition: Condition) -> Iterator[Condition]:
    """Every node of a condition tree, the root first."""
    stack: list[Condition] = [condition]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, All | AnyOf):
            stack.extend(reversed(node.of))
        elif isinstance(node, Not):
            stack.append(node.of)


MAX_CONDITION_DEPTH = 32
"""How deep a condition tree may nest: evaluation recurses once per level."""


def depth(condition: Condition) -> int:
    """How many levels a condition tree has (a leaf is 1), without recursion."""
    deepest = 0
    stack: list[tuple[Condition, int]] = [(condition, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(node, All | AnyOf):
            stack.extend((child, level + 1) for child in node.of)
        elif isinstance(node, Not):
            stack.append((node.of, level + 1))
    return deepest


def references(condition: Condition) -> list[str]:
    """Ids of the segments a condition refers to, in order of appearance."""
    return list(dict.fromkeys(n.segment for n in walk(condition) if isinstance(n, InSegment)))


def dependency_order(segments: Sequence[SegmentDef]) -> list[SegmentDef]:
    """The segments ordered so that every `InSegment` target comes first.

    Raises SegmentDefinitionError naming the duplicate id, the unknown
    reference or the cycle (as a path `a → b → a`).
    """
    by_id: dict[str, SegmentDef] = {}
    for segment in segments:
        if segment.id in by_id:
            raise SegmentDefinitionError(f"segment {segment.id!r} is defined twice")
        by_id[segment.id] = segment
    deps = {s.id: references(s.when) for s in segments}
    for sid, targets in deps.items():
        for target in targets:
            if target not in by_id:
                raise SegmentDefinitionError(f"segment {sid!r} refers to unknown segment {target!r}")
    ordered: list[SegmentDef] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = placed
    for root in by_id:
        if state.get(root) == 2:
            continue
        path = [root]
        iters = [iter(deps[root])]
        state[root] = 1
        while iters:  # iterative DFS: deep chains must not hit the recursion limit
            nxt = next(iters[-1], None)
            if nxt is None:
                done = path.pop()
                iters.pop()
                state[done] = 2
                ordered.append(by_id[done])
            elif state.get(nxt) == 1:
                cycle = [*path[path.index(nxt):], nxt]
                raise SegmentDefinitionError("segment cycle: " + " → ".join(cycle))
            elif state.get(nxt) is None:
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(deps[nxt]))
    return ordered


def tests_stage(condition: Condition) -> bool:
    """Whether a condition reads the journey stage."""
    return any(isinstance(node, StageIs) for node in walk(condition))


def stage_plan(segments: Sequence[SegmentDef], stages: Sequence[StageRule],
               ) -> tuple[list[SegmentDef], list[SegmentDef]]:
    """The segments to evaluate before the stage, and after it, each in dependency order.

    Stage rules may test segments and segments may test the stage, so the
    segments a stage rule needs (and what they need) are evaluated first and
    must not test the stage; the stage next; every other segment after it.
    Raises SegmentDefinitionError naming what makes that impossible.
    """
    ordered = dependency_order(segments)
    by_id = {segment.id: segment for segment in ordered}
    needed: set[str] = set()
    for rule in stages:
        if tests_stage(rule.when):
            raise SegmentDefinitionError(f"stage rule {rule.stage!r} tests the stage itself")
        pending = references(rule.when)
        while pending:
            sid = pending.pop()
            if sid in needed:
                continue
            if sid not in by_id:
                raise SegmentDefinitionError(f"stage rule {rule.stage!r} refers to unknown segment {sid!r}")
            if tests_stage(by_id[sid].when):
                raise SegmentDefinitionError(
                    f"stage rule {rule.stage!r} needs segment {sid!r}, which tests the stage")
            needed.add(sid)
            pending.extend(references(by_id[sid].when))
    return [s for s in ordered if s.id in needed], [s for s in ordered if s.id not in needed]
