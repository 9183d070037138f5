"""The 60-day window of an unassigned credential and the 30/53-day reminders, on an injected clock.

RAM: "If a principal authority or authorisation administrator removes the role or
authorisation of an MCA, the machine credential becomes 'unassigned'. It will display as
'Suspend' in RAM but remain active for 60 days from the date of removal. During this period,
another MCA can claim the unassigned machine credential and continue using it." DESIGN adds
the reminders: "the other MCAs (else the PA) are reminded to claim it at 30 and 53 days".
"""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from mcagent.agent.domain.calls import SignItem
from mcagent.agent.domain.credential import CredentialStatus
from mcagent.agent.domain.errors import FailedPrecondition, PermissionDenied
from mcagent.agent.domain.model import Backend
from mcagent.agent.domain.policy import Role
from mcagent.agent.domain.terms import CURRENT_TERMS
from mcagent.agent.server.interceptors import status_of
from mcagent.hsm.base import KeyType

from tests.agent.clocked import make_agent

ABN = "51824753556"
REMOVED_AT = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
MCA = Role.MACHINE_CREDENTIAL_ADMINISTRATOR


@pytest.fixture
def acme(tmp_path):
    """Acme: PA alice, AA aaron, MCAs bob and carol, software sw; bob holds credential `server-1`."""
    agent = make_agent(tmp_path, REMOVED_AT - dt.timedelta(days=1))
    agent.service.ensure_ca()
    alice = agent.business(ABN, "Acme Pty Ltd", "alice")
    agent.grant(alice, ABN, "aaron", Role.AUTHORISATION_ADMINISTRATOR)
    agent.grant(alice, ABN, "bob", MCA)
    agent.grant(alice, ABN, "carol", MCA)
    agent.grant(alice, ABN, "sw", Role.SOFTWARE)
    agent.credential = agent.service.create_credential(
        agent.callers["bob"], abn=ABN, name="server-1", key_type=KeyType.EC_P256, backend=Backend.FILE, store=None,
        accepted_terms_version=CURRENT_TERMS.version).view.credential.id
    yield agent
    agent.close()


def _unassign(agent, holder="bob"):
    agent.clock.now = REMOVED_AT
    assert agent.service.remove_role(agent.callers["aaron"], ABN, holder, MCA) == [agent.credential]


def _sign(agent, by="sw"):
    return agent.service.sign(agent.callers[by], SignItem(credential_id=agent.credential,
                                                           data=b"<RequestSecurityToken/>"))


def _reminders(agent):
    view = agent.service.get_credential(agent.callers["alice"], agent.credential)  # records the due ones
    return [(r.day, r.recipients) for r in view.reminders]


def test_removing_the_holders_role_unassigns_and_it_shows_suspended(acme):
    _unassign(acme)
    view = acme.service.get_credential(acme.callers["alice"], acme.credential)
    assert view.credential.status is CredentialStatus.UNASSIGNED
    assert view.credential.unassigned_at == REMOVED_AT
    assert view.credential.holder_id is None
    assert view.window_ends_at == REMOVED_AT + dt.timedelta(days=60)
    assert view.display_status == "suspended (unassigned; works until 2026-04-30 unless claimed)"
    assert _sign(acme).signature  # still works


def test_reminders_at_30_and_53_days_to_the_other_mcas(acme):
    _unassign(acme)
    acme.clock.now = REMOVED_AT + dt.timedelta(days=30) - dt.timedelta(seconds=1)
    assert acme.service.record_due_reminders() == 0
    assert _reminders(acme) == []
    acme.clock.now = REMOVED_AT + dt.timedelta(days=30)
    assert _reminders(acme) == [(30, ("carol",))]  # bob lost the role; the PA is not needed
    assert acme.service.record_due_reminders() == 0  # once only
    acme.clock.now = REMOVED_AT + dt.timedelta(days=53) - dt.timedelta(seconds=1)
    assert _reminders(acme) == [(30, ("carol",))]
    acme.clock.now = REMOVED_AT + dt.timedelta(days=53)
    assert _reminders(acme) == [(30, ("carol",)), (53, ("carol",))]
    assert acme.service.record_due_reminders() == 0


