"""Profiles (TOML data) and their evaluation on an ``info`` dict.

A profile names the rules to run, in order, each with its parameters and a
severity (what a violation is reported as: ``fail`` or ``warn``)::

    name = "my-cloud"
    extends = "huawei-ims-windows"      # a built-in profile (or a list: rules merged)

    [rules.system-disk-size]
    max_gib = 2048                       # override a parameter
    [rules.bios-boot]
    enabled = false                      # disable a rule
    [rules.dhcp]
    severity = "fail"                    # change a severity

``guest = "auto"`` makes a profile judge whichever guest OS it finds: the rules
about Windows run on a Windows disk, those about Linux on a Linux disk, and on a
disk with neither only the rules about every disk (``system-disk-present`` says
why). Without it every rule of the profile runs, and a rule about an OS that is
not there answers ``unknown``.

A rule id not in :data:`imgscan.policy.rules.RULES`, or a parameter its
function does not take, is a :class:`ProfileError`: a typo must never turn a
rule silently off. The verdict and the check object follow
../shared/docs/json-contract.md (``imgscan check --json``).
"""

from __future__ import annotations

import functools
import os
import tomllib
from itertools import compress
from operator import itemgetter, not_

from imgscan.vocabulary import FAIL, LINUX, PASS, SCHEMA_VERSION, VIOLATIONS, WINDOWS, worst_verdict

from .framework import Facts, Outcome
from .registration import CLOUDS, suggest
from .rules import RULES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

DEFAULT_PROFILE = "huawei-ims"
#: Built-in profiles that ``--profile all`` leaves out: ``safe`` judges no cloud, and the
#: two halves of ``huawei-ims`` would repeat it.
NOT_IN_ALL = ("safe", "huawei-ims-windows", "huawei-ims-linux")
#: Keys of a ``[rules.ID]`` table that are not parameters of the rule function.
RULE_KEYS = ("enabled", "severity")
PROFILE_KEYS = ("name", "description", "source", "registration", "extends", "guest", "rules")
#: The values of a profile's ``guest`` key.
GUEST_MODES = ("auto", "all")



def guest_of(info: Mapping[str, Any]) -> str | None:
    """The guest OS an info object holds (None: none), which picks a profile's rules."""
    return WINDOWS if info.get("windows") else (LINUX if info.get("linux") else None)

class ProfileError(ValueError):
    """A profile that cannot be used: unreadable, unknown rule or parameter, bad value."""


class RuleConfig:
    """One rule of a profile: its parameters and the severity of a violation."""

    __slots__ = ("id", "key", "params", "result_key", "severity")

    def __init__(self, id: str, severity: str, params: dict[str, Any]) -> None:
        self.id = id
        self.severity = severity
        self.params = params
        #: The rule and its parameters, which alone decide its outcome on an image: the
        #: configs of several profiles with one key are judged once (:class:`Judge`).
        #: ``repr`` keeps ``True``, ``1`` and ``1.0`` apart, as a rule may.
        self.key = f"{id} {sorted(params.items())!r}"
        #: The key and the severity, which decide the reported result.
        self.result_key = f"{severity} {self.key}"


