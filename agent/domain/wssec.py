"""WS-Security and XML-DSig: the STS request and enveloped signatures, signed by a key in custody.

Pure XML work, no rules and no records: build the SOAP 1.2 / WS-Addressing / WS-Trust 1.3
RequestSecurityToken the ATO's token service (STS) expects, parse callers' documents with
defusedxml's rules, and sign elements by their `Id` with exclusive c14n, rsa-sha256 (or
ecdsa-sha256) and SHA-256 digests. The signature value is made by whatever `cryptography`
private-key object is passed in: the agent passes `hsm.signer`'s adapter, so the value is
computed inside the token. signxml builds and canonicalises the `ds:Signature`.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Any

import defusedxml.ElementTree as defused
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from mcagent.agent.domain.errors import InvalidArgument
from signxml import DigestAlgorithm, SignatureConstructionMethod, SignatureMethod, XMLSigner
from signxml.algorithms import CanonicalizationMethod

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WSSE11 = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd"
DS = "http://www.w3.org/2000/09/xmldsig#"
WST = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
WST14 = "http://docs.oasis-open.org/ws-sx/ws-trust/200802"  # ActAs is a WS-Trust 1.4 element
WSP = "http://schemas.xmlsoap.org/ws/2004/09/policy"
IDENTITY = "http://schemas.xmlsoap.org/ws/2005/05/identity"
VANGUARD = "http://vanguard.ebusiness.gov.au/2008/06/identity/claims"

ACTION_ISSUE = WST + "/RST/Issue"
REQUEST_ISSUE = WST + "/Issue"
KEY_TYPE_SYMMETRIC = WST + "/SymmetricKey"
KEY_SIZE = 256  # the Basic256 suite of the STS's policy
TOKEN_TYPE_SAML2 = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV2.0"
ANONYMOUS = WSA + "/anonymous"
X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
BASE64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
DEFAULT_CLAIMS = (VANGUARD + "/credentialtype", VANGUARD + "/abn")
ABN_SCHEME = "uri://abr.gov.au/ABN"

TIMESTAMP_WINDOW = dt.timedelta(minutes=5)  # the security header's own freshness, not the token's
MAX_DOCUMENT = 1 << 20  # bytes of a document given to SignXml
MAX_IDS = 32
MAX_CLAIMS = 16
MAX_URI = 2048
_NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class StsRequest:
    """What goes into one RST (already checked by the caller's rules)."""

    applies_to: str
    to: str
    lifetime: dt.timedelta
    claims: tuple[str, ...]
    act_as: str | None  # the client ABN, or None
    provider_abn: str  # the credential's business (the cloud provider when acting as)


def check_uri(value: str, what: str) -> str:
    """An absolute http(s) or urn URI of bounded length, without whitespace or control characters."""
    if not value or len(value) > MAX_URI or any(c.isspace() or ord(c) < 32 for c in value) or not re.match(
            r"(https?://[^/]+|urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:.+)", value):
        raise InvalidArgument(f"{what} must be an absolute http(s):// or urn: URI of at most {MAX_URI} characters")
    return value


def _stamp(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _el(parent: Any, ns: str, name: str, text: str | None = None, **attrib: str) -> Any:
    element = etree.SubElement(parent, f"{{{ns}}}{name}", attrib)
    if text is not None:
        element.text = text
    return element


def _wsu_id(element: Any, value: str) -> None:
    element.set(f"{{{WSU}}}Id", value)


def build_sts_request(request: StsRequest, leaf: x509.Certificate, now: dt.datetime) -> tuple[Any, list[str]]:
    """The unsigned SOAP envelope of a WS-Trust 1.3 Issue request, and the Ids to sign.

    Signed: the timestamp, every WS-Addressing header and the body (wsu:Id on each).
    """
    envelope = etree.Element(f"{{{SOAP12}}}Envelope", nsmap={"s": SOAP12, "a": WSA, "u": WSU})
    header = _el(envelope, SOAP12, "Header")
    must = {f"{{{SOAP12}}}mustUnderstand": "1"}
    _wsu_id(_el(header, WSA, "Action", ACTION_ISSUE, **must), "_1")
    _wsu_id(_el(header, WSA, "MessageID", f"urn:uuid:{uuid.uuid4()}"), "_2")
    reply_to = _el(header, WSA, "ReplyTo")
    _el(reply_to, WSA, "Address", ANONYMOUS)
    _wsu_id(reply_to, "_3")
    _wsu_id(_el(header, WSA, "To", request.to, **must), "_4")
    security = etree.SubElement(header, f"{{{WSSE}}}Security", must, nsmap={"o": WSSE})
    timestamp = _el(security, WSU, "Timestamp")
    _wsu_id(timestamp, "_0")
    _el(timestamp, WSU, "Created", _stamp(now))
    _el(timestamp, WSU, "Expires", _stamp(now + TIMESTAMP_WINDOW))
    token_id = f"uuid-{uuid.uuid4()}-1"
    token = _el(security, WSSE, "BinarySecurityToken", None, ValueType=X509V3, EncodingType=BASE64)
    _wsu_id(token, token_id)
    token.text = _base64(leaf.public_bytes(serialization.Encoding.DER))
    body = _el(envelope, SOAP12, "Body")
    _wsu_id(body, "_5")
    rst = etree.SubElement(body, f"{{{WST}}}RequestSecurityToken", nsmap={"trust": WST})
    applies = etree.SubElement(rst, f"{{{WSP}}}AppliesTo", nsmap={"wsp": WSP})
    _el(_el(applies, WSA, "EndpointReference"), WSA, "Address", request.applies_to)
    claims = _el(rst, WST, "Claims", Dialect=IDENTITY)
    for uri in request.claims:
        etree.SubElement(claims, f"{{{IDENTITY}}}ClaimType", {"Uri": uri}, nsmap={"i": IDENTITY})
    lifetime = _el(rst, WST, "Lifetime")
    _el(lifetime, WSU, "Created", _stamp(now))
    _el(lifetime, WSU, "Expires", _stamp(now + request.lifetime))
    _el(rst, WST, "KeyType", KEY_TYPE_SYMMETRIC)
    _el(rst, WST, "KeySize", str(KEY_SIZE))
    _el(rst, WST, "RequestType", REQUEST_ISSUE)
    _el(rst, WST, "TokenType", TOKEN_TYPE_SAML2)
    if request.act_as:
        act_as = etree.SubElement(rst, f"{{{WST14}}}ActAs", nsmap={"tr": WST14})
        relationship = etree.SubElement(act_as, f"{{{VANGUARD}}}RelationshipToken", {"ID": f"_{uuid.uuid4()}"},
                                        nsmap={"v": VANGUARD})
        _el(relationship, VANGUARD, "Relationship", **{f"{{{VANGUARD}}}Type": "OSPfor"})
        _el(relationship, VANGUARD, "FirstParty",
            **{f"{{{VANGUARD}}}Scheme": ABN_SCHEME, f"{{{VANGUARD}}}Value": request.provider_abn})
        _el(relationship, VANGUARD, "SecondParty",
            **{f"{{{VANGUARD}}}Scheme": ABN_SCHEME, f"{{{VANGUARD}}}Value": request.act_as})
    return envelope, ["_0", "_1", "_2", "_3", "_4", "_5"]


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _signer(key: Any, construction: SignatureConstructionMethod) -> XMLSigner:
    method = SignatureMethod.RSA_SHA256 if isinstance(key, rsa.RSAPrivateKey) else SignatureMethod.ECDSA_SHA256
    return XMLSigner(method=construction, signature_algorithm=method, digest_algorithm=DigestAlgorithm.SHA256,
                     c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)


def sign_ws_security(envelope: Any, ids: list[str], key: Any) -> bytes:
    """Sign the elements with these wsu:Ids into the envelope's wsse:Security header.

    KeyInfo is a wsse:SecurityTokenReference to the BinarySecurityToken (WS-Security 1.1
    X.509 token profile); the signature follows the token in the header.
    """
    security = envelope.find(f"{{{SOAP12}}}Header/{{{WSSE}}}Security")
    token = security.find(f"{{{WSSE}}}BinarySecurityToken")
    key_info = etree.Element(f"{{{DS}}}KeyInfo", nsmap={"ds": DS})
    reference = etree.SubElement(key_info, f"{{{WSSE}}}SecurityTokenReference", nsmap={"o": WSSE})
    etree.SubElement(reference, f"{{{WSSE}}}Reference", {"URI": "#" + token.get(f"{{{WSU}}}Id"),
                                                          "ValueType": X509V3})
    signature = _signer(key, SignatureConstructionMethod.detached).sign(
        envelope, key=key, reference_uri=[f"#{i}" for i in ids], key_info=key_info)
    security.append(signature)
    return serialise(envelope)


def sign_enveloped(document: Any, ids: list[str], key: Any, chain: list[x509.Certificate]) -> bytes:
    """Sign the elements with these Ids (any attribute named Id, wsu:Id included) and append the
    ds:Signature to the document's root; KeyInfo carries the certificate chain (X509Data)."""
    pem = [c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in chain]
    signed = _signer(key, SignatureConstructionMethod.enveloped).sign(
        document, key=key, reference_uri=[f"#{i}" for i in ids], cert=pem)
    return serialise(signed)


def serialise(root: Any) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def parse_document(data: bytes) -> Any:
    """A caller's document, parsed under defusedxml's rules and bounded.

    Raises:
        InvalidArgument: too large, not well-formed, or holding a DTD, an entity or an
            external reference (refused before anything is resolved).
    """
    if not data:
        raise InvalidArgument("the document is empty")
    if len(data) > MAX_DOCUMENT:
        raise InvalidArgument(f"the document is {len(data):,} bytes; at most {MAX_DOCUMENT:,} are signed")
    try:  # defusedxml's rules first: no DTD, no entity, no external reference
        defused.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defused.ParseError as exc:
        raise InvalidArgument(f"the document is not well-formed XML: {exc}") from None
    except Exception as exc:  # DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
        raise InvalidArgument(f"the document is refused: {type(exc).__name__} (no DTD or entities allowed)") from None
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             remove_blank_text=False)
    try:
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise InvalidArgument(f"the document is not well-formed XML: {exc}") from None


def check_ids(document: Any, ids: list[str]) -> list[str]:
    """The Ids to sign: 1 to MAX_IDS names, each on exactly one element (no wrapping by a twin).

    Raises:
        InvalidArgument: naming the Id that is malformed, missing or not unique.
    """
    if not 1 <= len(ids) <= MAX_IDS:
        raise InvalidArgument(f"name 1 to {MAX_IDS} Ids to sign, not {len(ids)}")
    if len(set(ids)) != len(ids):
        raise InvalidArgument("an Id is named more than once")
    for value in ids:
        if not _NCNAME.fullmatch(value):
            raise InvalidArgument(f"Id {value[:40]!r} is not an XML name of at most 128 characters")
        found = document.xpath("//*[@*[local-name() = 'Id' or local-name() = 'ID' or local-name() = 'id']=$v]",
                               v=value)
        if len(found) != 1:
            raise InvalidArgument(f"Id {value!r} is on {len(found)} elements of the document; it must be on one")
    if document.find(f".//{{{DS}}}Signature") is not None:
        raise InvalidArgument("the document already holds a ds:Signature; sign an unsigned document")
    return ids
