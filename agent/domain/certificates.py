"""The machine-credential certificate profile, the agent's CA and its CRL: one place each.

Profile of a machine credential's certificate (RAM's, as seen in the ATO's test material):
subject C=AU, O=<ABN>, CN=<credential name>, dnQualifier=ABR; sha256WithRSAEncryption;
valid 730 days minus one second; basicConstraints CA:FALSE (critical); keyUsage (critical)
digitalSignature, nonRepudiation, keyEncipherment, dataEncipherment; extendedKeyUsage
clientAuth and emailProtection; subjectKeyIdentifier = SHA-1 of the public key (the key's
CKA_ID). When the operator configures them (`--crl-url`, `--certificate-policy`), the leaves
the agent issues also carry cRLDistributionPoints and certificatePolicies, non-critical, as
the ATO's RAM leaves do.

Whether a certificate belongs on the agent's CRL is decided from the certificate itself
(`issued_by`): its issuer, not the way it reached the agent (created, installed, imported).
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from mcagent.agent.domain.errors import FailedPrecondition, InvalidArgument

LEAF_VALIDITY = dt.timedelta(days=730) - dt.timedelta(seconds=1)
ROOT_VALIDITY = dt.timedelta(days=20 * 365)
ISSUING_VALIDITY = dt.timedelta(days=10 * 365)
CRL_VALIDITY = dt.timedelta(days=7)
DN_QUALIFIER = "ABR"


def credential_subject(abn: str, name: str) -> x509.Name:
    """C=AU, O=<ABN>, CN=<credential name>, dnQualifier=ABR."""
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "AU"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, abn),
        x509.NameAttribute(NameOID.COMMON_NAME, name),
        x509.NameAttribute(NameOID.DN_QUALIFIER, DN_QUALIFIER),
    ])


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


def abn_of(certificate: x509.Certificate) -> str:
    """The ABN a machine-credential certificate names (its subject O)."""
    return _attribute(certificate.subject, NameOID.ORGANIZATION_NAME)


def name_of(certificate: x509.Certificate) -> str:
    """The credential name a certificate names (its subject CN)."""
    return _attribute(certificate.subject, NameOID.COMMON_NAME)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: PublicKeyTypes, now: dt.datetime,
             validity: dt.timedelta) -> x509.CertificateBuilder:
    """Subject, issuer, key, a random serial and the validity from `now`."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + validity)
    )


def build_csr(key: CertificateIssuerPrivateKeyTypes, abn: str, name: str) -> x509.CertificateSigningRequest:
    """A PKCS#10 request for a credential, signed by its own key (inside its backend)."""
    return x509.CertificateSigningRequestBuilder().subject_name(credential_subject(abn, name)).sign(
        key, hashes.SHA256())


@dataclass(frozen=True)
class Publication:
    """Where relying parties find the agent's CRL, and the policy its leaves assert.

    Attributes:
        crl_url: http(s) URL of the DER CRL; None leaves cRLDistributionPoints out.
        policy_oid: dotted OID for certificatePolicies; None leaves the extension out.
    """

    crl_url: str | None = None
    policy_oid: str | None = None

    def __post_init__(self) -> None:
        """Refuse a URL relying parties could not fetch, or a malformed OID.

        Raises:
            InvalidArgument: the URL is not http(s)://host/..., or the OID is not dotted decimal.
        """
        if self.crl_url is not None:
            check_crl_url(self.crl_url)
        if self.policy_oid is not None:
            check_policy_oid(self.policy_oid)


def check_crl_url(url: str) -> None:
    """Refuse a CRL URL other than an absolute http or https URL with a host.

    Raises:
        InvalidArgument: what is wrong with it.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises ValueError when out of range or not a number
    except ValueError as exc:
        raise InvalidArgument(f"CRL URL {url!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(f"CRL URL {url!r} must be http://HOST[:PORT]/PATH or https://... "
                              "(relying parties fetch the CRL from it)")
    if any(c.isspace() or not c.isprintable() for c in url) or not url.isascii():
        raise InvalidArgument(f"CRL URL {url!r} must be plain ASCII without spaces (percent-encode them)")


def check_policy_oid(oid: str) -> None:
    """Refuse a certificate policy that is not a dotted-decimal OID such as 1.2.36.1.333.1.

    Raises:
        InvalidArgument: what is wrong with it.
    """
    if not re.fullmatch(r"[0-2](\.(0|[1-9][0-9]*))+", oid):
        raise InvalidArgument(f"certificate policy {oid!r} is not a dotted-decimal OID such as 1.2.36.1.333.1")
    try:
        x509.ObjectIdentifier(oid)
    except ValueError as exc:
        raise InvalidArgument(f"certificate policy {oid!r} is not a valid OID: {exc}") from None


def issue_leaf(
    *,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    issuer: x509.Certificate,
    public_key: PublicKeyTypes,
    abn: str,
    name: str,
    now: dt.datetime,
    publication: Publication | None = None,
) -> x509.Certificate:
    """A machine-credential certificate with the profile above.

    Args:
        publication: the CRL URL and policy OID to add (non-critical), where configured.
    """
    builder = (
        _builder(credential_subject(abn, name), issuer.subject, public_key, now, LEAF_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=True, key_encipherment=True, data_encipherment=True,
            key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
        ), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()), critical=False)
    )
    if publication is not None and publication.crl_url:
        builder = builder.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(publication.crl_url)], relative_name=None, reasons=None,
            crl_issuer=None)]), critical=False)
    if publication is not None and publication.policy_oid:
        builder = builder.add_extension(x509.CertificatePolicies([x509.PolicyInformation(
            x509.ObjectIdentifier(publication.policy_oid), policy_qualifiers=None)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def issued_by(leaf: x509.Certificate, issuing: x509.Certificate) -> bool:
    """True when `issuing` signed `leaf`: so the leaf's revocation belongs on that CA's CRL.

    Both the issuer name and the signature must match: a certificate from another CA that
    merely copies the issuing CA's name is not ours, and neither is one we did not sign.
    """
    if leaf.issuer != issuing.subject:
        return False
    try:
        leaf.verify_directly_issued_by(issuing)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _ca_certificate(*, subject: x509.Name, issuer: x509.Name, public_key: PublicKeyTypes,
                    signing_key: CertificateIssuerPrivateKeyTypes, issuer_public_key: PublicKeyTypes,
                    path_length: int, now: dt.datetime, validity: dt.timedelta) -> x509.Certificate:
    return (
        _builder(subject, issuer, public_key, now, validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
        ), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), critical=False)
        .sign(signing_key, hashes.SHA256())
    )


def _ca_name(role: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "AU"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mcagent"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"mcagent {role} CA"),
    ])


def make_root(key: CertificateIssuerPrivateKeyTypes, now: dt.datetime) -> x509.Certificate:
    """The agent's self-signed root CA certificate."""
    name = _ca_name("root")
    return _ca_certificate(subject=name, issuer=name, public_key=key.public_key(), signing_key=key,
                           issuer_public_key=key.public_key(), path_length=1, now=now, validity=ROOT_VALIDITY)


