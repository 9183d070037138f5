"""Protobuf messages to the client's dataclasses (by field name), and enums both ways."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import types
import typing
from typing import Any

import grpc
from google.protobuf.message import Message
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.client import types as t
from mcagent.client.errors import ClientConfigError

# Our enum -> (the proto enum, the prefix of its value names).
_ENUMS: dict[type[enum.Enum], tuple[Any, str]] = {
    t.Algorithm: (pb.SignatureAlgorithm, "SIGNATURE_ALGORITHM_"),
    t.KeyType: (pb.KeyType, "KEY_TYPE_"),
    t.Backend: (pb.Backend, "BACKEND_"),
    t.Role: (pb.Role, "ROLE_"),
}
_STATUS = {code.value[0]: code for code in grpc.StatusCode}


def to_pb_enum(cls: type[enum.Enum], value: enum.Enum | str | None) -> int:
    """The proto number for `value` (a member, its value such as "rsa-2048", or None: unspecified)."""
    if value is None:
        return 0
    if not isinstance(value, cls):
        try:
            value = cls(value)
        except ValueError:
            choices = ", ".join(member.value for member in cls)
            raise ClientConfigError(f"unknown {cls.__name__} {value!r}; one of {choices}") from None
    proto, prefix = _ENUMS[cls]
    return proto.Value(prefix + value.name)


def _from_pb_enum(cls: type[enum.Enum], number: int) -> enum.Enum | None:
    if number == 0:
        return None
    proto, prefix = _ENUMS[cls]
    return cls[proto.Name(number).removeprefix(prefix)]


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(hint: Any, message: Message, name: str) -> Any:
    value = getattr(message, name)
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = next(a for a in args if a is not type(None))
        if inner is dt.datetime:
            return value.ToDatetime(dt.UTC) if message.HasField(name) else None
        if isinstance(inner, type) and issubclass(inner, enum.Enum):
            return _from_pb_enum(inner, value)
        if typing.get_origin(inner) is tuple:  # an optional wrapper such as PermissionSet
            return tuple(getattr(value, name)) if message.HasField(name) else None
    if typing.get_origin(hint) is tuple:
        item = args[0]
        if dataclasses.is_dataclass(item):
            return tuple(from_pb(item, v) for v in value)
        return tuple(value)
    if dataclasses.is_dataclass(hint):
        return from_pb(hint, value)
    if hint is grpc.StatusCode:
        return _STATUS.get(value, grpc.StatusCode.UNKNOWN)
    return value


def from_pb(cls: type, message: Message) -> Any:
    """An instance of the dataclass `cls` from the message with the same field names."""
    hints = _hints(cls)
    return cls(**{f.name: _convert(hints[f.name], message, f.name)
                  for f in dataclasses.fields(cls)})


def converter(cls: type) -> Any:
    """A one-argument function turning a reply into `cls`."""
    return functools.partial(from_pb, cls)
