"""The agent's operations, with the RAM rules applied: one service made of its areas.

Transport-free: the gRPC servicer authenticates the caller, converts requests into these
calls and maps the errors they raise (agent.domain.errors, hsm.errors) to status codes.
Each area lives in its own module over the shared `ServiceBase` (agent.domain.guard):

- access: authentication, principals, businesses, roles
- credentials: create, renew, list, revoke, claim, permissions
- signing: sign and batch sign
- pki: the agent's CA, CSRs, chains, install, the CRL
- keyfiles: keystore.xml and PKCS#12 inspect, import, export
- notifications: cloud software notifications
- audit_trail: audit queries, signed checkpoints, verification
- upkeep: reminders to claim unassigned credentials, clean-up of interrupted work
- aliases, sts, expiry (SBR): RAM aliases and renewal, STS requests and XML signatures with
  the ActAs rule, the certificate expiry watch

Every state change commits together with its audit entry; every refusal is audited; a sign
whose audit entry cannot be written returns no signature.
"""

from __future__ import annotations

import logging

from mcagent.agent.domain.access import Access
from mcagent.agent.domain.aliases import Aliases
from mcagent.agent.domain.audit_trail import AuditTrail
from mcagent.agent.domain.credentials import Credentials
from mcagent.agent.domain.expiry import ExpiryWatch
from mcagent.agent.domain.keyfiles import KeyFiles
from mcagent.agent.domain.notifications import Notifications
from mcagent.agent.domain.pki import Pki
from mcagent.agent.domain.signing import Signing
from mcagent.agent.domain.sts import Sts
from mcagent.agent.domain.upkeep import Upkeep

log = logging.getLogger(__name__)


class AgentService(Access, Credentials, Signing, Pki, KeyFiles, Notifications, AuditTrail, Upkeep,
                   Aliases, Sts, ExpiryWatch):
    """Everything the agent does."""

    def close(self) -> None:
        """Write the last refusal summaries and a checkpoint, then what is queued; stop."""
        self._batch_executor.shutdown()
        try:
            self.flush_refusal_summaries(force=True)
            self.checkpoint_audit()
        except Exception:
            log.exception("could not write the last refusal summaries or audit checkpoint")
        self._audit_log.close()
