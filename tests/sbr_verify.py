"""Two independent verifiers of the agent's XML signatures: xmlsec1 (libxmlsec1) and signxml."""

from __future__ import annotations

import pathlib
import subprocess
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from signxml import XMLVerifier
from signxml.exceptions import InvalidSignature

from tests.conftest import require_tool

WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
#: Elements that carry an Id in the STS request (xmlsec1 must be told which attributes are IDs).
STS_ID_NODES = [f"{WSU}:Timestamp", f"{SOAP12}:Body", *(f"{WSA}:{n}" for n in ("Action", "MessageID", "ReplyTo", "To"))]


def xmlsec1_verifies(document: bytes, leaf_der: bytes, id_nodes: list[str]) -> bool:
    """`xmlsec1 --verify` with the leaf as the trusted key and `--id-attr:Id` for each node."""
    xmlsec1 = require_tool("xmlsec1", "xmlsec1")
    with tempfile.TemporaryDirectory() as directory:
        path = pathlib.Path(directory)
        (path / "doc.xml").write_bytes(document)
        (path / "leaf.pem").write_bytes(x509.load_der_x509_certificate(leaf_der).public_bytes(
            serialization.Encoding.PEM))
        ids = [arg for node in id_nodes for arg in ("--id-attr:Id", node)]
        result = subprocess.run([xmlsec1, "--verify", *ids, "--pubkey-cert-pem", str(path / "leaf.pem"),
                                 str(path / "doc.xml")], capture_output=True, text=True, timeout=30)
    assert ("OK" in result.stderr) == (result.returncode == 0), result.stderr
    return result.returncode == 0


def signxml_verifies(document: bytes, leaf_der: bytes, references: int) -> bool:
    """signxml's verifier, the leaf given as the certificate to trust."""
    pem = x509.load_der_x509_certificate(leaf_der).public_bytes(serialization.Encoding.PEM)
    try:
        results = XMLVerifier().verify(document, x509_cert=pem, expect_references=references)
    except InvalidSignature:
        return False
    results = results if isinstance(results, list) else [results]  # one reference: one result, not a list
    return len(results) == references


def both_verify(document: bytes, leaf_der: bytes, id_nodes: list[str], references: int) -> tuple[bool, bool]:
    return xmlsec1_verifies(document, leaf_der, id_nodes), signxml_verifies(document, leaf_der, references)
