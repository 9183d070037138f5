"""The encrypted key store file backend (``file:`` URIs)."""

from mcagent.hsm.filestore.backend import FileKeyStore

__all__ = ["FileKeyStore"]