class Profile:
    """A named, ordered set of configured rules."""

    def __init__(self, name: str, description: str, rules: dict[str, RuleConfig],
                 origin: str, guest: str = "all", source: str = "",
                 registration: str | None = None) -> None:
        self.name = name
        self.description = description
        self.rules = rules
        self.origin = origin
        #: ``auto``: only the rules of the guest OS found run; ``all``: every rule.
        self.guest = guest
        #: Where the rules come from (import-rules.md sections), for ``imgscan profiles``.
        self.source = source
        #: The cloud whose registration parameters to suggest
        #: (:data:`imgscan.policy.registration.CLOUDS`), or None.
        self.registration = registration
        #: The guest OS found (or None) -> :meth:`plan`'s rules and their result
        #: keys, chosen once each.
        self._by_guest: dict[str | None, tuple[tuple[RuleConfig, ...], tuple[str, ...]]] = {}

    def applicable(self, info: Mapping[str, Any]) -> list[RuleConfig]:
        """The configured rules to run on ``info``, in profile order."""
        return list(self.plan(guest_of(info))[0])

    def plan(self, found: str | None) -> tuple[tuple[RuleConfig, ...], tuple[str, ...]]:
        """The configured rules to run on a disk whose guest OS is ``found`` (None: no
        guest OS), in profile order, and their :attr:`RuleConfig.result_key`; chosen
        once per guest OS."""
        plan = self._by_guest.get(found)
        if plan is None:
            chosen = tuple(c for c in self.rules.values()
                           if self.guest != "auto" or RULES[c.id].guest in (None, found))
            plan = self._by_guest[found] = (chosen, tuple(c.result_key for c in chosen))
        return plan


#: The built-in profiles, package data installed beside this module. Read as plain
#: files: importlib.resources would import pathlib, tempfile, shutil and zipfile, a
#: good part of `imgscan check`'s start-up (issue 18).
PROFILES_DIR = os.path.join(os.path.dirname(__file__), "profiles")


def builtin_profiles() -> list[str]:
    """Names of the profiles shipped with imgscan (the default first)."""
    names = sorted(n[:-5] for n in os.listdir(PROFILES_DIR) if n.endswith(".toml"))
    return sorted(names, key=lambda n: n != DEFAULT_PROFILE)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def _read_toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{origin}: not valid TOML: {exc}") from None


def _builtin_data(name: str) -> dict[str, Any]:
    path = os.path.join(PROFILES_DIR, f"{name}.toml")
    if not os.path.isfile(path):
        raise ProfileError(f"no built-in profile {name!r} (built-in: "
                           f"{', '.join(builtin_profiles())})")
    with open(path, encoding="utf-8") as f:
        return _read_toml(f.read(), f"profile {name}")


def _apply(base: dict[str, RuleConfig], table: Mapping[str, Any], origin: str,
           extending: bool) -> dict[str, RuleConfig]:
    """``base`` with the ``[rules.*]`` tables of one profile applied; checks every
    rule id, parameter name and value kind."""
    rules = dict(base)
    for rule_id, settings in table.items():
        where = f"{origin}: [rules.{rule_id}]"
        rule = RULES.get(rule_id)
        if rule is None:
            raise ProfileError(f"{where}: unknown rule {rule_id!r} (known rules: "
                               f"{', '.join(sorted(RULES))})")
        if not isinstance(settings, dict):
            raise ProfileError(f"{where}: must be a table")
        known = rule.parameters()
        for key in settings:
            if key not in known and key not in RULE_KEYS:
                raise ProfileError(f"{where}: unknown parameter {key!r} (parameters: "
                                   f"{', '.join((*known, *RULE_KEYS))})")
        if settings.get("enabled", True) is False:
            rules.pop(rule_id, None)
            continue
        if not isinstance(settings.get("enabled", True), bool):
            raise ProfileError(f"{where}: enabled must be true or false")
        old = rules.get(rule_id)
        severity = settings.get("severity", old.severity if old else FAIL)
        if severity not in VIOLATIONS:
            raise ProfileError(f"{where}: severity {severity!r} is not one of "
                               f"{', '.join(VIOLATIONS)}")
        params = dict(old.params) if old else {}
        for key, value in settings.items():
            if key in RULE_KEYS:
                continue
            if key in params and _kind(value) != _kind(params[key]):
                raise ProfileError(f"{where}: {key} must be a {_kind(params[key])}, "
                                   f"not {value!r}")
            params[key] = value
        optional = rule.defaults()
        missing = [k for k in known if k not in params and k not in optional]
        if missing:
            how = "added to the base profile: give" if extending else "give"
            raise ProfileError(f"{where}: missing parameter(s) {', '.join(missing)} "
                               f"({how} every parameter)")
        rules[rule_id] = RuleConfig(rule_id, severity, params)
    return rules