def make_issuing(key: CertificateIssuerPrivateKeyTypes, root_key: CertificateIssuerPrivateKeyTypes,
                 root: x509.Certificate, now: dt.datetime) -> x509.Certificate:
    """The agent's issuing CA certificate, signed by the root."""
    return _ca_certificate(subject=_ca_name("issuing"), issuer=root.subject, public_key=key.public_key(),
                           signing_key=root_key, issuer_public_key=root.public_key(), path_length=0, now=now,
                           validity=ISSUING_VALIDITY)


def build_crl(*, issuer_key: CertificateIssuerPrivateKeyTypes, issuer: x509.Certificate,
              revoked: Iterable[tuple[int, dt.datetime]], number: int,
              now: dt.datetime) -> x509.CertificateRevocationList:
    """The issuing CA's CRL listing (serial, revocation time) pairs."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(now)
        .next_update(now + CRL_VALIDITY)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()), critical=False)
    )
    for serial, when in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build())
    return builder.sign(issuer_key, hashes.SHA256())


def same_public_key(a: PublicKeyTypes, b: PublicKeyTypes) -> bool:
    """True when two public keys are the same key."""
    return x509.SubjectKeyIdentifier.from_public_key(a) == x509.SubjectKeyIdentifier.from_public_key(b)


def check_installable(certificate: x509.Certificate, *, public_key: PublicKeyTypes, abn: str,
                      now: dt.datetime) -> None:
    """Refuse a certificate for another key, another business, or one that has expired.

    Raises:
        InvalidArgument: another key or another ABN.
        FailedPrecondition: expired (the message names the date).
    """
    if not same_public_key(certificate.public_key(), public_key):
        raise InvalidArgument("the certificate is for another key: its public key is not the credential's")
    if abn_of(certificate) != abn:
        raise InvalidArgument(f"the certificate names ABN {abn_of(certificate) or '(none)'} in its subject, "
                              f"but the credential belongs to business {abn}")
    if certificate.not_valid_after_utc <= now:
        raise FailedPrecondition(f"the certificate expired on {certificate.not_valid_after_utc.isoformat()}")


MAX_CHAIN = 10  # certificates kept with a credential, leaf included (RAM's chains hold 3)
MAX_CHAIN_BYTES = 64 * 1024


def check_chain_size(chain: list[x509.Certificate] | tuple[x509.Certificate, ...]) -> None:
    """Refuse a chain longer or larger than a credential keeps (it is returned with signatures).

    Raises:
        InvalidArgument: more than MAX_CHAIN certificates or MAX_CHAIN_BYTES bytes.
    """
    size = sum(len(c.public_bytes(serialization.Encoding.DER)) for c in chain)
    if len(chain) > MAX_CHAIN or size > MAX_CHAIN_BYTES:
        raise InvalidArgument(f"the certificate chain holds {len(chain)} certificates ({size:,} bytes); at most "
                              f"{MAX_CHAIN} certificates and {MAX_CHAIN_BYTES:,} bytes are kept with a credential")


def load_certificates(data: bytes, what: str) -> list[x509.Certificate]:
    """Certificates from PEM (one or more) or a single DER certificate.

    Raises:
        InvalidArgument: not certificates, or more bytes than a chain may hold.
    """
    if len(data) > 4 * MAX_CHAIN_BYTES:  # PEM is about 4/3 of DER; refuse before parsing
        raise InvalidArgument(f"{what} is {len(data):,} bytes; a certificate chain is at most "
                              f"{MAX_CHAIN_BYTES:,} bytes of DER")
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise InvalidArgument(f"{what} is not an X.509 certificate (PEM or DER): {exc}") from None