def test_reminders_go_to_the_pa_when_no_other_mca_exists(acme):
    acme.service.remove_role(acme.callers["alice"], ABN, "carol", MCA)  # carol held nothing
    _unassign(acme)
    acme.clock.now = REMOVED_AT + dt.timedelta(days=30)
    assert _reminders(acme) == [(30, ("alice",))]
    acme.clock.now = REMOVED_AT + dt.timedelta(days=53)
    assert _reminders(acme) == [(30, ("alice",)), (53, ("alice",))]


def test_reminders_skipped_while_the_agent_was_down_are_both_recorded(acme):
    _unassign(acme)
    acme.clock.now = REMOVED_AT + dt.timedelta(days=55)
    assert acme.service.record_due_reminders() == 2
    assert [day for day, _ in _reminders(acme)] == [30, 53]


def test_another_mca_claims_within_the_window(acme):
    _unassign(acme)
    acme.clock.now = REMOVED_AT + dt.timedelta(days=60) - dt.timedelta(seconds=1)
    assert _reminders(acme)  # due ones recorded before the claim
    with pytest.raises(PermissionDenied, match="aaron may not claim an unassigned machine credential"):
        acme.service.claim_credential(acme.callers["aaron"], acme.credential)
    view = acme.service.claim_credential(acme.callers["carol"], acme.credential)
    assert view.credential.status is CredentialStatus.ACTIVE
    assert view.credential.holder_id == acme.callers["carol"].principal_id
    assert view.credential.unassigned_at is None and view.display_status == "active"
    assert view.reminders == ()
    acme.clock.advance(days=365)  # no window any more
    assert _sign(acme).signature
    assert acme.service.record_due_reminders() == 0


def test_after_60_days_signing_fails_and_claim_is_refused(acme):
    _unassign(acme)
    acme.clock.now = REMOVED_AT + dt.timedelta(days=60) - dt.timedelta(microseconds=1)
    assert _sign(acme).signature  # the last moment of the window
    acme.clock.now = REMOVED_AT + dt.timedelta(days=60)
    with pytest.raises(FailedPrecondition) as signing:
        _sign(acme)
    assert status_of(signing.value) is grpc.StatusCode.FAILED_PRECONDITION
    assert str(signing.value) == (f"credential {acme.credential} was unassigned on 2026-03-01 and not claimed "
                                  "within 60 days; it stopped working on 2026-04-30")
    with pytest.raises(FailedPrecondition) as claiming:
        acme.service.claim_credential(acme.callers["carol"], acme.credential)
    assert status_of(claiming.value) is grpc.StatusCode.FAILED_PRECONDITION
    assert "the claim window for credential" in str(claiming.value)
    assert "ended on 2026-04-30" in str(claiming.value) and "can no longer be claimed" in str(claiming.value)
    view = acme.service.get_credential(acme.callers["alice"], acme.credential)
    assert view.display_status == "suspended (unclaimed; stopped working 2026-04-30)"
    assert view.credential.status is CredentialStatus.UNASSIGNED
    # Revoking it is still possible (and final).
    acme.service.revoke_credential(acme.callers["alice"], acme.credential, confirm=True)
    with pytest.raises(FailedPrecondition, match="is revoked"):
        acme.service.claim_credential(acme.callers["carol"], acme.credential)


def test_no_reminder_after_the_window(acme):
    _unassign(acme)
    acme.clock.now = REMOVED_AT + dt.timedelta(days=61)  # the agent was down through both reminder days
    assert acme.service.record_due_reminders() == 0


def test_removing_a_role_other_than_mca_does_not_unassign(acme):
    acme.grant(acme.callers["alice"], ABN, "bob", Role.SOFTWARE)
    assert acme.service.remove_role(acme.callers["aaron"], ABN, "bob", Role.SOFTWARE) == []
    view = acme.service.get_credential(acme.callers["alice"], acme.credential)
    assert view.credential.status is CredentialStatus.ACTIVE
