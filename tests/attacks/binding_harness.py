"""What every binding runner shares: the liveness call, and the checks of a control and of an attack's outcome
against the replies a surface wrote (in the order it wrote them)."""

from __future__ import annotations

import json
from typing import Any

from mcps.bindings.http import http_status

from .cases_bindings import ECHO_ID, Delivered, Dropped, Frames, Outcome, Refused, next_id, signed_call
from .corpus import Case, assert_carries_canary, assert_no_canary
from .pki import SERVER, dumps

TIMEOUT = 15.0


def liveness() -> tuple[str, bytes]:
    """A fresh call sent after every attack: its answer proves the server lives on."""
    request_id = next_id()
    return request_id, dumps(signed_call(request_id))


def outcome(case: Case[Frames], surface: str) -> Outcome:
    expected: dict[str, Outcome] = case.expect
    return expected.get(surface, expected.get("*"))  # type: ignore[return-value]


def awaited_ids(case: Case[Frames], surface: str, attack: Any, live_id: str) -> tuple[str, ...]:
    """The ids whose answers a run waits for: the liveness call, and a delivered attack's own call (it may be
    answered after the liveness call: the server handles requests concurrently)."""
    delivered = isinstance(outcome(case, surface), Delivered) and isinstance(attack.attack_id, str)
    return (live_id, attack.attack_id) if delivered else (live_id,)


def answers(replies: list[dict[str, Any]], request_id: object) -> list[dict[str, Any]]:
    return [reply for reply in replies if "method" not in reply and reply.get("id") == request_id]


def text_of(result: dict[str, Any]) -> str:
    return str(result["result"]["content"][0]["text"])


def check_answered(replies: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    """The one answer to ``request_id``: a result from the tool, not an error."""
    [answer] = answers(replies, request_id)
    assert "result" in answer, answer
    assert not answer["result"].get("isError"), answer
    return answer


def check_attack(
    case: Case[Frames],
    surface: str,
    attack: Frames,
    replies: list[dict[str, Any]],
    live_id: str,
    *,
    statuses: dict[int, int] | None = None,
) -> None:
    """``replies``: everything the surface wrote after the attack's last frame, up to the liveness answer.
    ``statuses`` (HTTP): status of each reply by its position."""
    assert_carries_canary(attack.frames[-1])
    check_answered(replies, live_id)
    expected = outcome(case, surface)
    about_attack = [reply for reply in replies if reply.get("id") != live_id]
    if isinstance(expected, Dropped):
        assert about_attack == [], f"the attack was answered: {about_attack}"
        return
    if isinstance(expected, Delivered):
        [answer] = answers(about_attack, attack.attack_id)
        assert "result" in answer, answer
        assert text_of(answer) == expected.text, f"the tool received: {text_of(answer)}"
        return
    assert isinstance(expected, Refused)
    refusals = [reply for reply in about_attack if "error" in reply]
    assert len(refusals) == 1, f"expected one refusal, got {about_attack}"
    [refusal] = refusals
    assert refusal["error"]["data"]["mcps_code"] == expected.code.mcps, refusal
    assert refusal["error"]["code"] == expected.code.jsonrpc
    assert refusal["error"]["data"]["mcps/sig"]["kid"] == SERVER.kid  # signed by the server
    assert refusal["id"] == (attack.attack_id if expected.id is ECHO_ID else expected.id)
    if statuses is not None:
        assert statuses[replies.index(refusal)] == http_status(refusal)
    assert_no_canary(refusal)


def parse_line(line: bytes) -> dict[str, Any]:
    value = json.loads(line)
    assert isinstance(value, dict)
    return value