def _from_data(data: Mapping[str, Any], origin: str, default_name: str) -> Profile:
    for key in data:
        if key not in PROFILE_KEYS:
            raise ProfileError(f"{origin}: unknown key {key!r} (profile keys: "
                               f"{', '.join(PROFILE_KEYS)})")
    table = data.get("rules", {})
    if not isinstance(table, dict):
        raise ProfileError(f"{origin}: rules must be a table of [rules.ID] tables")
    base: dict[str, RuleConfig] = {}
    base_guest = "all"
    base_source, base_registration = "", None
    description = str(data.get("description", ""))
    parent = data.get("extends")
    parents = [parent] if isinstance(parent, str) else parent
    if parent is not None and not (isinstance(parents, list) and parents and
                                   all(isinstance(p, str) for p in parents)):
        raise ProfileError(f"{origin}: extends must name a built-in profile, or a list of them")
    for name in parents or []:
        try:
            base_profile = _builtin(name)
        except ProfileError as exc:
            raise ProfileError(f"{origin}: extends: {exc}") from None
        # A rule of several parents keeps its first place and takes the last settings.
        base.update(base_profile.rules)
        base_guest = base_profile.guest
        base_source = base_source or base_profile.source
        base_registration = base_registration or base_profile.registration
        description = description or f"{base_profile.description} (extended)"
    rules = _apply(base, table, origin, extending=parent is not None)
    guest = data.get("guest", base_guest)
    if guest not in GUEST_MODES:
        raise ProfileError(f"{origin}: guest must be one of {', '.join(GUEST_MODES)}, "
                           f"not {guest!r}")
    registration = data.get("registration", base_registration)
    if registration is not None and registration not in CLOUDS:
        raise ProfileError(f"{origin}: registration must be one of {', '.join(CLOUDS)}, "
                           f"not {registration!r}")
    return Profile(str(data.get("name", default_name)), description, rules, origin, guest,
                   str(data.get("source", base_source)), registration)


def load_profile(spec: str | None = None) -> Profile:
    """A built-in profile by name, or a TOML file (a path, or a name ending in .toml)."""
    spec = spec or DEFAULT_PROFILE
    if spec.endswith(".toml") or "/" in spec or "\\" in spec:
        from pathlib import Path
        path = Path(spec)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(f"{spec}: cannot read the profile: {exc.strerror}") from None
        return _from_data(_read_toml(text, spec), spec, path.stem)
    return _builtin(spec)


@functools.cache
def _builtin(name: str) -> Profile:
    """A built-in profile, read once per process: ``--profile all`` and the profiles
    that extend others would otherwise parse the same TOML files again and again.
    Profiles are never changed once made (every merge copies), so they can be shared."""
    return _from_data(_builtin_data(name), f"profile {name}", name)


#: A result's status (the verdict's input), read by C code rather than a generator.
_status = itemgetter("status")


