"""Stored-event serialization with msgspec, decoding each event into its own typed class.

The library's default JSON transcoder needs a registered transcoding for every value type
and tags every object with ``_type_``; decoding by the event class's own annotations keeps
stored events plain JSON (readable by auditors without this code) and typed on the way
back. msgspec's schema-evolution rules apply to stored events: new fields get defaults,
a field's type never changes; anything else is an upcast (``class_version``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar, cast

import msgspec
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent
from eventsourcing.utils import get_topic, resolve_topic

_encoder = msgspec.json.Encoder(order="deterministic")
_decoder = msgspec.json.Decoder()
T = TypeVar("T")

# msgspec builds a type's conversion info the first time it converts to (or decodes as)
# that type, calling back into Python to read its annotations; another thread converting
# to the same type meanwhile can find the info half-built and crash the whole process
# with a segmentation fault (msgspec 0.22 on CPython 3.11: reproduced by
# tests/application/test_serialization_threads.py, and seen in a worker process of the
# concurrent-placement test). First conversions per type therefore take turns; once a
# type's info is complete, conversions run concurrently as before.
_ready: set[object] = set()
_first_use = threading.Lock()


def _typed(kind: object, work: Callable[[], T]) -> T:
    if kind in _ready:
        return work()
    with _first_use:
        result = work()
        _ready.add(kind)
    return result


def convert(value: object, kind: type[T]) -> T:
    """``msgspec.convert``, safe for a type's first use from several threads."""
    return _typed(kind, lambda: msgspec.convert(value, kind))


def decode_json_as(data: bytes, kind: type[T]) -> T:
    """``msgspec.json.decode`` into ``kind``, safe for its first use from several threads."""
    return _typed(kind, lambda: msgspec.json.decode(data, type=kind))


def encode_json(value: object) -> bytes:
    """Deterministic JSON: the same value always gives the same bytes (used for hashing)."""
    return _encoder.encode(value)


def decode_json(data: bytes) -> Any:
    return _decoder.decode(data)


@lru_cache(maxsize=1024)
def _class_for(topic: str) -> type[Any]:
    return cast("type[Any]", resolve_topic(topic))


class MsgspecMapper(Mapper[Any]):
    """Maps domain events to stored events as JSON and back into their typed classes."""

    def to_stored_event(self, domain_event: DomainEventProtocol[Any]) -> StoredEvent:
        event_state = dict(vars(domain_event))
        originator_id = event_state.pop("originator_id")
        originator_version = event_state.pop("originator_version")
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            event_state["class_version"] = class_version
        stored_state = encode_json(event_state)
        if self.compressor:
            stored_state = self.compressor.compress(stored_state)
        if self.cipher:
            stored_state = self.cipher.encrypt(stored_state)
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=get_topic(type(domain_event)),
            state=stored_state,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[Any]:
        cls = _class_for(stored_event.topic)
        try:
            stored_state = stored_event.state
            if self.cipher:
                stored_state = self.cipher.decrypt(stored_state)
            if self.compressor:
                stored_state = self.compressor.decompress(stored_state)
            event_state: dict[str, Any] = decode_json(stored_state)
            event_state["originator_id"] = stored_event.originator_id
            event_state["originator_version"] = stored_event.originator_version
            from_version = event_state.pop("class_version", 1)
            class_version = getattr(cls, "class_version", 1)
            while from_version < class_version:
                getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(event_state)
                from_version += 1
            return cast("DomainEventProtocol[Any]", convert(event_state, cls))
        except (msgspec.MsgspecError, ValueError, TypeError, KeyError) as error:
            msg = (
                f"cannot decode stored event {stored_event.topic} "
                f"{stored_event.originator_id} v{stored_event.originator_version}: {error}"
            )
            raise MapperDeserialisationError(msg) from error
