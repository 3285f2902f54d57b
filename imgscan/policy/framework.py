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

A rule that judges one guest OS says which (``needs_windows=True`` or
``needs_linux=True``): it then receives the ``windows`` or ``linux`` object as its
second argument, and the framework answers ``unknown`` with the reason, once for
all such rules, when there is none. Each rule also names the guest OS it is
about (``guest``: ``windows``, ``linux`` or None for every disk), so that a
profile that judges whichever OS it finds (``guest = "auto"``, the default
``huawei-ims``) runs only the rules of that OS.

``auto_fixed`` says whether the cloud repairs the rule itself when it registers
the image with automatic configuration (Huawei restores the IDE driver, the PV
driver keys and DHCP of Windows; it removes Linux PV drivers, rewrites GRUB and
fstab to UUIDs and deletes VMware Tools; import-rules.md section 1.3).
"""

from __future__ import annotations

import functools

from imgscan.vocabulary import FAIL, LINUX, PASS, UNKNOWN, WINDOWS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
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
    (``storage_class`` from ``--storage-class``).

    One ``Facts`` serves every rule of every profile judged on an image (the engine's
    ``Judge``), so what is derived from the facts alone is found once here: the guest
    objects, and why a guest could not be read (:meth:`unreadable`). The ``info`` object
    is never changed while it is judged.
    """

    def __init__(self, info: Mapping[str, Any], storage_class: str | None = None) -> None:
        self.info = info
        self.storage_class = storage_class
        self.windows: Mapping[str, Any] | None = info.get("windows") or None
        self.linux: Mapping[str, Any] | None = info.get("linux") or None
        self._guests: dict[str, Mapping[str, Any] | None] = {WINDOWS: self.windows,
                                                             LINUX: self.linux}
        #: Each guest object's ``evidence`` (fact -> where it was read), for :meth:`ev`.
        self._evidence: dict[str, Mapping[str, Any]] = {
            os: (g.get("evidence") or {}) if g is not None else {}
            for os, g in self._guests.items()}
        self._unreadable: dict[str, Outcome | None] = {}

    def guest(self, os: str) -> Mapping[str, Any] | None:
        """The contract object of guest ``os`` (``windows`` or ``linux``), if found."""
        return self.windows if os == WINDOWS else self.linux

    def source(self, os: str, fact: str) -> str | None:
        """Where guest ``os``'s object says ``fact`` was read (its ``evidence`` entry)."""
        g = self.guest(os) or {}
        source = (g.get("evidence") or {}).get(fact)
        return str(source) if source else None

    def ev(self, fact: str, value: Any = None, source: str | None = None) -> dict[str, Any]:
        """One evidence entry; ``windows.X`` and ``linux.X`` facts default to the guest
        object's own value and evidence, other facts to the top-level ``info`` key."""
        guest_fact = _guest_fact(fact)
        if guest_fact is None:
            return {fact: {"value": self.info.get(fact) if value is None else value,
                           "from": source}}
        # as guest() and source() would answer, without their calls: the rules of
        # ``--profile all`` ask for a hundred of these an image
        os, key = guest_fact
        g = self._guests[os]
        if g is None:
            return {fact: {"value": value, "from": source or None}}
        if not source:
            found = self._evidence[os].get(key)
            source = str(found) if found else None
        return {fact: {"value": g.get(key) if value is None else value, "from": source}}

    def unreadable(self, os: str = WINDOWS) -> Outcome | None:
        """``unknown`` with the reason when the guest could not be read far enough to
        know whether an installation of ``os`` is there; None when it was read. Found
        once per guest OS: every rule that needs the OS asks when it is missing."""
        if os not in self._unreadable:
            self._unreadable[os] = self._why_unreadable(os)
        return self._unreadable[os]

    def _why_unreadable(self, os: str) -> Outcome | None:
        title = GUEST_TITLES[os]
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
            if encrypted and self.guest(os) is None:
                return Outcome(UNKNOWN, f"partition {p['number']} is encrypted "
                               f"({p.get('filesystem')}): a {title} installation in it "
                               "cannot be seen",
                               self.ev(f"partitions[{p['number']}].filesystem",
                                       p.get("filesystem"), "volume signature"))
        if self.guest(os) is None:
            # the contract's findings, each with the stage that made it (imgscan.contract)
            stages = info.get("finding_stages") or []
            for f, stage in zip(info.get("findings") or [], stages, strict=False):
                if stage == os:
                    return Outcome(UNKNOWN, f"{title} inspection failed: {f['message']}",
                                   self.ev("findings", [f], f"{os} inspection"))
        return None

    def need(self, os: str) -> Mapping[str, Any] | Outcome:
        """Guest ``os``'s object, or the ``unknown`` outcome of a rule that needs it."""
        g = self._guests[os]
        if g is not None:
            return g
        return self.unreadable(os) or Outcome(
            UNKNOWN, f"no {GUEST_TITLES[os]} installation was found (see "
            "system-disk-present), so this cannot be judged",
            self.ev(os, None, SEARCHED[os]))