class Judge:
    """One image's facts judged by the rules of any number of profiles, each distinct
    rule and parameters once (:attr:`RuleConfig.key`).

    ``--profile all`` names most rules in several profiles (``self-contained`` and
    ``system-disk-present`` in all seven, ``dhcp`` in five) with the same parameters. A
    rule is a function of the facts and its parameters only, so its outcome holds for
    every profile that configures it alike; only the severity, each profile's own, is
    applied per profile. A result dict (its evidence too) is shared by the profiles
    that configure its rule alike with the same severity, so no result may be changed
    once made (no report does).
    """

    def __init__(self, info: Mapping[str, Any], storage_class: str | None = None) -> None:
        self.info = info
        self.facts = Facts(info, storage_class)
        #: The guest OS found, which decides the rules of a ``guest = "auto"`` profile.
        self._guest = guest_of(info)
        #: :attr:`RuleConfig.result_key` -> the rule's result (:meth:`_result_of`).
        self._results: dict[str, dict[str, Any]] = {}
        #: key -> the outcome and, for a rule that raised, the severity it is reported as.
        self._judged: dict[str, tuple[Outcome, str | None]] = {}

    def _result_of(self, config: RuleConfig) -> dict[str, Any]:
        """The result of ``config`` (the contract's rule result), its rule judged unless
        another profile's config with the same key already was."""
        rule = RULES[config.id]
        judged = self._judged.get(config.key)
        if judged is None:
            try:
                judged = rule.func(self.facts, **config.params), None
            except Exception as exc:  # a broken check is a failed check, never "safe"
                judged = Outcome(FAIL, f"the rule could not be evaluated: "
                                 f"{type(exc).__name__}: {exc}"), FAIL
            self._judged[config.key] = judged
        outcome, severity = judged
        status = (severity or config.severity) if outcome.status == FAIL else outcome.status
        found = self._results[config.result_key] = {
            "id": config.id,
            "status": status,
            "message": outcome.message,
            "evidence": outcome.evidence,
            "remedy": None if status == PASS else outcome.remedy,
            "auto_fixed": rule.auto_fixed,
        }
        return found

    def results(self, profile: Profile) -> list[dict[str, Any]]:
        """The rule results of ``profile``, in profile order, each rule judged at its
        first asking. ``--profile all`` assembles 110 results of 63 rules on a Windows
        disk, so the results already made are looked up by C code (``map``,
        ``compress``), and Python code runs only for the ones not yet made."""
        configs, keys = profile.plan(self._guest)
        results = self._results
        for config in compress(configs, map(not_, map(results.__contains__, keys))):
            self._result_of(config)
        return list(map(results.__getitem__, keys))

    def check(self, profile: Profile) -> dict[str, Any]:
        """The ``imgscan check --json`` object of ``profile`` (``registration``: the
        parameters to register the image with, a contract extension)."""
        results = self.results(profile)
        return {
            "schema_version": SCHEMA_VERSION,
            "path": self.info["path"],
            "profile": profile.name,
            "verdict": verdict(results),
            "rules": results,
            "registration": suggest(profile.registration, self.info),
            "info": self.info,
        }


def evaluate(profile: Profile, info: Mapping[str, Any],
             storage_class: str | None = None) -> list[dict[str, Any]]:
    """The rule results of ``profile`` on one ``info`` object, in profile order."""
    return Judge(info, storage_class).results(profile)


def verdict(results: list[dict[str, Any]]) -> str:
    """``fail`` if a rule failed, ``warn`` if one warned, else ``pass`` (the contract)."""
    return worst_verdict(map(_status, results))


def check(info: Mapping[str, Any], profile: Profile,
          storage_class: str | None = None) -> dict[str, Any]:
    """The ``imgscan check --json`` object for one image and one profile."""
    return Judge(info, storage_class).check(profile)


def checks(info: Mapping[str, Any], profiles: Sequence[Profile],
           storage_class: str | None = None) -> list[dict[str, Any]]:
    """The check object of each profile for one image, each rule shared by several
    profiles judged once (:class:`Judge`); each object is :func:`check`'s."""
    judge = Judge(info, storage_class)
    return [judge.check(p) for p in profiles]


def load_profiles(spec: str | None = None) -> list[Profile]:
    """The profiles of ``--profile``: one name or file, several separated by commas, or
    ``all`` (one built-in profile per cloud: not :data:`NOT_IN_ALL`)."""
    names = [s.strip() for s in (spec or DEFAULT_PROFILE).split(",") if s.strip()]
    if names == ["all"]:
        names = [n for n in builtin_profiles() if n not in NOT_IN_ALL]
    if not names:
        raise ProfileError("--profile names no profile")
    profiles = [load_profile(n) for n in names]
    seen = [p.name for p in profiles]
    twice = sorted({n for n in seen if seen.count(n) > 1})
    if twice:
        raise ProfileError(f"--profile names {', '.join(twice)} more than once")
    return profiles
