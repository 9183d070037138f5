"""Australian Business Number: the one place the ABN rule lives."""

from mcagent.agent.domain.errors import InvalidArgument

_WEIGHTS = (10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19)


def normalise_abn(text: str) -> str:
    """Validate an ABN and return its 11 digits.

    Spaces are accepted in the input (``51 824 753 556``). The check: subtract 1 from the
    first digit, weight the digits by 10, 1, 3, ..., 19; the sum must divide by 89.

    Raises:
        InvalidArgument: not 11 digits, or the checksum fails.
    """
    digits = text.replace(" ", "")
    if len(digits) != 11 or not digits.isascii() or not digits.isdigit():
        raise InvalidArgument(f"ABN {text!r} must be 11 digits (spaces allowed)")
    values = [int(d) for d in digits]
    values[0] -= 1
    if sum(w * v for w, v in zip(_WEIGHTS, values, strict=True)) % 89 != 0:
        raise InvalidArgument(f"ABN {text!r} is not valid: its checksum does not match")
    return digits