@functools.lru_cache(maxsize=512)
def _guest_fact(fact: str) -> tuple[str, str] | None:
    """``(os, key)`` of a ``windows.X`` or ``linux.X`` fact path (``key``: the guest
    object's key, ``X`` up to its first ``.`` or ``[``), None for a top-level fact. The
    rules name a few dozen fixed fact paths, parsed once per process; the cache is
    bounded because some paths hold an image's values (a partition number, a kernel
    version), which a bulk scan of many images must not accumulate."""
    os, dot, key = fact.partition(".")
    if dot and os in GUESTS:
        return os, key.split(".")[0].split("[")[0]
    return None


def architecture(f: Facts, os: str, arches: Sequence[str], unread: str,
                 remedy: str) -> Outcome:
    """The judgement of a guest's architecture (``os``'s ``arch`` fact) against the
    ones the cloud runs fully virtualized; ``unread`` says what could not be read."""
    arch = (f.guest(os) or {}).get("arch")
    ev = f.ev(f"{os}.arch")
    title = GUEST_TITLES[os]
    if arch is None:
        return Outcome(UNKNOWN, unread, ev)
    if arch in arches:
        return Outcome(PASS, f"{arch} {title}", ev)
    return Outcome(FAIL, f"{arch} {title}: only {', '.join(arches)} run fully virtualized "
                   "here", ev, remedy)


ENCRYPTED_FILESYSTEMS = frozenset({"BitLocker", "crypto_LUKS"})
#: The guest OSes a rule may be about, as the contract names their objects.
GUESTS = (WINDOWS, LINUX)
GUEST_TITLES = {WINDOWS: "Windows", LINUX: "Linux"}
#: Where each inspection looks for its OS (the evidence of "not found").
SEARCHED = {WINDOWS: "NTFS volumes searched for \\Windows",
            LINUX: "filesystems searched for etc/ with a release file and usr/ or bin/"}


class Rule:
    """A rule id bound to its function, what it checks, and whether the cloud fixes it.

    ``func(facts, **parameters)`` evaluates it; ``body`` is the function as written
    (for a rule that needs Windows, ``func`` first makes sure there is an installation).
    """

    __slots__ = ("auto_fixed", "body", "func", "guest", "id", "summary")

    def __init__(self, id: str, body: RuleFunc, summary: str, auto_fixed: bool,
                 needs: str | None, guest: str | None) -> None:
        self.id = id
        self.body = body
        self.func = _with_guest(body, needs) if needs else body
        self.summary = summary
        self.auto_fixed = auto_fixed
        #: The guest OS the rule is about (None: every disk).
        self.guest = guest or needs

    def parameters(self) -> tuple[str, ...]:
        """The keyword parameters a profile may supply (from the signature)."""
        code = self.body.__code__
        return code.co_varnames[code.co_argcount:code.co_argcount + code.co_kwonlyargcount]

    def defaults(self) -> dict[str, Any]:
        """The parameters a profile may leave out, with their values."""
        return dict(self.body.__kwdefaults__ or {})


def _with_guest(body: RuleFunc, os: str) -> RuleFunc:
    """``body(facts, guest, **parameters)``, or the ``unknown`` outcome saying why
    there is no ``os`` object to judge."""
    def run(f: Facts, **parameters: Any) -> Outcome:
        g = f.need(os)
        if isinstance(g, Outcome):
            return g
        return body(f, g, **parameters)
    return run


#: Every rule by id, in the order the rule modules register them (imgscan.policy.rules).
RULES: dict[str, Rule] = {}


def rule(id: str, summary: str, auto_fixed: bool = False, needs_windows: bool = False,
         needs_linux: bool = False, guest: str | None = None) -> Callable[[RuleFunc], RuleFunc]:
    """Register the decorated function as rule ``id`` (``guest``: the OS it is about
    when it does not need that OS's object)."""
    needs = WINDOWS if needs_windows else (LINUX if needs_linux else None)

    def register(func: RuleFunc) -> RuleFunc:
        if id in RULES:
            raise ValueError(f"rule {id!r} is registered twice")
        RULES[id] = Rule(id, func, summary, auto_fixed, needs, guest)
        return func
    return register


def default_kernel(lx: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The kernel the boot loader starts; when that is not known, the newest installed
    (the inspection lists the kernels newest first)."""
    kernels = lx.get("kernels") or []
    found: Mapping[str, Any] | None = next(
        (k for k in kernels if k.get("version") == lx.get("default_kernel")),
        kernels[0] if kernels else None)
    return found
