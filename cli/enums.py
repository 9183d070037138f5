"""The command line's spellings of the proto enums: KEY_TYPE_RSA_2048 is `rsa-2048`.

Flags take these spellings and text output prints them; JSON keeps the proto names.
"""

from __future__ import annotations

from typing import Any

from mcagent.agent.api.v1 import agent_pb2 as pb


def _enum_names(enum: Any, prefix: str) -> dict[str, int]:
    """CLI spellings of a proto enum: KEY_TYPE_RSA_2048 -> rsa-2048 (unspecified left out)."""
    return {
        name[len(prefix):].lower().replace("_", "-"): number
        for name, number in enum.items()
        if number != 0
    }


KEY_TYPES = _enum_names(pb.KeyType, "KEY_TYPE_")
ALGORITHMS = _enum_names(pb.SignatureAlgorithm, "SIGNATURE_ALGORITHM_")
BACKENDS = _enum_names(pb.Backend, "BACKEND_")
ROLES = _enum_names(pb.Role, "ROLE_")
GRANTABLE_ROLES = [r for r in ROLES if r != "principal-authority"]


def spelling(table: dict[str, int], number: int) -> str:
    """The CLI spelling of an enum value, or `unspecified`."""
    return next((name for name, value in table.items() if value == number), "unspecified")
