"""The certificate rules that need no daemon: CRL membership by issuer, and the publication flags."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from mcagent.agent.domain import certificates
from mcagent.agent.domain.errors import InvalidArgument

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def ca():
    root_key = rsa.generate_private_key(65537, 2048)
    issuing_key = rsa.generate_private_key(65537, 2048)
    root = certificates.make_root(root_key, NOW)
    return issuing_key, certificates.make_issuing(issuing_key, root_key, root, NOW), root


def _leaf(issuer_key, issuer, publication=None):
    return certificates.issue_leaf(issuer_key=issuer_key, issuer=issuer,
                                   public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
                                   abn="51824753556", name="server-1", now=NOW, publication=publication)


def test_issued_by_needs_both_the_name_and_the_signature(ca):
    issuing_key, issuing, root = ca
    assert certificates.issued_by(_leaf(issuing_key, issuing), issuing)
    # Another key under our issuing CA's very name (make_issuing names every agent's CA alike).
    other_key = rsa.generate_private_key(65537, 2048)
    impostor = certificates.make_issuing(other_key, other_key, root, NOW)
    assert impostor.subject == issuing.subject
    assert not certificates.issued_by(_leaf(other_key, impostor), issuing)
    # Our key, another name: not a certificate this CA issued either.
    assert not certificates.issued_by(_leaf(issuing_key, root), issuing)


def test_publication_extensions_only_when_configured(ca):
    issuing_key, issuing, _ = ca
    plain = _leaf(issuing_key, issuing)
    assert {type(e.value) for e in plain.extensions}.isdisjoint(
        {x509.CRLDistributionPoints, x509.CertificatePolicies})
    published = _leaf(issuing_key, issuing, certificates.Publication(crl_url="https://crl.example/crl",
                                                                    policy_oid="1.2.36.1.333.1"))
    points = published.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    assert not points.critical and points.value[0].full_name == [x509.UniformResourceIdentifier(
        "https://crl.example/crl")]
    policies = published.extensions.get_extension_for_class(x509.CertificatePolicies)
    assert not policies.critical and [p.policy_identifier.dotted_string for p in policies.value] == ["1.2.36.1.333.1"]


@pytest.mark.parametrize("url", ["ftp://host/crl", "http:///crl", "crl", "http://host/a b", "http://host:0x1/crl",
                                 "http://hôst/crl"])
def test_bad_crl_urls(url):
    with pytest.raises(InvalidArgument, match="CRL URL"):
        certificates.Publication(crl_url=url)


@pytest.mark.parametrize("oid", ["", "1", "1.", "3.1", "1.02.3", "1.2.x", " 1.2"])
def test_bad_policy_oids(oid):
    with pytest.raises(InvalidArgument, match="certificate policy"):
        certificates.Publication(policy_oid=oid)
