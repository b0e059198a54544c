"""Tool signatures, pin hashes, mcps.lock and the comparison (pure), and the ToolGuard in a channel pair."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcps import ErrorCode, McpsError, MemoryNonceStore, PinnedKeys, PrivateKey, PublicKey
from mcps.bindings import ChannelSecurity, SecureChannel, ToolGuard, ToolReport, load_lockfile, save_lockfile
from mcps.core.envelope import sign_message
from mcps.core.tools import (
    TOOL_SIG_KEY,
    Lockfile,
    ServerPins,
    ToolStatus,
    compare_tools,
    dump_lockfile,
    parse_lockfile,
    pin_hash,
    removed_tools,
    sign_tool,
    tool_signing_input,
    verify_tool,
)

VECTORS = Path(__file__).parents[1] / "vectors"
SERVER = "urn:mcps:test:server"
NOW = 1_800_000_000.0
TOOL: dict[str, Any] = {"name": "safe", "description": "Echo.", "inputSchema": {"type": "object"}}


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("generate_tools", VECTORS / "generate_tools.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- vectors --------------------------------------------------------------------------------------------------


def test_committed_vectors_are_what_the_generator_writes() -> None:
    expected = _generator().all_files()
    committed = {path.name: path.read_text(encoding="utf-8") for path in (VECTORS / "tools").glob("*.json")}
    assert committed == expected


@pytest.mark.parametrize("path", sorted((VECTORS / "tools").glob("tool-*.json")), ids=lambda path: path.stem)
def test_tool_vector(path: Path) -> None:
    vector = json.loads(path.read_text(encoding="utf-8"))
    key, tool = PublicKey.from_jwk(vector["public_key"]), vector["tool"]
    assert pin_hash(tool) == vector["pin_hash"]
    if vector["expect"] == "valid":
        assert tool_signing_input(tool).decode("utf-8") == vector["signing_input"]
        verify_tool(tool, key)
    else:
        with pytest.raises(McpsError) as caught:
            verify_tool(tool, key)
        assert caught.value.code.mcps == vector["expect"]


def test_comparison_vector() -> None:
    vector = json.loads((VECTORS / "tools" / "compare-with-lock.json").read_text(encoding="utf-8"))
    lock = parse_lockfile(vector["lockfile"])
    assert dump_lockfile(lock) == vector["lockfile"]
    pins = lock.server(vector["server"])
    findings = compare_tools(pins, vector["tools"], kid=vector["kid"])
    got = [
        {"name": f.name, "status": f.status.value, **({"previous": f.previous} if f.previous else {})} for f in findings
    ]
    assert got == vector["expect"]
    assert removed_tools(pins, findings) == vector["removed"]


# --- signatures and pin hashes --------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_sign_then_verify_and_the_input_is_not_modified(alg: str) -> None:
    key = PrivateKey.generate(alg)
    original = copy.deepcopy(TOOL)
    signed = sign_tool(TOOL, key, now=NOW)
    assert original == TOOL
    verify_tool(signed, key.public_key)
    assert signed["_meta"][TOOL_SIG_KEY].keys() == {"v", "alg", "kid", "iat", "sig"}
    assert signed["_meta"][TOOL_SIG_KEY]["iat"] == int(NOW)


def test_signature_keeps_other_meta_keys_and_covers_them() -> None:
    key = PrivateKey.generate()
    signed = sign_tool({**TOOL, "_meta": {"io.example/x": 1}}, key, now=NOW)
    verify_tool(signed, key.public_key)
    signed["_meta"]["io.example/x"] = 2
    with pytest.raises(McpsError, match="MCPS-008"):
        verify_tool(signed, key.public_key)


def test_empty_meta_and_absent_meta_sign_alike() -> None:
    key = PrivateKey.generate()
    assert tool_signing_input({**TOOL, "_meta": {}}) == tool_signing_input(TOOL)
    verify_tool(sign_tool({**TOOL, "_meta": {}}, key, now=NOW), key.public_key)


@pytest.mark.parametrize(
    "defect",
    [
        lambda block: block.update(extra=1),
        lambda block: block.update(v=2),
        lambda block: block.update(iat=1.5),
        lambda block: block.update(alg="ES256"),
        lambda block: block.update(sig=("B" if block["sig"][0] == "A" else "A") + block["sig"][1:]),
        lambda block: block.pop("kid"),
    ],
    ids=["unknown-member", "v2", "iat-float", "alg-not-the-keys", "bad-sig", "no-kid"],
)
def test_malformed_or_wrong_tool_signature_is_mcps_008(defect: Any) -> None:
    key = PrivateKey.generate()
    signed = sign_tool(TOOL, key, now=NOW)
    defect(signed["_meta"][TOOL_SIG_KEY])
    with pytest.raises(McpsError) as caught:
        verify_tool(signed, key.public_key)
    assert caught.value.code is ErrorCode.TOOL_CHANGED


def test_pin_hash_covers_what_the_model_reads_and_nothing_else() -> None:
    base = pin_hash(TOOL)
    for member, value in [("title", "T"), ("description", "Other."), ("inputSchema", {}), ("annotations", {})]:
        assert pin_hash({**TOOL, member: value}) != base, member
    assert pin_hash({**TOOL, "outputSchema": {"type": "object"}}) != base
    # Not pinned: signatures and other _meta, icons, execution; null is the same as absent.
    signed = sign_tool({**TOOL, "icons": [{"src": "x"}], "execution": {}}, PrivateKey.generate(), now=NOW)
    assert pin_hash(signed) == base
    assert pin_hash({**TOOL, "title": None, "outputSchema": None}) == base


def test_tool_without_a_name_is_refused() -> None:
    with pytest.raises(McpsError) as caught:
        pin_hash({"description": "x"})
    assert caught.value.code is ErrorCode.TOOL_CHANGED


# --- lock file and comparison ---------------------------------------------------------------------------------


def pins_of(*tools: dict[str, Any], kid: str | None = None) -> ServerPins:
    return ServerPins(kid, {tool["name"]: pin_hash(tool) for tool in tools})  # type: ignore[arg-type]


def test_lockfile_round_trip_is_sorted_and_deterministic(tmp_path: Path) -> None:
    key = PrivateKey.generate()
    b_tool, a_tool = {**TOOL, "name": "b"}, {**TOOL, "name": "a"}
    lock = Lockfile({"urn:z": pins_of(b_tool, a_tool, kid=key.kid), "urn:a": pins_of(TOOL)})
    text = dump_lockfile(lock)
    assert text.index('"urn:a"') < text.index('"urn:z"')
    assert text.index('"a":') < text.index('"b":')
    assert text.endswith("}\n")
    assert parse_lockfile(text) == lock
    save_lockfile(lock, tmp_path / "mcps.lock")
    assert (tmp_path / "mcps.lock").read_text(encoding="utf-8") == text
    assert load_lockfile(tmp_path / "mcps.lock") == lock


def test_missing_lock_file_is_an_error_naming_it(tmp_path: Path) -> None:
    """Regression: a missing (say, mistyped) lock file read as an empty lock, so every tool showed as new."""
    absent = tmp_path / "mcps.lokc"
    with pytest.raises(FileNotFoundError) as caught:
        load_lockfile(absent)
    assert caught.value.filename == str(absent)
    assert "mcps pin" in str(caught.value)
    assert load_lockfile(absent, create=True) == Lockfile()  # asked for: a new, empty lock
    assert not absent.exists()  # nothing written until the caller saves it


@pytest.mark.parametrize(
    "text",
    [
        '{"mcps_lock": 2, "servers": {}}',
        '{"mcps_lock": 1, "servers": {}, "extra": 1}',
        '{"mcps_lock": 1, "servers": {"s": {"tools": {"a": "not-a-hash"}}}}',
        '{"mcps_lock": 1, "servers": {"s": {"kid": 1, "tools": {}}}}',
        '{"mcps_lock": 1, "servers": {"s": {"tools": {}, "tools": {}}}}',
        "[]",
    ],
    ids=["version", "extra-member", "bad-pin", "bad-kid", "duplicate-key", "not-object"],
)
def test_malformed_lockfile_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"mcps\.lock"):
        parse_lockfile(text)


def test_compare_classifies_each_tool() -> None:
    kept, changed, old = {**TOOL, "name": "kept"}, {**TOOL, "name": "changed"}, {**TOOL, "name": "old"}
    gone = {**TOOL, "name": "gone", "description": "Gone."}
    pins = pins_of(kept, changed, old, gone)
    listed = [
        kept,
        {**changed, "description": "Evil."},
        {**old, "name": "new_name"},
        {**TOOL, "name": "fresh", "description": "New."},
    ]
    findings = compare_tools(pins, listed)
    assert [(f.name, f.status, f.previous) for f in findings] == [
        ("kept", ToolStatus.PINNED, None),
        ("changed", ToolStatus.CHANGED, None),
        ("new_name", ToolStatus.RENAMED, "old"),
        ("fresh", ToolStatus.NEW, None),
    ]
    assert removed_tools(pins, findings) == ["gone"]


def test_a_copy_under_a_new_name_is_new_not_a_rename() -> None:
    pins = pins_of(TOOL)
    findings = compare_tools(pins, [TOOL, {**TOOL, "name": "copy"}])
    assert [f.status for f in findings] == [ToolStatus.PINNED, ToolStatus.NEW]


def test_duplicate_names_are_invalid_and_another_signer_is_a_change() -> None:
    findings = compare_tools(pins_of(TOOL), [TOOL, {**TOOL, "description": "Shadow."}])
    assert [f.status for f in findings] == [ToolStatus.INVALID, ToolStatus.INVALID]
    key, other = PrivateKey.generate(), PrivateKey.generate()
    findings = compare_tools(pins_of(TOOL, kid=key.kid), [TOOL], kid=other.kid)
    assert [f.status for f in findings] == [ToolStatus.CHANGED]


# --- the guard inside a signed channel pair -------------------------------------------------------------------


class Pair:
    def __init__(self, guard: ToolGuard) -> None:
        self.agent, self.server_key = PrivateKey.generate(), PrivateKey.generate()
        self.client = SecureChannel(
            ChannelSecurity(
                key=self.agent, trusted=PinnedKeys([self.server_key.public_key]), nonces=MemoryNonceStore(), clock=clock
            ),
            peer=SERVER,
            tools=guard,
        )
        self.server = SecureChannel(
            ChannelSecurity(
                key=self.server_key,
                identity=SERVER,
                trusted=PinnedKeys([self.agent.public_key]),
                nonces=MemoryNonceStore(),
                clock=clock,
            ),
            peer=None,
        )
        self.next_id = 0

    async def request(self, method: str, params: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        """Send a request through both channels and return what the client delivers to its SDK."""
        self.next_id += 1
        signed = self.client.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        assert signed is not None
        assert (await self.server.receive(signed)).deliver is not None
        answer = self.server.send({"jsonrpc": "2.0", "id": self.next_id, "result": result})
        assert answer is not None
        delivered = (await self.client.receive(answer)).deliver
        assert delivered is not None
        return delivered

    async def notify(self, method: str) -> None:
        signed = self.server.send({"jsonrpc": "2.0", "method": method, "params": {}})
        assert signed is not None
        assert (await self.client.receive(signed)).deliver is not None


def clock() -> float:
    return NOW


def names(delivered: dict[str, Any]) -> list[str]:
    return [tool["name"] for tool in delivered["result"]["tools"]]


def call(pair: Pair, name: str) -> None:
    pair.client.send({"jsonrpc": "2.0", "id": 999, "method": "tools/call", "params": {"name": name}})


async def test_server_signs_listed_tools_and_the_guard_lets_pinned_ones_through() -> None:
    reports: list[ToolReport] = []
    other = {**TOOL, "name": "other"}
    pair = Pair(ToolGuard(pins_of(TOOL, other), on_report=reports.append))
    delivered = await pair.request("tools/list", {}, {"tools": [TOOL, other]})
    assert names(delivered) == ["safe", "other"]
    for tool in delivered["result"]["tools"]:
        verify_tool(tool, pair.server_key.public_key)
    assert reports[-1].clean
    call(pair, "safe")  # allowed: no exception


async def test_results_of_other_methods_are_not_tool_signed() -> None:
    pair = Pair(ToolGuard(None))
    delivered = await pair.request("prompts/list", {}, {"prompts": [], "tools": [TOOL]})
    assert TOOL_SIG_KEY not in delivered["result"]["tools"][0].get("_meta", {})


async def test_changed_tool_is_removed_and_its_call_refused_before_sending(caplog: pytest.LogCaptureFixture) -> None:
    pair = Pair(ToolGuard(pins_of(TOOL)))
    delivered = await pair.request("tools/list", {}, {"tools": [{**TOOL, "description": "Evil."}]})
    assert names(delivered) == []
    with pytest.raises(McpsError) as caught:
        call(pair, "safe")
    assert caught.value.code is ErrorCode.TOOL_CHANGED
    assert "blocked tool 'safe': changed [MCPS-008]" in caplog.text


async def test_new_tool_is_held_unless_the_policy_approves() -> None:
    seen: list[str] = []
    held = Pair(ToolGuard(pins_of(TOOL)))
    assert names(await held.request("tools/list", {}, {"tools": [TOOL, {**TOOL, "name": "new"}]})) == ["safe"]
    approving = Pair(ToolGuard(pins_of(TOOL), approve=lambda finding: seen.append(finding.name) or True))
    assert names(await approving.request("tools/list", {}, {"tools": [TOOL, {**TOOL, "name": "new"}]})) == [
        "safe",
        "new",
    ]
    assert seen == ["new"]
    call(approving, "new")


async def test_list_changed_holds_calls_until_listed_again() -> None:
    pair = Pair(ToolGuard(pins_of(TOOL)))
    await pair.request("tools/list", {}, {"tools": [TOOL]})
    await pair.notify("notifications/tools/list_changed")
    with pytest.raises(McpsError, match="list tools again"):
        call(pair, "safe")
    await pair.request("tools/list", {}, {"tools": [TOOL]})
    call(pair, "safe")


async def test_paged_listing_reports_removed_tools_at_its_end() -> None:
    reports: list[ToolReport] = []
    second, gone = {**TOOL, "name": "second"}, {**TOOL, "name": "gone"}
    pair = Pair(ToolGuard(pins_of(TOOL, second, gone), on_report=reports.append))
    await pair.request("tools/list", {}, {"tools": [TOOL], "nextCursor": "p2"})
    assert not reports[-1].complete
    assert reports[-1].removed == ()
    await pair.request("tools/list", {"cursor": "p2"}, {"tools": [second]})
    assert reports[-1].complete
    assert reports[-1].removed == ("gone",)
    call(pair, "safe")
    call(pair, "second")


async def test_malformed_tool_list_fails_the_request_locally() -> None:
    pair = Pair(ToolGuard(None))
    delivered = await pair.request("tools/list", {}, {"tools": "nope"})
    assert delivered["error"]["data"] == {"mcps_code": "MCPS-008"}


# --- session pins: the default guard of a client without tools= ------------------------------------------------


async def listing_answered_with(pair: Pair, tools: list[dict[str, Any]]) -> dict[str, Any]:
    """A tools/list answered with exactly ``tools`` (signed or not), in a result the server key signs."""
    pair.next_id += 1
    signed = pair.client.send({"jsonrpc": "2.0", "id": pair.next_id, "method": "tools/list", "params": {}})
    assert signed is not None
    result = {"jsonrpc": "2.0", "id": pair.next_id, "result": {"tools": tools}}
    request_sig = signed["params"]["_meta"]["mcps/sig"]["sig"]
    answer = sign_message(result, pair.server_key, audience=pair.agent.kid, now=NOW, in_reply_to=request_sig)
    delivered = (await pair.client.receive(answer)).deliver
    assert delivered is not None
    return delivered


def statuses(report: ToolReport) -> dict[str, ToolStatus]:
    return {decision.name: decision.finding.status for decision in report.decisions}


async def test_session_pins_accept_the_first_listing_but_not_unsigned_tools(caplog: pytest.LogCaptureFixture) -> None:
    reports: list[ToolReport] = []
    pair = Pair(ToolGuard.session_pins(SERVER, on_report=reports.append))
    assert caplog.text.count(f"tool definitions of {SERVER} are pinned for this session only") == 1
    assert "mcps pin" in caplog.text
    with pytest.raises(McpsError) as caught:
        call(pair, "safe")
    assert caught.value.code is ErrorCode.TOOL_CHANGED
    assert "list tools before calling" in caught.value.diagnostics()
    unsigned, foreign = {**TOOL, "name": "unsigned"}, {**TOOL, "name": "foreign"}
    listed = [
        sign_tool(TOOL, pair.server_key, now=NOW),
        unsigned,
        sign_tool(foreign, PrivateKey.generate(), now=NOW),
    ]
    assert names(await listing_answered_with(pair, listed)) == ["safe"]
    assert statuses(reports[-1]) == {
        "safe": ToolStatus.NEW,
        "unsigned": ToolStatus.INVALID,
        "foreign": ToolStatus.INVALID,
    }
    call(pair, "safe")
    for refused in ("unsigned", "foreign"):
        with pytest.raises(McpsError, match="MCPS-008"):
            call(pair, refused)


async def test_session_pins_compare_later_listings_as_a_lock_does() -> None:
    reports: list[ToolReport] = []
    pair = Pair(ToolGuard.session_pins(SERVER, on_report=reports.append))
    kept, old = {**TOOL, "name": "kept"}, {**TOOL, "name": "old", "description": "Old."}
    assert names(await pair.request("tools/list", {}, {"tools": [TOOL, kept, old]})) == ["safe", "kept", "old"]
    await pair.notify("notifications/tools/list_changed")
    fresh = {**TOOL, "name": "fresh", "description": "New."}
    relisted = [{**TOOL, "description": "Evil."}, kept, {**old, "name": "renamed"}, fresh]
    assert names(await pair.request("tools/list", {}, {"tools": relisted})) == ["kept"]
    assert statuses(reports[-1]) == {
        "safe": ToolStatus.CHANGED,
        "kept": ToolStatus.PINNED,
        "renamed": ToolStatus.RENAMED,
        "fresh": ToolStatus.NEW,
    }
    call(pair, "kept")
    for refused in ("safe", "renamed", "fresh", "old"):
        with pytest.raises(McpsError, match="MCPS-008"):
            call(pair, refused)


async def test_session_pins_learn_until_the_first_listing_is_complete() -> None:
    reports: list[ToolReport] = []
    pair = Pair(ToolGuard.session_pins(SERVER, on_report=reports.append))
    second, third = {**TOOL, "name": "second"}, {**TOOL, "name": "third", "description": "Third."}
    assert names(await pair.request("tools/list", {}, {"tools": [TOOL], "nextCursor": "p2"})) == ["safe"]
    # A listing restarted before the first one completed cannot redefine what it already saw.
    evil = {**TOOL, "description": "Evil."}
    assert names(await pair.request("tools/list", {}, {"tools": [evil], "nextCursor": "p2"})) == []
    assert statuses(reports[-1]) == {"safe": ToolStatus.CHANGED}
    # Still learning until a listing is complete; a copy of a tool from an earlier page is new, not a rename.
    assert names(await pair.request("tools/list", {"cursor": "p2"}, {"tools": [second]})) == ["second"]
    assert reports[-1].complete
    # From now on a tool not seen in the first listing is new, and held.
    assert names(await pair.request("tools/list", {}, {"tools": [TOOL, second, third]})) == ["safe", "second"]
    assert statuses(reports[-1]) == {"safe": ToolStatus.PINNED, "second": ToolStatus.PINNED, "third": ToolStatus.NEW}


# --- a name listed twice is blocked in every order (issue 9 §1.4) -------------------------------------------------


async def page_answered_with(
    pair: Pair, tools: list[dict[str, Any]], cursor: str | None, next_cursor: str | None
) -> Any:
    """One page of a tools/list (``cursor`` ``None``: the first page), answered with exactly ``tools``."""
    pair.next_id += 1
    params = {} if cursor is None else {"cursor": cursor}
    signed = pair.client.send({"jsonrpc": "2.0", "id": pair.next_id, "method": "tools/list", "params": params})
    assert signed is not None
    result: dict[str, Any] = {"tools": tools, **({"nextCursor": next_cursor} if next_cursor else {})}
    request_sig = signed["params"]["_meta"]["mcps/sig"]["sig"]
    answer = sign_message(
        {"jsonrpc": "2.0", "id": pair.next_id, "result": result},
        pair.server_key,
        audience=pair.agent.kid,
        now=NOW,
        in_reply_to=request_sig,
    )
    delivered = (await pair.client.receive(answer)).deliver
    assert delivered is not None
    return delivered


def refused_locally(pair: Pair, name: str) -> bool:
    """Whether a call to ``name`` is refused before sending (and then with MCPS-008)."""
    try:
        call(pair, name)
    except McpsError as error:
        return error.code is ErrorCode.TOOL_CHANGED
    return False


@pytest.mark.parametrize("guard_kind", ["lock", "session-pins"])
@pytest.mark.parametrize("order", ["signed-first", "unsigned-first"])
async def test_tool_name_listed_twice_with_one_unsigned_twin_is_blocked_in_either_order(
    guard_kind: str, order: str
) -> None:
    """Regression: with the unsigned twin first the signed twin was callable; with it second, shown but refused."""
    other = {**TOOL, "name": "other"}
    guard = ToolGuard.session_pins(SERVER) if guard_kind == "session-pins" else ToolGuard(pins_of(TOOL, other))
    pair = Pair(guard)
    twins = [sign_tool(TOOL, pair.server_key, now=NOW), {**TOOL, "description": "Shadow."}]
    listed = [*(twins if order == "signed-first" else twins[::-1]), sign_tool(other, pair.server_key, now=NOW)]
    assert "safe" not in names(await page_answered_with(pair, listed, None, None))
    assert "safe" not in guard.allowed
    assert refused_locally(pair, "safe")
    assert not refused_locally(pair, "other")  # the rest of the listing is unaffected


_ENTRIES = st.lists(st.sampled_from(["signed-same", "signed-other", "unsigned", "foreign-key"]), min_size=1, max_size=3)


@settings(max_examples=150, deadline=None)
@given(_ENTRIES, st.randoms(use_true_random=False), st.integers(min_value=1, max_value=4), st.booleans())
def test_duplicated_name_is_blocked_in_every_listing_and_page_order(
    twins: list[str], random: Any, pages: int, session_pins: bool
) -> None:
    """Any number of twins of ``safe`` (signed alike, signed differently, unsigned, signed by another key), in any
    order, split over any pages of one listing: ``safe`` ends blocked; the other tools are unaffected."""
    others = [{**TOOL, "name": name} for name in ("b", "c")]
    guard = ToolGuard.session_pins(SERVER) if session_pins else ToolGuard(pins_of(TOOL, *others))
    pair = Pair(guard)
    stranger = PrivateKey.generate()
    variants = {
        "signed-same": lambda: sign_tool(TOOL, pair.server_key, now=NOW),
        "signed-other": lambda: sign_tool({**TOOL, "description": "Shadow."}, pair.server_key, now=NOW),
        "unsigned": lambda: {**TOOL, "description": "Shadow."},
        "foreign-key": lambda: sign_tool(TOOL, stranger, now=NOW),
    }
    listing = [
        sign_tool(TOOL, pair.server_key, now=NOW),
        *(variants[twin]() for twin in twins),
        *(sign_tool(tool, pair.server_key, now=NOW) for tool in others),
    ]
    random.shuffle(listing)
    cuts = sorted(random.sample(range(1, len(listing)), min(pages - 1, len(listing) - 1)))
    split = [listing[start:end] for start, end in zip([0, *cuts], [*cuts, len(listing)], strict=True)]

    async def scenario() -> list[list[str]]:
        shown = []
        for index, page in enumerate(split):
            cursor = None if index == 0 else f"p{index}"
            next_cursor = f"p{index + 1}" if index + 1 < len(split) else None
            shown.append(names(await page_answered_with(pair, page, cursor, next_cursor)))
        return shown

    shown = anyio.run(scenario)
    assert "safe" not in guard.allowed
    assert refused_locally(pair, "safe")
    assert not refused_locally(pair, "b")
    assert not refused_locally(pair, "c")
    pages_with_safe = [index for index, page in enumerate(split) if any(tool["name"] == "safe" for tool in page)]
    if len(pages_with_safe) == 1:  # all twins on one page: the application never sees the name
        assert all("safe" not in page for page in shown)
