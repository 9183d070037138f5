"""The PKCS#11 backend (``pkcs11:`` URIs), through python-pkcs11."""
