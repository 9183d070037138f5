"""The machine credential terms of use a creator must accept (data, one place)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class MachineTerms:
    """A version of the terms of use for machine credentials."""

    version: str
    text: str


CURRENT_TERMS = MachineTerms(
    version="2026-11-01",
    text=(
        "Terms of use - machine credentials (mcagent summary).\n"
        "1. A machine credential is created for one business and may be used only for that\n"
        "   business's dealings with government online services through its software.\n"
        "2. The principal authority or machine credential administrator who creates or holds\n"
        "   the credential is responsible for its use and must keep the device or server\n"
        "   holding it secure.\n"
        "3. A credential that is lost, misused or no longer needed must be revoked at once.\n"
        "Read the full myID terms of use - machine before accepting.\n"
    ),
)
