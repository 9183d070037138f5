"""Who may do what: the RAM roles and the actions each allows, as one table.

A business has one principal authority (PA) and may have authorisation administrators (AA),
machine credential administrators (MCA) and `software` principals (the servers or desktop
programs that sign with its credentials). The local administrator registers businesses and
creates principals; it holds no role in any business.
"""

from __future__ import annotations

import enum


class Role(enum.Enum):
    """Roles a principal can hold in a business."""

    PRINCIPAL_AUTHORITY = "principal-authority"
    AUTHORISATION_ADMINISTRATOR = "authorisation-administrator"
    MACHINE_CREDENTIAL_ADMINISTRATOR = "machine-credential-administrator"
    SOFTWARE = "software"

    @property
    def title(self) -> str:
        """How RAM names the role in sentences."""
        return self.value.replace("-", " ")


PA = Role.PRINCIPAL_AUTHORITY
AA = Role.AUTHORISATION_ADMINISTRATOR
MCA = Role.MACHINE_CREDENTIAL_ADMINISTRATOR
SOFTWARE = Role.SOFTWARE


class Action(enum.Enum):
    """Things a principal does within a business."""

    CREATE_CREDENTIAL = "create a machine credential"
    REVOKE_CREDENTIAL = "revoke a machine credential"
    CLAIM_CREDENTIAL = "claim an unassigned machine credential"
    SIGN = "sign with a machine credential"
    SET_PERMISSIONS = "amend a machine credential's permissions"
    VIEW = "view the business's credentials"
    VIEW_AUDIT = "view the business's audit history"
    MANAGE_NOTIFICATIONS = "manage the business's cloud software notifications"
    REQUEST_NOTIFICATION = "request a cloud software notification as the provider"


ALLOWED: dict[Action, frozenset[Role]] = {
    Action.CREATE_CREDENTIAL: frozenset({PA, MCA}),
    Action.REVOKE_CREDENTIAL: frozenset({PA, AA, MCA}),
    Action.CLAIM_CREDENTIAL: frozenset({MCA}),
    Action.SIGN: frozenset({PA, AA, MCA, SOFTWARE}),
    Action.SET_PERMISSIONS: frozenset({PA, AA}),
    Action.VIEW: frozenset({PA, AA, MCA, SOFTWARE}),
    Action.VIEW_AUDIT: frozenset({PA, AA}),
    Action.MANAGE_NOTIFICATIONS: frozenset({PA, AA}),
    Action.REQUEST_NOTIFICATION: frozenset({PA, AA}),
}

# Which roles a holder of each role may grant and remove. The PA is set when the business
# is registered and is never granted or removed this way.
MANAGES: dict[Role, frozenset[Role]] = {
    PA: frozenset({AA, MCA, SOFTWARE}),
    AA: frozenset({MCA, SOFTWARE}),
}


def may(roles: set[Role], action: Action) -> bool:
    """True when someone holding `roles` in a business may do `action` there."""
    return bool(roles & ALLOWED[action])


def may_manage(roles: set[Role], target: Role) -> bool:
    """True when someone holding `roles` may grant or remove `target`."""
    return any(target in MANAGES.get(role, frozenset()) for role in roles)
