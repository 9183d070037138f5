import pytest
from mcagent.agent.domain.abn import normalise_abn
from mcagent.agent.domain.errors import InvalidArgument


@pytest.mark.parametrize("text", ["51 824 753 556", "51824753556", " 51 824 753 556 "])
def test_valid_abn_with_or_without_spaces(text):
    assert normalise_abn(text) == "51824753556"


def test_bad_checksum_is_refused_with_reason():
    with pytest.raises(InvalidArgument, match="checksum"):
        normalise_abn("12 345 678 901")


@pytest.mark.parametrize("text", ["5182475355", "518247535561", "5182475355a", "", "٥١٨٢٤٧٥٣٥٥٦"])
def test_not_eleven_ascii_digits_is_refused(text):
    with pytest.raises(InvalidArgument, match="must be 11 digits"):
        normalise_abn(text)
