"""The rule framework: what a rule sees (:class:`Facts`), what it concludes
(:class:`Outcome`), and the registry of rules by id (:data:`RULES`).

Each rule is one small function, testable alone in the style of OpenStack's
format_inspector safety checks: ``RULES[id].func(Facts(info), **parameters)``.
Every number a rule compares with is a keyword parameter that the profile
supplies (the engine reads the parameter names from the signature, so a
profile naming an unknown one is an error). A function returns ``fail`` for a
violation; the profile's severity decides whether that is reported as
``fail`` or ``warn``. ``unknown`` means the image should show the fact but
could not be read far enough (the message says why), ``manual`` that no image
file can show it.

A rule that judges the Windows installation says so (``needs_windows=True``):
it then receives the ``windows`` object as its second argument, and the
framework answers ``unknown`` with the reason, once for all such rules, when
there is none. ``auto_fixed`` says whether the cloud repairs the rule itself
when it registers the image with automatic configuration (Huawei restores the
IDE driver, the PV driver keys and DHCP; import-rules.md section 1.3).
"""

from __future__ import annotations

from imgscan.vocabulary import GUEST, UNKNOWN

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    RuleFunc = Callable[..., "Outcome"]

GiB = 1 << 30


class Outcome:
    """What one rule concluded: status, a message for people, the evidence it used
    (fact path -> ``{"value": ..., "from": where the fact was read}``) and a remedy."""

    __slots__ = ("evidence", "message", "remedy", "status")

    def __init__(self, status: str, message: str, evidence: dict[str, Any] | None = None,
                 remedy: str | None = None) -> None:
        self.status = status
        self.message = message
        self.evidence: dict[str, Any] = evidence or {}
        self.remedy = remedy

    def __repr__(self) -> str:
        return f"Outcome({self.status!r}, {self.message!r})"


class Facts:
    """The ``info`` object a rule judges, plus what only the user can tell
    (``storage_class`` from ``--storage-class``)."""

    def __init__(self, info: Mapping[str, Any], storage_class: str | None = None) -> None:
        self.info = info
        self.storage_class = storage_class

    @property
    def windows(self) -> Mapping[str, Any] | None:
        w = self.info.get("windows")
        return w if w else None

    def windows_source(self, fact: str) -> str | None:
        """Where the windows object says ``fact`` was read (its ``evidence`` entry)."""
        w = self.windows or {}
        source = (w.get("evidence") or {}).get(fact)
        return str(source) if source else None

    def ev(self, fact: str, value: Any = None, source: str | None = None) -> dict[str, Any]:
        """One evidence entry; ``windows.X`` facts default to the windows object's
        own value and evidence, other facts to the top-level ``info`` key."""
        if fact.startswith("windows."):
            key = fact.split(".")[1]
            if value is None:
                value = (self.windows or {}).get(key)
            source = source or self.windows_source(key)
        elif value is None:
            value = self.info.get(fact)
        return {fact: {"value": value, "from": source}}

    def unreadable(self) -> Outcome | None:
        """``unknown`` with the reason when the guest could not be read far enough to
        know whether a Windows installation is there; None when it was read."""
        info = self.info
        if info.get("encrypted"):
            return Outcome(UNKNOWN, f"the container is encrypted ({info.get('encryption')}): "
                           "the guest disk cannot be read",
                           {**self.ev("encrypted", True, "container header"),
                            **self.ev("encryption", source="container header")})
        if info.get("partition_table") == "unknown":
            return Outcome(UNKNOWN, "the guest disk could not be read (partition table unknown)",
                           self.ev("partition_table", source="sector 0 / GPT header"))
        for p in info.get("partitions") or []:
            encrypted = p.get("encrypted") or p.get("filesystem") in ENCRYPTED_FILESYSTEMS
            if encrypted and self.windows is None:
                return Outcome(UNKNOWN, f"partition {p['number']} is encrypted "
                               f"({p.get('filesystem')}): a Windows installation in it "
                               "cannot be seen",
                               self.ev(f"partitions[{p['number']}].filesystem",
                                       p.get("filesystem"), "volume signature"))
        if self.windows is None:
            # the contract's findings, each with the stage that made it (imgscan.contract)
            stages = info.get("finding_stages") or []
            for f, stage in zip(info.get("findings") or [], stages, strict=False):
                if stage == GUEST:
                    return Outcome(UNKNOWN, f"Windows inspection failed: {f['message']}",
                                   self.ev("findings", [f], "windows inspection"))
        return None

    def need_windows(self) -> Mapping[str, Any] | Outcome:
        """The windows object, or the ``unknown`` outcome of a rule that needs it."""
        w = self.windows
        if w is not None:
            return w
        return self.unreadable() or Outcome(
            UNKNOWN, "no Windows installation was found (see system-disk-present), so this "
            "cannot be judged", self.ev("windows", None, "NTFS volumes searched for \\Windows"))


ENCRYPTED_FILESYSTEMS = frozenset({"BitLocker", "crypto_LUKS"})


class Rule:
    """A rule id bound to its function, what it checks, and whether the cloud fixes it.

    ``func(facts, **parameters)`` evaluates it; ``body`` is the function as written
    (for a rule that needs Windows, ``func`` first makes sure there is an installation).
    """

    __slots__ = ("auto_fixed", "body", "func", "id", "summary")

    def __init__(self, id: str, body: RuleFunc, summary: str, auto_fixed: bool,
                 needs_windows: bool) -> None:
        self.id = id
        self.body = body
        self.func = _with_windows(body) if needs_windows else body
        self.summary = summary
        self.auto_fixed = auto_fixed

    def parameters(self) -> tuple[str, ...]:
        """The keyword parameters a profile must supply (from the signature)."""
        code = self.body.__code__
        return code.co_varnames[code.co_argcount:code.co_argcount + code.co_kwonlyargcount]


def _with_windows(body: RuleFunc) -> RuleFunc:
    """``body(facts, windows, **parameters)``, or the ``unknown`` outcome saying why
    there is no ``windows`` object to judge."""
    def run(f: Facts, **parameters: Any) -> Outcome:
        w = f.need_windows()
        if isinstance(w, Outcome):
            return w
        return body(f, w, **parameters)
    return run


#: Every rule by id, in the order the rule modules register them (imgscan.policy.rules).
RULES: dict[str, Rule] = {}


def rule(id: str, summary: str, auto_fixed: bool = False,
         needs_windows: bool = False) -> Callable[[RuleFunc], RuleFunc]:
    """Register the decorated function as rule ``id``."""
    def register(func: RuleFunc) -> RuleFunc:
        if id in RULES:
            raise ValueError(f"rule {id!r} is registered twice")
        RULES[id] = Rule(id, func, summary, auto_fixed, needs_windows)
        return func
    return register
