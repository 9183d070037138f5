"""The policy table, pair by pair, against the rules it comes from.

Each expectation names its source: "RAM" quotes seed/ram-business-software.txt (the RAM page
the project implements), "DESIGN" quotes DESIGN.md's "Domain rules" where the RAM page is
silent, and "agent" marks a decision of ours recorded in agent/domain/policy.py.
"""

from __future__ import annotations

import itertools

import pytest
from mcagent.agent.domain.policy import ALLOWED, MANAGES, Action, Role, may, may_manage

PA = Role.PRINCIPAL_AUTHORITY
AA = Role.AUTHORISATION_ADMINISTRATOR
MCA = Role.MACHINE_CREDENTIAL_ADMINISTRATOR
SW = Role.SOFTWARE

# action -> (roles that may, the rule it comes from)
EXPECTED: dict[Action, tuple[frozenset[Role], str]] = {
    Action.CREATE_CREDENTIAL: (frozenset({PA, MCA}), "RAM, Who can create a machine credential: 'You can create a "
                               "machine credential if you are a: principal authority; machine credential "
                               "administrator (MCA)'"),
    Action.REVOKE_CREDENTIAL: (frozenset({PA, AA, MCA}), "DESIGN: 'Revoke (PA, AA or an MCA of the business, with "
                               "an explicit confirmation)'"),
    Action.CLAIM_CREDENTIAL: (frozenset({MCA}), "RAM, Unassigned machine credentials: 'another MCA can claim the "
                              "unassigned machine credential'"),
    Action.SIGN: (frozenset({PA, AA, MCA, SW}), "agent: the business's role holders and its software principals "
                  "sign (policy.py docstring); DESIGN: 'Software never sees a private key: it asks the agent to "
                  "sign'"),
    Action.SET_PERMISSIONS: (frozenset({PA, AA}), "RAM, Machine credential permissions: 'A principal authority or "
                             "an authorisation administrator can amend these'"),
    Action.VIEW: (frozenset({PA, AA, MCA, SW}), "agent: every role holder of the business sees its credentials"),
    Action.VIEW_AUDIT: (frozenset({PA, AA}), "agent: the business's administrators of authorisations read its "
                        "history (DESIGN: 'the history can be listed and exported per business')"),
    Action.MANAGE_NOTIFICATIONS: (frozenset({PA, AA}), "RAM, My cloud software services: 'You need to be a "
                                  "principal authority or authorisation administrator to submit and manage "
                                  "notifications'"),
    Action.REQUEST_NOTIFICATION: (frozenset({PA, AA}), "RAM, How to request a notification: the digital service "
                                  "provider requests; agent: its PA or an AA acts for it, as for any RAM "
                                  "submission"),
}

# role -> (roles it may grant and remove, the rule)
EXPECTED_MANAGES: dict[Role, tuple[frozenset[Role], str]] = {
    PA: (frozenset({AA, MCA, SW}), "RAM: 'machine credential administrator (MCA) as assigned by a principal "
         "authority or authorisation administrator'; agent: only the PA appoints authorisation administrators"),
    AA: (frozenset({MCA, SW}), "RAM: 'If a principal authority or authorisation administrator removes the role "
         "or authorisation of an MCA'"),
    MCA: (frozenset(), "RAM: an MCA is assigned, it assigns nobody"),
    SW: (frozenset(), "agent: software principals only sign"),
}


def test_every_action_and_role_has_an_expectation():
    assert set(EXPECTED) == set(Action) == set(ALLOWED)
    assert set(EXPECTED_MANAGES) == set(Role)


@pytest.mark.parametrize(("role", "action"), list(itertools.product(Role, Action)),
                         ids=lambda v: v.name.lower())
def test_each_role_and_action(role, action):
    allowed, rule = EXPECTED[action]
    assert may({role}, action) is (role in allowed), f"{role.title} / {action.value}: {rule}"
    assert (role in ALLOWED[action]) is (role in allowed), rule


@pytest.mark.parametrize("action", list(Action), ids=lambda a: a.name.lower())
def test_no_role_allows_nothing(action):
    assert may(set(), action) is False


@pytest.mark.parametrize("action", list(Action), ids=lambda a: a.name.lower())
def test_several_roles_allow_what_any_of_them_allows(action):
    allowed, rule = EXPECTED[action]
    for pair in itertools.combinations(Role, 2):
        assert may(set(pair), action) is bool(set(pair) & allowed), (pair, rule)


@pytest.mark.parametrize(("holder", "target"), list(itertools.product(Role, Role)), ids=lambda v: v.name.lower())
def test_who_manages_which_role(holder, target):
    managed, rule = EXPECTED_MANAGES[holder]
    assert may_manage({holder}, target) is (target in managed), f"{holder.title} -> {target.title}: {rule}"


def test_nobody_grants_or_removes_the_principal_authority():
    # RAM: a business has one principal authority; DESIGN: the PA is set when the business is registered.
    assert not any(PA in managed for managed in MANAGES.values())
    assert may_manage(set(Role), PA) is False
    assert may_manage(set(), MCA) is False
