"""The sanctions screening hook: OFAC SDN CSV layout, fuzzy matching at a threshold, failing closed.

The lists are small files written by the tests in the layout of OFAC's legacy delimited release (sdn.csv: 12
columns, no header, ``-0-`` for empty; alt.csv: 5 columns). The names are made up.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mcps.core.errors import ErrorCode
from mcps.policy.sanctions import SanctionsScreen, load_sdn, normalise

from .conftest import PolicyFactory
from .helpers import NOW, agent, call

SDN = (
    '101,"EXAMPLE SHIPPING LINES LTD.",-0- ,"TESTPROG",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \n'
    '102,"DOE, John",individual,"TESTPROG",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,"DOB 01 Jan 1970."\n'
    '103,"NORTHWIND TRADING COMPANY",-0- ,"TESTPROG",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \n'
    "\x1a\n"
)
ALT = '103,201,"aka","NORTHWIND TRADERS",-0- \n102,202,"aka","DOE, Johnny",-0- \n'


@pytest.fixture
def lists(tmp_path: Path) -> Path:
    (tmp_path / "sdn.csv").write_text(SDN, encoding="utf-8")
    (tmp_path / "alt.csv").write_text(ALT, encoding="utf-8")
    return tmp_path


def screen(lists: Path, threshold: float = 90, **options: object) -> SanctionsScreen:
    base = {"args": ["counterparty", "beneficiaries"], "list": "sdn.csv", "alt_list": "alt.csv", "threshold": threshold}
    return SanctionsScreen.from_policy({**base, **options}, base_dir=lists)


def test_the_layout_is_read(lists: Path) -> None:
    names = load_sdn(lists / "sdn.csv", lists / "alt.csv")
    assert [(n.entry, n.name) for n in names] == [
        (101, "EXAMPLE SHIPPING LINES LTD."), (102, "DOE, John"), (103, "NORTHWIND TRADING COMPANY"),
        (103, "NORTHWIND TRADERS"), (102, "DOE, Johnny"),
    ]  # fmt: skip


def test_normalise() -> None:
    assert normalise("  Émile   D'Ávila, Jr. ") == "emile d avila jr"
    assert normalise("!!!") == ""


async def test_match_denies(lists: Path) -> None:
    hook = screen(lists)
    for value in ("John Doe", "DOE JOHN", "Example Shipping Lines Ltd", "Jon Doe", "northwind traders"):
        objection = await hook.screen(call(counterparty=value), now=NOW)
        assert objection is not None, value
        assert objection.reason == "refused by compliance screening"
        assert objection.code is ErrorCode.POLICY_DENIED
        assert value not in objection.reason
    objection = await hook.screen(call(counterparty="Jon Doe"), now=NOW)
    assert objection is not None
    assert "SDN entry 102" in objection.detail


async def test_near_miss_passes(lists: Path) -> None:
    hook = screen(lists)
    for value in ("Jane Doe", "Northwind", "Example Shipping", "Acme Corporation", "", "!!!"):
        assert await hook.screen(call(counterparty=value), now=NOW) is None, value
    assert await hook.screen(call(other_argument="John Doe"), now=NOW) is None  # only named arguments are screened


async def test_threshold_is_configurable(lists: Path) -> None:
    assert (await screen(lists, threshold=94).screen(call(counterparty="Jon Doe"), now=NOW)) is None  # scores 93.3
    assert (await screen(lists, threshold=93).screen(call(counterparty="Jon Doe"), now=NOW)) is not None
    assert (await screen(lists, threshold=70).screen(call(counterparty="Jane Doe"), now=NOW)) is not None  # 75


async def test_token_set_scorer_matches_parts_of_names(lists: Path) -> None:
    assert await screen(lists).screen(call(counterparty="Northwind Trading"), now=NOW) is None
    assert await screen(lists, scorer="token_set_ratio").screen(call(counterparty="Northwind Trading"), now=NOW)


async def test_lists_and_numbers_are_screened_other_values_refused(lists: Path) -> None:
    hook = screen(lists)
    assert await hook.screen(call(beneficiaries=["Alice Smith", "John Doe"]), now=NOW) is not None
    assert await hook.screen(call(beneficiaries=["Alice Smith"]), now=NOW) is None
    assert await hook.screen(call(counterparty=12345), now=NOW) is None
    for value in ({"name": "John Doe"}, [["John Doe"]], None, True):
        objection = await hook.screen(call(counterparty=value), now=NOW)
        assert objection is not None
        assert objection.reason == "compliance screening could not be completed"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('101,"ONLY THREE",-0-\n', "3 columns"),
        ('x,"NAME",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \n', "is not a number"),
        ("101,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \n", "name is empty"),
        ("\n\x1a\n", "holds no names"),
    ],
    ids=["columns", "ent-num", "empty-name", "empty-file"],
)
def test_malformed_list_is_a_load_error(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "sdn.csv").write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        SanctionsScreen.from_policy({"args": ["x"], "list": "sdn.csv"}, base_dir=tmp_path)


def test_a_cp1252_list_is_read(tmp_path: Path) -> None:
    line = '7,"CAF\xc9 NOIR S.A.",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \n'
    (tmp_path / "sdn.csv").write_bytes(line.encode("cp1252"))
    assert load_sdn(tmp_path / "sdn.csv")[0].name == "CAFÉ NOIR S.A."


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"list": "sdn.csv"}, "args"),
        ({"args": [], "list": "sdn.csv"}, "at least one argument"),
        ({"args": ["x"]}, "list"),
        ({"args": ["x"], "list": "sdn.csv", "threshold": 0}, "threshold"),
        ({"args": ["x"], "list": "sdn.csv", "scorer": "jaro"}, "scorer"),
    ],
)
def test_bad_options_are_refused(lists: Path, options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SanctionsScreen.from_policy(options, base_dir=lists)


async def test_in_a_policy_a_sanctioned_counterparty_is_denied(lists: Path, policy: PolicyFactory) -> None:
    p = policy(
        "[servers.payments]\n[[servers.payments.tools]]\nmatch = 'transfer_funds'\nrate = ['1/hour']\n"
        "hooks = [{ hook = 'mcps.policy.sanctions:SanctionsScreen', args = ['counterparty'], list = 'sdn.csv',"
        " alt_list = 'alt.csv', threshold = 90 }]\n"
    )
    denied = await p.decide(call(counterparty="Northwind Traders", caller=agent()), now=NOW)
    assert not denied.allowed
    assert denied.code is ErrorCode.POLICY_DENIED
    assert denied.rules[-1] == "payments/transfer_funds#hooks[0]"
    assert (await p.decide(call(counterparty="Northwind Logistics"), now=NOW)).allowed  # the rate was not consumed
