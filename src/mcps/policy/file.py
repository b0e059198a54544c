"""The policy file (TOML): read, validated and compiled once, with errors that name the file, line and rule.

::

    mcps_policy = 1

    [servers.payments]
    default = "deny"                      # a tool no rule names; "allow" only if written
    min_level = 1

    [[servers.payments.tools]]
    match = "transfer_*"
    min_level = 2
    scopes_all = ["payments:write"]
    when = "args.amount <= 1000 || caller.level >= 3"
    rate = ["60/minute per agent", "600/minute per tool"]
    spend = { amount_arg = "amount", currency_arg = "currency", currency = "USD", per_level = {
              "1" = { per_call = 10, per_day = 50 }, "3" = { per_call = 10000, per_day = 100000 } } }
    hooks = [{ hook = "mcps.policy.sanctions:SanctionsScreen", args = ["counterparty"], list = "sdn.csv" }]

SPEC.md §11.2 is the reference for every key. Everything is checked before the policy is used: an unknown key, a
value of the wrong type, a CEL expression that does not type-check, a rate that does not parse, a hook that cannot
be loaded, two rules for one name, a glob rule that an earlier glob already covers — each is an error, and all of
them are reported together by :class:`PolicyFileError`.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from mcps.identity.levels import TrustLevel
from mcps.policy.cel import CelError, Condition
from mcps.policy.engine import IdentityRule, RulePolicy, ServerRules, ToolRule
from mcps.policy.hooks import DEFAULT_HOOK_TIMEOUT, HookRef, load_hook
from mcps.policy.limits import RateLimit, SpendLimit, SpendTier, parse_rate
from mcps.policy.model import Effect
from mcps.policy.source import SourceMap
from mcps.stores.counters import CounterStore

__all__ = ["FORMAT_VERSION", "PolicyFile", "PolicyFileError", "PolicyIssue"]

FORMAT_VERSION: Final = 1
MAX_FILE_BYTES: Final = 4 * 1024 * 1024
_ID: Final = re.compile(r"[A-Za-z0-9_.:/@*?\[\]-]{1,128}")
_IDENTITY_KEYS: Final = ("min_level", "scopes_all", "scopes_any", "agents", "deny_agents", "issuers", "deny_issuers")
_SERVER_KEYS: Final = frozenset({"default", *_IDENTITY_KEYS, "when", "rate", "hooks", "tools"})
_TOOL_KEYS: Final = frozenset({"id", "match", "effect", *_IDENTITY_KEYS, "when", "rate", "spend", "hooks"})
_SPEND_KEYS: Final = frozenset({"amount_arg", "currency_arg", "currency", "decimals", "per_level"})
_TIER_KEYS: Final = frozenset({"per_call", "per_day"})
_TOP_KEYS: Final = frozenset({"mcps_policy", "servers"})

Where = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    line: int | None
    rule: str | None
    message: str


class PolicyFileError(ValueError):
    """A policy file that cannot be used; ``issues`` lists every problem found, each with its line and rule."""

    def __init__(self, source: str, issues: list[PolicyIssue]) -> None:
        self.source = source
        self.issues = issues
        lines = []
        for issue in issues:
            where = f"{source}:{issue.line}" if issue.line is not None else source
            rule = f" [{issue.rule}]" if issue.rule else ""
            lines.append(f"{where}:{rule} {issue.message}")
        super().__init__("\n".join(lines))


class _Invalid(Exception):
    """One problem at ``where`` (a path into the document); collected, never raised out of this module."""

    def __init__(self, where: Where, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


class PolicyFile(RulePolicy):
    """A policy loaded from a file: :meth:`decide`, :meth:`explain` and :meth:`could_allow` as
    :class:`~mcps.policy.engine.RulePolicy`, with its counters in ``counters`` (no default: you choose)."""

    def __init__(self, servers: list[ServerRules], *, counters: CounterStore, source: str) -> None:
        super().__init__(servers, counters=counters)
        self.source = source

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, counters: CounterStore) -> PolicyFile:
        """Read, validate and compile ``path``; :class:`PolicyFileError` lists every problem. Hook options with
        relative paths are relative to the file's directory."""
        file = Path(path)
        with file.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise PolicyFileError(str(file), [PolicyIssue(None, None, f"larger than {MAX_FILE_BYTES} bytes")])
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise PolicyFileError(str(file), [PolicyIssue(None, None, "not UTF-8")]) from None
        return cls.loads(text, counters=counters, source=str(file), base_dir=file.parent)

    @classmethod
    def loads(
        cls, text: str, *, counters: CounterStore, source: str = "<policy>", base_dir: Path | None = None
    ) -> PolicyFile:
        """Like :meth:`load`, from the file's text; ``source`` names it in errors."""
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyFileError(source, [_syntax_issue(str(exc), len(text.splitlines()))]) from None
        compiler = _Compiler(SourceMap(text), base_dir if base_dir is not None else Path.cwd())
        servers = compiler.document(document)
        if compiler.issues:
            raise PolicyFileError(source, compiler.issues)
        return cls(servers, counters=counters, source=source)


