import pytest
from mcagent.hsm.base import KeyType, SignatureAlgorithm
from mcagent.hsm.errors import InvalidURI
from mcagent.hsm.uri import FileURI, Pkcs11URI


def test_pkcs11_uri_round_trip_with_binary_id_and_odd_label():
    uri = Pkcs11URI(token="my token", key_id=b"\x00\xffA;", label="cred;1/é", module_path="/usr/lib/x.so")
    text = str(uri)
    assert text.startswith("pkcs11:token=my%20token;id=%00%ff%41%3b;object=cred%3B1%2F%C3%A9")
    assert Pkcs11URI.parse(text) == uri


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("file:///x", "not a pkcs11: URI"),
        ("pkcs11:id=%01", "names no token"),
        ("pkcs11:token=a;token=b", "repeats attribute"),
        ("pkcs11:token=a;pin-value=1234", "must not carry a PIN"),
        ("pkcs11:token=a?pin-source=/etc/pin", "must not carry a PIN"),
    ],
)
def test_bad_pkcs11_uris(text, message):
    with pytest.raises(InvalidURI, match=message):
        Pkcs11URI.parse(text)


def test_file_uri_round_trip():
    uri = FileURI("/var/lib/mc agent/keys.mcks", "abc#1")
    assert FileURI.parse(str(uri)) == uri


@pytest.mark.parametrize("text", ["file:relative/path", "file://remote/x", "pkcs11:token=a"])
def test_bad_file_uris(text):
    with pytest.raises(InvalidURI):
        FileURI.parse(text)


def test_algorithm_fit():
    assert {a for a in SignatureAlgorithm if a.fits(KeyType.EC_P256)} == {SignatureAlgorithm.ECDSA_SHA256}
    assert SignatureAlgorithm.ECDSA_SHA256 not in {a for a in SignatureAlgorithm if a.fits(KeyType.RSA_3072)}


def test_digest_info_prefixes_match_asn1():
    from asn1crypto.algos import DigestAlgorithm, DigestInfo

    pairs = ((SignatureAlgorithm.RSA_PKCS1_SHA256, "sha256"), (SignatureAlgorithm.RSA_PKCS1_SHA1, "sha1"))
    for algorithm, name in pairs:
        digest = algorithm.hash.digest(b"x")
        info = DigestInfo({"digest_algorithm": DigestAlgorithm({"algorithm": name}), "digest": digest}).dump()
        assert algorithm.hash.digest_info_prefix + digest == info
