"""Which request headers the middleware hands to the propagators (the sampled-out fast path).

Only propagators whose ``extract`` is known (W3C tracecontext and baggage, B3 single/multi, in
composites however nested) let the middleware skip ``propagate.extract`` when none of their
headers is there; any other propagator (a prefix such as Jaeger's ``uberctx-``) sees every header.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import propagate
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from mltrace.spans._inbound import inbound_headers, propagated_headers


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    before = propagate.get_global_textmap()
    yield
    propagate.set_global_textmap(before)


class Prefixed(TraceContextTextMapPropagator):
    """A subclass: its extract may read more than its parent's, so it is not trusted."""


def test_known_propagators_name_their_headers() -> None:
    propagate.set_global_textmap(CompositePropagator([
        CompositePropagator([B3MultiFormat(), TraceContextTextMapPropagator()]), W3CBaggagePropagator(),
    ]))
    assert propagated_headers() == {
        b"traceparent", b"tracestate", b"baggage", b"b3", b"x-b3-traceid", b"x-b3-spanid", b"x-b3-sampled",
        b"x-b3-flags",
    }
    propagate.set_global_textmap(B3SingleFormat())  # a new global: the cache follows it
    assert b"x-b3-traceid" in (propagated_headers() or ())  # B3 single's extract is multi's: it reads both


class Baggage2(W3CBaggagePropagator):
    pass


@pytest.mark.parametrize("unknown", [Prefixed(), Baggage2()])
def test_unknown_propagator_gets_every_header(unknown: TextMapPropagator) -> None:
    propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator(), unknown]))
    assert propagated_headers() is None
    scope = {"headers": [(b"host", b"h"), (b"uberctx-k", b"v"), (b"host", b"second")]}
    headers, traced = inbound_headers(scope, None, (b"host",))
    assert traced and headers == {"host": "h", "uberctx-k": "v"}  # the first value of each, as Headers.get


def test_one_pass_picks_read_headers_and_tells_whether_any_trace_header_came() -> None:
    wanted = frozenset({b"traceparent", b"baggage"})
    extra = (b"host", b"user-agent")
    scope = {"headers": [(b"host", b"a:1"), (b"content-type", b"x"), (b"user-agent", b"u")]}
    assert inbound_headers(scope, wanted, extra) == ({"host": "a:1", "user-agent": "u"}, False)
    scope["headers"].append((b"baggage", b"k=v"))
    assert inbound_headers(scope, wanted, extra) == ({"host": "a:1", "user-agent": "u", "baggage": "k=v"}, True)
