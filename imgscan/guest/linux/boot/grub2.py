"""GRUB 2's menu and default entry from ``grub.cfg``, read the way GRUB's ``normal``
mode would build it, without booting anything.

Sources: the GRUB manual ("Simple configuration", "Shell-like scripting", the
``set``, ``load_env``, ``configfile``, ``source``, ``search``, ``linux``, ``test``
commands, ``menuentry --id``, ``submenu``), grub-core/normal/menu.c (the ``default``
variable: an entry number, a title or an id, ``>`` between the levels of submenus
with ``>>`` a literal ``>``; a default outside the menu falls back to entry 0), and
rhboot GRUB's ``blscfg`` command (see :mod:`.bls`).

The configuration is interpreted statically: assignments, ``load_env`` (the variables
of :mod:`.grubenv`), ``if``/``elif``/``else`` with the ``[``/``test`` conditions
GRUB has (a file test looks in the guest), menu entries, submenus, ``source``,
``configfile`` and ``blscfg``. Loops, functions and other commands are not run; an
``if`` whose condition is another command counts as false. The variables GRUB
itself sets before reading ``grub.cfg`` are preset: the ``feature_*`` flags of GRUB
2.02 and later, ``prefix`` and ``config_directory`` (the configuration's directory).
Each menu entry's body is then run as GRUB runs it at boot, in the environment the
whole configuration left, to find its ``linux`` line.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

from imgscan import limits
from imgscan.errors import CorruptImage
from imgscan.guest.linux.boot import bls, grubenv, grubscript
from imgscan.guest.linux.boot.entry import BootEntry, strip_device
from imgscan.guest.linux.boot.grubscript import Block, Command, If, Loop, Node, Word

TYPE_CHECKING = False
if TYPE_CHECKING:
    from imgscan.guest.linux.tree import GuestTree

#: Set by GRUB 2.02+ before it reads grub.cfg (grub-core/normal/main.c, features[]).
_FEATURES = {f"feature_{name}": "y" for name in (
    "chainloader_bpb", "ntldr", "platform_search_hint", "default_font_path",
    "all_video_module", "menuentry_id", "menuentry_options", "200_final",
    "nativedisk_cmd", "timeout_style")}
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)
#: Commands that load a Linux kernel (x86 BIOS ``linux16``, EFI ``linuxefi`` of Red Hat
#: and SUSE builds) and the multiboot pair Xen entries use.
_LINUX = frozenset({"linux", "linux16", "linuxefi"})
_MODULE = frozenset({"module", "module2"})
#: menuentry/submenu options that take a value (grub-core/commands/menuentry.c).
_VALUE_OPTIONS = frozenset({"--class", "--users", "--hotkey", "--source", "--id"})


@dataclass
class MenuItem:
    """A menu entry (a body of commands, or a BLS entry) or a submenu (children)."""

    title: str
    id: str
    args: list[str] = field(default_factory=list)
    body: list[Node] = field(default_factory=list)
    children: list[MenuItem] | None = None
    source: str = ""


@dataclass
class Grub2Menu:
    """What :func:`read` found: the menu, the environment after the configuration,
    the files read, and the problems met (syntax errors, a broken grubenv)."""

    items: list[MenuItem] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    problems: list[CorruptImage] = field(default_factory=list)


class _Interpreter:
    def __init__(self, tree: GuestTree, config: str) -> None:
        self.tree = tree
        self.result = Grub2Menu()
        prefix = posixpath.dirname(config)
        self.env: dict[str, str] = {**_FEATURES, "prefix": prefix, "config_directory": prefix}
        self.commands = 0
        self.items_made = 0
        self.replaced: list[MenuItem] | None = None
        #: Blocks and files being run, one count across ``source`` and ``if`` nesting.
        self.depth = 0
        #: Parsed grubenv files and BLS entry listings by guest path, read once each.
        self._grubenvs: dict[str, grubenv.GrubEnv | None] = {}
        self._bls: dict[str, list[tuple[str, str, list[Node], str]]] = {}

    # -- files ---------------------------------------------------------------------------
    def guest_path(self, grub_path: str) -> str:
        """A path GRUB opens on its root device, as a guest path: as written when it
        exists, else under /boot (a separate /boot is GRUB's device root)."""
        path = posixpath.normpath("/" + strip_device(grub_path).lstrip("/"))
        if self.tree.exists(path) or self.tree.exists("/boot" + path):
            return path if self.tree.exists(path) else "/boot" + path
        return path

    def run_file(self, path: str, menu: list[MenuItem]) -> bool:
        """Run the configuration ``path`` into ``menu``; False when it is absent."""
        text = self.tree.text(path)
        if text is None:
            return False
        self.result.files.append(self.tree.where(path))
        limits.enforce(len(self.result.files), "BOOT_MAX_CONFIG_FILES", self.tree.where(path),
                       "GRUB configfile/source chain", None, "configuration files")
        script = grubscript.parse(text, self.tree.where(path))
        self.result.problems.extend(script.problems)
        saved = self.env.get("config_directory")
        self.env["config_directory"] = posixpath.dirname(path)
        self.enter(self.tree.where(path), None)
        try:
            self.run(script.nodes, menu, path)
        finally:
            self.depth -= 1
        if saved is not None:
            self.env["config_directory"] = saved
        return True

    def enter(self, where: str, offset: int | None) -> None:
        """One level deeper into a file, an ``if`` or a submenu: the levels of every
        ``source``d file and block count together (the caller steps back out)."""
        limits.enforce(self.depth + 1, "BOOT_MAX_NESTING", where, "GRUB script", offset,
                       "nested blocks and files")
        self.depth += 1

    # -- expansion -----------------------------------------------------------------------
    def expand(self, word: Word, where: str) -> str:
        out = "".join(self.env.get(text, "") if is_var else text
                      for is_var, text in word.segments)
        limits.enforce(len(out), "BOOT_MAX_WORD_BYTES", where, "GRUB script", word.offset,
                       "bytes in one expanded word")
        return out

    def words(self, words: list[Word], where: str) -> list[str]:
        expanded = ((w, self.expand(w, where)) for w in words)
        return [text for w, text in expanded if text or w.quoted]

    # -- statements ----------------------------------------------------------------------
    def run(self, nodes: list[Node], menu: list[MenuItem], where: str) -> bool:
        """Run ``nodes``; the status of the last command (True for success)."""
        status = True
        for node in nodes:
            if self.replaced is not None:
                return status
            self.commands += 1
            limits.enforce(self.commands, "BOOT_MAX_COMMANDS", where, "GRUB script",
                           node.offset, "commands run")
            if isinstance(node, Command):
                status = self.command(self.words(node.words, where), menu, where)
            elif isinstance(node, If):
                status = self.run_if(node, menu, where)
            elif isinstance(node, Block):
                self.block(node, menu, where)
                status = True
            elif isinstance(node, Loop):
                status = True
        return status

    def run_if(self, node: If, menu: list[MenuItem], where: str) -> bool:
        self.enter(where, node.offset)
        try:
            for cond, body in node.arms:
                if self.run(cond, menu, where):
                    return self.run(body, menu, where)
            return self.run(node.otherwise, menu, where)
        finally:
            self.depth -= 1

    def block(self, node: Block, menu: list[MenuItem], where: str) -> None:
        if node.kind == "function":
            return
        args = self.words(node.words, where)
        title, item_id, rest = _menu_options(args)
        self.items_made += 1
        limits.enforce(self.items_made, "BOOT_MAX_MENU_ENTRIES", where, "GRUB menu",
                       node.offset, "menu entries")
        item = MenuItem(title, item_id, rest, node.body, source=where)
        if node.kind == "submenu":
            item.children = []
            self.enter(where, node.offset)
            try:
                self.run(node.body, item.children, where)
            finally:
                self.depth -= 1
        menu.append(item)

    def command(self, argv: list[str], menu: list[MenuItem], where: str) -> bool:
        if not argv:
            return True
        name, args = argv[0], argv[1:]
        m = _ASSIGNMENT.match(name)
        if m and not args:
            self.env[m[1]] = m[2]
        elif name == "set":
            for arg in args:
                key, _, value = arg.partition("=")
                self.env[key] = value
        elif name == "unset":
            for arg in args:
                self.env.pop(arg, None)
        elif name in ("[", "test"):
            return self.test(args[:-1] if name == "[" and args[-1:] == ["]"] else args)
        elif name in ("true", "false"):
            return name == "true"
        elif name == "load_env":
            self.load_env(args)
        elif name == "source":
            return bool(args) and self.run_file(self.guest_path(args[0]), menu)
        elif name == "configfile":
            return bool(args) and self.configfile(self.guest_path(args[0]))
        elif name == "blscfg":
            self.blscfg(menu, where)
        elif name == "search":
            self.search(args)
        else:
            return False
        return True

    def configfile(self, path: str) -> bool:
        """GRUB shows the new file's menu (in a new context) instead of this one."""
        menu: list[MenuItem] = []
        if not self.run_file(path, menu):
            return False
        if menu and self.replaced is None:
            self.replaced = menu
        return True

    def search(self, args: list[str]) -> None:
        """``search ... --set=VAR X`` / ``--set VAR X``: VAR names the device found."""
        var, rest = None, []
        i = 0
        while i < len(args):
            a = args[i]
            if a.startswith("--set="):
                var = a[len("--set="):]
            elif a in ("--set", "-s"):
                var = "root"
                if i + 1 < len(args) and not args[i + 1].startswith("-") and len(args) > i + 2:
                    var, i = args[i + 1], i + 1
            elif not a.startswith("-"):
                rest.append(a)
            i += 1
        if var and rest:
            self.env[var] = rest[0]

    def load_env(self, args: list[str]) -> None:
        path = self.env.get("prefix", "") + "/grubenv"
        names: list[str] = []
        i = 0
        while i < len(args):
            if args[i] in ("-f", "--file") and i + 1 < len(args):
                path, i = args[i + 1], i + 2
                continue
            if args[i].startswith("--file="):
                path = args[i][len("--file="):]
            elif not args[i].startswith("-"):
                names.append(args[i])
            i += 1
        guest = self.guest_path(path)
        if guest not in self._grubenvs:
            self._grubenvs[guest] = read_grubenv(self.tree, guest)
            found = self._grubenvs[guest]
            if found is not None:
                self.result.problems.extend(found.problems)
        env = self._grubenvs[guest]
        if env is None:
            return
        for key, value in env.variables.items():
            if not names or key in names:
                self.env[key] = value

    def blscfg(self, menu: list[MenuItem], where: str) -> None:
        directory = self.guest_path(self.env.get("blsdir") or "/loader/entries")
        if directory not in self._bls:
            self._bls[directory] = self._read_bls(directory)
        for title, entry_id, nodes, source in self._bls[directory]:
            self.items_made += 1
            limits.enforce(self.items_made, "BOOT_MAX_MENU_ENTRIES", where, "GRUB menu",
                           None, "menu entries")
            menu.append(MenuItem(title, entry_id, [], nodes, source=source))

    def _read_bls(self, directory: str) -> list[tuple[str, str, list[Node], str]]:
        """The menu entries (title, id, body, source) of the BLS entries in
        ``directory``, their problems reported once."""
        found: list[tuple[str, str, list[Node], str]] = []
        for entry in bls.read_entries(self.tree, directory):
            linux = entry.first("linux")
            if linux is None:
                continue
            options = entry.first("options") or ""
            source = f"linux {linux} {options}\n"
            script = grubscript.parse(source, self.tree.where(entry.path))
            self.result.problems.extend(script.problems)
            title = entry.first("title") or entry.id
            found.append((title, entry.id, script.nodes, self.tree.where(entry.path)))
            limits.enforce(len(found), "BOOT_MAX_MENU_ENTRIES", self.tree.where(directory),
                           "GRUB menu", None, "menu entries")
        return found

    # -- [ / test ------------------------------------------------------------------------
    def test(self, args: list[str]) -> bool:
        """GRUB's ``test`` for one expression (grub-core/commands/test.c)."""
        bangs = 0
        while bangs < len(args) and args[bangs] == "!":
            bangs += 1
        if bangs:
            return self.test(args[bangs:]) != (bangs % 2 == 1)
        if len(args) == 1:
            return args[0] != ""
        if len(args) == 2:
            op, value = args
            if op == "-n":
                return value != ""
            if op == "-z":
                return value == ""
            if op in ("-e", "-f", "-d", "-s"):
                path = self.guest_path(value)
                kind = self.tree.kind(path)
                if op == "-d":
                    return kind == "dir"
                if op == "-f":
                    return kind == "file"
                if op == "-s":
                    return (self.tree.size(path) or 0) > 0
                return kind is not None
            return False
        if len(args) == 3:
            left, op, right = args
            if op in ("=", "=="):
                return left == right
            if op == "!=":
                return left != right
            numbers = {"-eq": int.__eq__, "-ne": int.__ne__, "-lt": int.__lt__,
                       "-le": int.__le__, "-gt": int.__gt__, "-ge": int.__ge__}
            if op in numbers:
                a, b = _leading_int(left), _leading_int(right)
                return numbers[op](a, b)
        return False

    # -- entries at boot -----------------------------------------------------------------
    def boot_entry(self, item: MenuItem, path: list[str]) -> BootEntry:
        """Run ``item``'s body as GRUB runs it when chosen: its ``linux`` line."""
        saved = dict(self.env)
        # A configfile or source the body runs leaves neither the menu replaced for the
        # entries after it nor its files among those the menu was read from.
        saved_replaced, files = self.replaced, len(self.result.files)
        self.replaced = None
        self.env.update({str(i + 1): a for i, a in enumerate(item.args)})
        loader = _Loader()
        try:
            self._run_body(item.body, loader, item.source)
        finally:
            self.env = saved
            self.replaced = saved_replaced
            del self.result.files[files:]
        kernel = loader.kernel
        return BootEntry(item.title, item.id, strip_device(kernel) if kernel else None,
                         loader.cmdline, None, path)

    def _run_body(self, nodes: list[Node], loader: _Loader, where: str) -> None:
        for node in nodes:
            if self.replaced is not None:
                return      # configfile showed another menu: GRUB does not come back
            self.commands += 1
            limits.enforce(self.commands, "BOOT_MAX_COMMANDS", where, "GRUB script",
                           node.offset, "commands run")
            if isinstance(node, Command):
                argv = self.words(node.words, where)
                if argv and argv[0] in _LINUX and len(argv) > 1:
                    loader.kernel, loader.cmdline = argv[1], " ".join(argv[2:])
                elif argv and argv[0] in _MODULE and len(argv) > 1 and loader.kernel is None:
                    loader.module(argv[1:])
                else:
                    self.command(argv, [], where)
            elif isinstance(node, If):
                self.enter(where, node.offset)
                try:
                    for cond, body in node.arms:
                        if self.run(cond, [], where):
                            self._run_body(body, loader, where)
                            break
                    else:
                        self._run_body(node.otherwise, loader, where)
                finally:
                    self.depth -= 1


@dataclass
class _Loader:
    """What an entry loaded: the kernel image and its command line."""

    kernel: str | None = None
    cmdline: str | None = None
    _modules: list[list[str]] = field(default_factory=list)

    def module(self, args: list[str]) -> None:
        """Xen's ``multiboot``/``module`` entries: the first module (past ``--nounzip``
        style options) is dom0's kernel, its arguments the command line."""
        rest = [a for a in args if not a.startswith("--")]
        if rest and posixpath.basename(strip_device(rest[0])).startswith("vmlinu"):
            self.kernel, self.cmdline = rest[0], " ".join(rest[1:])


def _menu_options(args: list[str]) -> tuple[str, str, list[str]]:
    """The title, id and remaining arguments of ``menuentry``/``submenu``; an entry
    without ``--id`` has its title as id (grub_normal_add_menu_entry)."""
    title: str | None = None
    item_id: str | None = None
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        opt, eq, value = a.partition("=")
        if opt in _VALUE_OPTIONS:
            if not eq:
                value = args[i + 1] if i + 1 < len(args) else ""
                i += 1
            if opt == "--id":
                item_id = value
        elif a == "--unrestricted":
            pass
        elif title is None:
            title = a
        else:
            rest.append(a)
        i += 1
    title = title or ""
    return title, item_id if item_id is not None else title, rest


#: What a number of more digits than any 64-bit value has reads as: out of range.
_MAX_DIGITS = 20
_OUT_OF_RANGE = 1 << 64


def _leading_int(text: str) -> int:
    m = re.match(r"\s*(-?)([0-9]+)", text)
    if m is None:
        return 0
    value = int(m[2]) if len(m[2]) <= _MAX_DIGITS else _OUT_OF_RANGE
    return -value if m[1] else value


def read_grubenv(tree: GuestTree, path: str) -> grubenv.GrubEnv | None:
    data = tree.read(path)
    return None if data is None else grubenv.parse(data, tree.where(path))


def entries(tree: GuestTree, config: str) -> tuple[Grub2Menu, list[BootEntry], int | None]:
    """Every entry of ``config``'s menu (submenus flattened, depth first) and the index
    among them of the one GRUB boots by default (None for an empty menu)."""
    interp = _Interpreter(tree, config)
    menu: list[MenuItem] = []
    interp.run_file(config, menu)
    result = interp.result
    result.items = interp.replaced if interp.replaced is not None else menu
    result.env = dict(interp.env)
    flat: list[BootEntry] = []
    chosen = default_item(result.items, result.env.get("default"), tree.where(config))
    default_index: int | None = None

    def walk(items: list[MenuItem], path: list[str]) -> None:
        nonlocal default_index
        for item in items:
            if item.children is not None:
                walk(item.children, [*path, item.title])
                continue
            if item is chosen:
                default_index = len(flat)
            flat.append(interp.boot_entry(item, path))

    walk(result.items, [])
    return result, flat, default_index


def default_item(items: list[MenuItem], default: str | None, where: str) -> MenuItem | None:
    """The entry GRUB boots with ``default`` set as given (grub-core/normal/menu.c):
    at each menu level the part before the first unescaped ``>`` picks an item by
    number, title or id; an unknown or out-of-range pick is item 0; a submenu takes
    the rest of the path as its own default."""
    level = 0
    while items:
        limits.enforce(level, "BOOT_MAX_NESTING", where, "GRUB menu", None, "submenu levels")
        head, rest = _split_default(default) if default else (None, None)
        index = _entry_number(items, head) if head is not None else None
        item = items[index if index is not None and 0 <= index < len(items) else 0]
        if item.children is None:
            return item
        items, default, level = item.children, rest, level + 1
    return None


def _split_default(value: str) -> tuple[str, str | None]:
    """``value`` cut at its first unescaped ``>`` (``>>`` is a literal ``>``): the
    unescaped head, and the rest (None when there is none or it is empty)."""
    head: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == ">":
            if value.startswith(">>", i):
                head.append(">")
                i += 2
                continue
            return "".join(head), value[i + 1:] or None
        head.append(value[i])
        i += 1
    return "".join(head), None


def _entry_number(items: list[MenuItem], spec: str) -> int | None:
    """An entry number when ``spec`` is one (decimal, ``0x`` hex or ``0`` octal, as
    grub_strtoul reads it, and nothing after it: a BLS id such as
    ``4f8b...-5.14.0-427.el9.x86_64`` starts with a digit but is an id), else the first
    item whose title or id is ``spec``; None when nothing matches."""
    number = _strtoul(spec)
    if number is not None:
        return number
    for i, item in enumerate(items):
        if spec in (item.title, item.id):
            return i
    return None


def _strtoul(text: str) -> int | None:
    """``text`` as grub_strtoul reads a whole number, None when it is none; one too
    long for 64 bits is out of range (GRUB's default then falls back to entry 0)."""
    s = text.strip()
    if re.fullmatch(r"0[xX][0-9a-fA-F]+", s):
        return int(s, 16)
    if re.fullmatch(r"0[0-7]*", s):
        return int(s, 8)
    if re.fullmatch(r"[1-9][0-9]*", s):
        return int(s) if len(s) <= _MAX_DIGITS else _OUT_OF_RANGE
    return None
