"""Runner for the parsing table: the strict parse refuses each attack with its code, and accepts its control."""

from __future__ import annotations

import pytest

from mcps.core.errors import McpsError
from mcps.core.strict import parse_message

from .cases_parsing import CASES
from .corpus import Case, assert_carries_canary, assert_no_canary, case_params


@pytest.mark.parametrize("case", case_params(CASES))
def test_parsing_attack(case: Case[bytes]) -> None:
    control, attack = case.build(False), case.build(True)
    assert isinstance(parse_message(control), dict)
    assert_carries_canary(attack)
    with pytest.raises(McpsError) as refused:
        parse_message(attack)
    assert refused.value.code is case.code, refused.value.diagnostics()
    assert_no_canary(refused.value)
