"""Hostile input: whatever a caller POSTs, only typed domain errors come out of a carrier
adapter, and every scan it does produce is one a Shipment accepts."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any
from urllib.parse import urlencode

from hypothesis import given
from hypothesis import strategies as st

from ordertrail.adapters.carriers import Kuaidi100Gateway, ParcelHubGateway
from ordertrail.application.carriers import TrackingNotice
from ordertrail.domain.errors import DomainError
from tests.adapters import NOW, booked, fixture_json, meta

KUAIDI100 = Kuaidi100Gateway("fuzz-salt")
PARCELHUB = ParcelHubGateway("fuzz-secret")

TRICKY_TEXT = st.sampled_from(
    [
        "",
        " ",
        "2026-11-13 18:52:32",
        "2026-02-30 10:00:00",
        "0001-01-01 00:00:00",
        "9999-12-31 23:59:59",
        "2026-11-13T10:00:00+14:00",
        "2026-11-13T10:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "3",
        "304",
        "1004",
        "101",
        "签收",
        "DELIVERED",
        "COD_COLLECTED",
        "SF142857000123",
        "\x00\ud800\u2028",
        "x" * 5000,
    ]
)
LEAVES = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30) | TRICKY_TEXT
)
JSON = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
HEADERS = st.dictionaries(st.text(max_size=30), st.text(max_size=80), max_size=4) | st.just(
    {"X-ParcelHub-Signature": "sha256=" + "0" * 64}
)


def only_domain_errors(action: Callable[[], object]) -> object:
    try:
        return action()
    except DomainError:
        return None


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*prefix, index)
            yield from paths(value, (*prefix, index))


@st.composite
def mutated(draw: st.DrawFn, document: Any) -> Any:
    """``document`` with a few members replaced by random JSON or removed."""
    result = copy.deepcopy(document)
    candidates = list(paths(result))
    for path in draw(st.lists(st.sampled_from(candidates), max_size=4)):
        parent = result
        try:
            for step in path[:-1]:
                parent = parent[step]
            if draw(st.booleans()):
                parent[path[-1]] = draw(JSON)
            elif isinstance(parent, dict):
                del parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced the path
    return result


def check_notices(notices: object) -> None:
    """Whatever a parser returns is well-formed and fit for ``Shipment.record_scan``."""
    if notices is None:
        return
    assert isinstance(notices, list)
    for notice in notices:
        assert isinstance(notice, TrackingNotice)
        shipment = booked(notice.carrier, notice.tracking_number)
        for scan in notice.scans:
            assert scan.occurred_at.tzinfo is not None
            assert scan.carrier_event_id
            shipment.record_scan(scan, meta=meta(), now=NOW)


def kuaidi100_body(param: object) -> bytes:
    text = param if isinstance(param, str) else json.dumps(param)  # ASCII: escapes surrogates
    form = {"param": text, "sign": KUAIDI100.sign(text)}
    return urlencode(form, encoding="utf-8", errors="surrogatepass").encode("ascii")


# --- random bytes ----------------------------------------------------------------------------


@given(body=st.binary(max_size=400), headers=HEADERS)
def test_random_bytes(body: bytes, headers: Mapping[str, str]) -> None:
    for gateway in (KUAIDI100, PARCELHUB):
        check_notices(only_domain_errors(partial(gateway.parse, body, headers)))
        only_domain_errors(partial(gateway.verify, body, headers))


@given(text=st.text(max_size=200))
def test_random_form_text(text: str) -> None:
    body = text.encode("utf-8", "surrogatepass")
    check_notices(only_domain_errors(lambda: KUAIDI100.parse(body, {})))
    only_domain_errors(lambda: KUAIDI100.verify(body, {}))


# --- random JSON -----------------------------------------------------------------------------


@given(document=JSON)
def test_random_json(document: object) -> None:
    raw = json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")
    check_notices(only_domain_errors(lambda: PARCELHUB.parse(raw, {})))
    check_notices(only_domain_errors(lambda: KUAIDI100.parse(kuaidi100_body(document), {})))
    batch = json.dumps({"events": [document]}).encode()
    check_notices(only_domain_errors(lambda: PARCELHUB.parse(batch, {})))
    wrapped = kuaidi100_body({"status": "polling", "lastResult": document})
    check_notices(only_domain_errors(lambda: KUAIDI100.parse(wrapped, {})))


# --- realistic payloads, damaged --------------------------------------------------------------


@given(data=st.data())
def test_damaged_kuaidi100_pushes(data: st.DataObject) -> None:
    name = data.draw(
        st.sampled_from(
            [
                "kuaidi100_sf_delivered.json",
                "kuaidi100_sf_returned.json",
                "kuaidi100_basic_polling.json",
            ]
        )
    )
    param = data.draw(mutated(fixture_json(name)))
    body = kuaidi100_body(param)
    KUAIDI100.verify(body, {})  # signed by us: always verifies
    check_notices(only_domain_errors(lambda: KUAIDI100.parse(body, {})))


@given(data=st.data())
def test_damaged_parcelhub_webhooks(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(["parcelhub_delivered.json", "parcelhub_batch_cod.json"]))
    document = data.draw(mutated(fixture_json(name)))
    body, headers = PARCELHUB.signed_body(document)
    PARCELHUB.verify(body, headers)
    check_notices(only_domain_errors(lambda: PARCELHUB.parse(body, headers)))
