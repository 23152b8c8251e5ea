"""The critical path of a trace: the chain of spans that the request actually waited on.

Walking back from the root's end, the child that finished last (before the point reached so far)
is what the parent was waiting for; the walk recurses into that child, then continues before its
start. Children running concurrently with a longer sibling are therefore off the path, and the
parent's own time in the gaps is on it (as in Jaeger's UI).
"""

from __future__ import annotations

from ..query import Span, Trace


def critical_path(trace: Trace) -> set[str]:
    """The span ids on the critical path of ``trace`` (its root always is)."""
    if not trace.spans:
        return set()
    on_path: set[str] = set()
    stack: list[tuple[Span, int]] = [(trace.root, trace.root.end_us)]
    while stack:
        span, until = stack.pop()
        on_path.add(span.span_id)
        children = sorted(trace.children.get(span.span_id, []), key=lambda c: c.end_us, reverse=True)
        cursor = min(until, span.end_us)
        for child in children:
            if child.span_id in on_path or child.start_us >= cursor:
                continue
            stack.append((child, cursor))  # ended last before the cursor: what the parent waited on
            cursor = child.start_us
            if cursor <= span.start_us:
                break
    return on_path
