"""Key templates for PKCS#11 key generation, kept as data.

Private keys are token objects that can sign and do nothing else, never readable:
SENSITIVE true, EXTRACTABLE false. A test reads these attributes back from SoftHSM2
with pkcs11-tool.
"""

from pkcs11 import Attribute

PRIVATE_KEY_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: True,
    Attribute.DECRYPT: False,
    Attribute.UNWRAP: False,
    Attribute.DERIVE: False,
}

PUBLIC_KEY_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: False,
    Attribute.VERIFY: True,
    Attribute.ENCRYPT: False,
    Attribute.WRAP: False,
}