def _syntax_issue(message: str, last_line: int) -> PolicyIssue:
    if message.endswith("(at end of document)"):
        return PolicyIssue(last_line, None, f"not valid TOML: {message.removesuffix('(at end of document)').strip()}")
    found = re.search(r"\(at line (\d+), column (\d+)\)$", message)
    if found is None:
        return PolicyIssue(None, None, f"not valid TOML: {message}")
    text = message[: found.start()].strip()
    return PolicyIssue(int(found[1]), None, f"not valid TOML: {text} (column {found[2]})")


class _Compiler:
    def __init__(self, source: SourceMap, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir
        self.issues: list[PolicyIssue] = []

    def report(self, problem: _Invalid, rule: str | None) -> None:
        self.issues.append(PolicyIssue(self.source.line_of(problem.where), rule, problem.message))

    def document(self, document: dict[str, Any]) -> list[ServerRules]:
        try:
            _known(document, _TOP_KEYS, ())
            version = document.get("mcps_policy")
            if type(version) is not int or version != FORMAT_VERSION:
                raise _Invalid(("mcps_policy",), f"mcps_policy = {FORMAT_VERSION} is required (the format version)")
            servers = _table(document.get("servers", {}), ("servers",))
        except _Invalid as problem:
            self.report(problem, None)
            return []
        compiled = []
        for name, body in servers.items():
            server = self.server(name, body)
            if server is not None:
                compiled.append(server)
        return compiled

    def server(self, name: str, body: object) -> ServerRules | None:
        where: Where = ("servers", name)
        try:
            table = _table(body, where)
            _known(table, _SERVER_KEYS, where)
            default = table.get("default", "deny")
            if default not in ("deny", "allow"):
                raise _Invalid((*where, "default"), 'default must be "deny" or "allow"')
            tools_value = table.get("tools", [])
            if not isinstance(tools_value, list):
                raise _Invalid((*where, "tools"), "tools must be an array of tables ([[servers.NAME.tools]])")
        except _Invalid as problem:
            self.report(problem, name)
            return None
        parts = self.common(name, table, where)
        tools = []
        for index, rule in enumerate(tools_value):
            compiled = self.tool(name, index, rule)
            if compiled is not None:
                tools.append(compiled)
        self.check_precedence(name, tools)
        if parts is None:
            return None
        identity, when, rates, hooks = parts
        return ServerRules(
            name, Effect(default), identity, when, rates, hooks, tuple(tools), self.source.line_of(where)
        )  # fmt: skip

    def tool(self, server: str, index: int, body: object) -> ToolRule | None:
        where: Where = ("servers", server, "tools", index)
        rule_id = f"{server}/tools[{index}]"
        try:
            table = _table(body, where)
            match = table.get("match")
            if not isinstance(match, str) or not _ID.fullmatch(match):
                raise _Invalid((*where, "match"), "match must be a tool name or glob (letters, digits, _.:/@-*?[])")
            rule_id = f"{server}/{match}"
            explicit = table.get("id")
            if explicit is not None:
                if not isinstance(explicit, str) or not _ID.fullmatch(explicit):
                    raise _Invalid((*where, "id"), "id must be 1-128 letters, digits or _.:/@-")
                rule_id = explicit
            _known(table, _TOOL_KEYS, where)
            effect = table.get("effect", "allow")
            if effect not in ("allow", "deny"):
                raise _Invalid((*where, "effect"), 'effect must be "allow" or "deny"')
        except _Invalid as problem:
            self.report(problem, rule_id)
            return None
        parts = self.common(rule_id, table, where)
        spend_ok, spend = self.spend(rule_id, table.get("spend"), (*where, "spend"))
        if parts is None or not spend_ok:
            return None
        identity, when, rates, hooks = parts
        return ToolRule(
            rule_id, match, Effect(effect), identity, when, rates, spend, hooks, self.source.line_of(where)
        )  # fmt: skip

    def common(
        self, rule: str, table: Mapping[str, Any], where: Where
    ) -> tuple[IdentityRule, Condition | None, tuple[RateLimit, ...], tuple[HookRef, ...]] | None:
        """Identity, condition, rates and hooks, shared by server and tool rules; ``None`` after reporting."""
        ok = True
        identity = IdentityRule()
        try:
            identity = _identity(table, where)
        except _Invalid as problem:
            self.report(problem, rule)
            ok = False
        when = None
        source = table.get("when")
        if source is not None:
            try:
                if not isinstance(source, str):
                    raise _Invalid((*where, "when"), "when must be a CEL expression (a string)")
                when = Condition.compile(source)
            except CelError as exc:
                self.report(_Invalid((*where, "when"), f"CEL: {exc}"), rule)
                ok = False
            except _Invalid as problem:
                self.report(problem, rule)
                ok = False
        rates: list[RateLimit] = []
        try:
            texts = _strings(table.get("rate", []), (*where, "rate"))
            for index, text in enumerate(texts):
                try:
                    rates.append(parse_rate(f"{rule}#rate[{index}]", text))
                except ValueError as exc:
                    raise _Invalid((*where, "rate"), str(exc)) from None
        except _Invalid as problem:
            self.report(problem, rule)
            ok = False
        hooks = self.hooks(rule, table.get("hooks", []), (*where, "hooks"))
        if hooks is None or not ok:
            return None
        return identity, when, tuple(rates), hooks

    def hooks(self, rule: str, value: object, where: Where) -> tuple[HookRef, ...] | None:
        if not isinstance(value, list):
            self.report(_Invalid(where, "hooks must be an array of tables"), rule)
            return None
        refs = []
        ok = True
        for index, entry in enumerate(value):
            here = (*where, index)
            try:
                options = dict(_table(entry, here))
                path = options.pop("hook", None)
                if not isinstance(path, str) or not path:
                    raise _Invalid(here, "a hook needs hook = 'module:Class'")
                timeout = options.pop("timeout", DEFAULT_HOOK_TIMEOUT)
                if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 60:
                    raise _Invalid(here, "timeout must be a number of seconds in (0, 60]")
                try:
                    hook = load_hook(path, options, base_dir=self.base_dir)
                except ValueError as exc:
                    raise _Invalid(here, f"hook {path}: {exc}") from None
                refs.append(HookRef(f"{rule}#hooks[{index}]", path, hook, float(timeout)))
            except _Invalid as problem:
                self.report(problem, rule)
                ok = False
        return tuple(refs) if ok else None

    def spend(self, rule: str, value: object, where: Where) -> tuple[bool, SpendLimit | None]:
        """``(True, the spend limit or None when there is none)``, or ``(False, None)`` after reporting a problem."""
        if value is None:
            return True, None
        try:
            table = _table(value, where)
            _known(table, _SPEND_KEYS, where)
            amount_arg = table.get("amount_arg")
            if not isinstance(amount_arg, str) or not amount_arg:
                raise _Invalid((*where, "amount_arg"), "amount_arg (the argument that carries the amount) is required")
            currency_arg, currency = table.get("currency_arg"), table.get("currency")
            for key, text in (("currency_arg", currency_arg), ("currency", currency)):
                if text is not None and (not isinstance(text, str) or not text):
                    raise _Invalid((*where, key), f"{key} must be a non-empty string")
            if currency_arg is not None and currency is None:
                raise _Invalid((*where, "currency"), "currency_arg needs currency (the only currency accepted)")
            decimals = table.get("decimals", 2)
            if type(decimals) is not int or not 0 <= decimals <= 8:
                raise _Invalid((*where, "decimals"), "decimals must be an integer 0-8")
            levels = _table(table.get("per_level"), (*where, "per_level"))
            if not levels:
                raise _Invalid((*where, "per_level"), "per_level needs at least one trust level's caps")
            tiers = [_tier(key, body, (*where, "per_level", key), decimals) for key, body in levels.items()]
        except _Invalid as problem:
            self.report(problem, rule)
            return False, None
        tiers.sort(key=lambda tier: tier.level)
        return True, SpendLimit(f"{rule}#spend", amount_arg, currency_arg, currency, decimals, tuple(tiers))

    def check_precedence(self, server: str, tools: list[ToolRule]) -> None:
        """One rule per exact name and per id; no glob rule covered by an earlier glob (it could never apply)."""
        seen_ids: set[str] = set()
        exact: set[str] = set()
        globs: list[ToolRule] = []
        for rule in tools:
            problem = None
            if not rule.is_glob and rule.match in exact:
                problem = f"another rule already names {rule.match!r}"
            elif rule.id in seen_ids:
                problem = f"another rule already has the id {rule.id!r}"
            elif rule.is_glob:
                earlier = next((other for other in globs if _covers(other.match, rule.match)), None)
                if earlier is not None:
                    problem = f"never applies: the earlier rule {earlier.id!r} ({earlier.match!r}) matches every name"
                    problem += " this one matches (globs apply in file order: put the narrower one first)"
                globs.append(rule)
            seen_ids.add(rule.id)
            if not rule.is_glob:
                exact.add(rule.match)
            if problem is not None:
                self.issues.append(PolicyIssue(rule.line, rule.id, problem))


def _covers(earlier: str, later: str) -> bool:
    """Whether glob ``earlier`` surely matches every name ``later`` matches (a conservative test)."""
    if earlier in (later, "*"):
        return True
    head = earlier[:-1]
    if earlier.endswith("*") and not any(char in head for char in "*?["):
        literal = re.split(r"[*?\[]", later, maxsplit=1)[0]
        return literal.startswith(head)
    return False


def _tier(key: str, body: object, where: Where, decimals: int) -> SpendTier:
    if not key.isdigit() or not 0 <= int(key) <= 4:
        raise _Invalid(where, f"per_level keys are trust levels 0-4, not {key!r}")
    table = _table(body, where)
    _known(table, _TIER_KEYS, where)
    caps: list[Decimal | None] = []
    for name in ("per_call", "per_day"):
        value = table.get(name)
        if value is None:
            caps.append(None)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or not math.isfinite(value):
            raise _Invalid((*where, name), f"{name} must be a non-negative number")
        cap = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
        if cap.scaleb(decimals) != cap.scaleb(decimals).to_integral_value():
            raise _Invalid((*where, name), f"{name} has more than {decimals} decimal places")
        caps.append(cap)
    if caps == [None, None]:
        raise _Invalid(where, "a trust level's caps need per_call, per_day or both")
    return SpendTier(int(key), caps[0], caps[1])


def _identity(table: Mapping[str, Any], where: Where) -> IdentityRule:
    level = table.get("min_level")
    if level is not None:
        try:
            level = TrustLevel.parse(level)
        except ValueError:
            raise _Invalid((*where, "min_level"), "min_level must be a trust level, an integer 0-4") from None
    sets = {key: frozenset(_strings(table.get(key, []), (*where, key))) for key in _IDENTITY_KEYS[1:]}
    for allow in ("agents", "issuers"):
        if allow in table and not sets[allow]:
            raise _Invalid((*where, allow), f"{allow} = [] would allow nobody; leave it out to allow anyone")
    return IdentityRule(
        level,
        sets["scopes_all"],
        sets["scopes_any"],
        sets["agents"] if "agents" in table else None,
        sets["deny_agents"],
        sets["issuers"] if "issuers" in table else None,
        sets["deny_issuers"],
    )


def _table(value: object, where: Where) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(where, f"{_name(where)} must be a table")
    return value


def _strings(value: object, where: Where) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise _Invalid(where, f"{_name(where)} must be an array of non-empty strings")
    return list(value)


def _known(table: Mapping[str, Any], allowed: frozenset[str], where: Where) -> None:
    for key in table:
        if key not in allowed:
            raise _Invalid((*where, key), f"unknown key {key!r}; expected one of {', '.join(sorted(allowed))}")


def _name(where: Where) -> str:
    return str(where[-1]) if where and isinstance(where[-1], str) else "this entry"
