"""The part of YAML that netplan and cloud-init configurations are written in.

Source: YAML 1.2 (block mappings and sequences by indentation, ``#`` comments,
plain, ``'single'`` and ``"double"`` quoted scalars, ``[flow, sequences]`` and
``{flow: mappings}``, ``|`` and ``>`` block scalars), restricted to what
netplan(5) and cloud-init's ``cloud.cfg`` use. Why not PyYAML: a hostile file
must cost time linear in its size, and PyYAML recurses with the nesting depth
(a ``[[[[...`` file overflows the stack) and expands aliases; this reader keeps
one stack of open blocks in a list and reads flow collections one level deep
(inner ones stay text). Anchors and tags are dropped, aliases are text, every
scalar is a ``str`` (the caller reads ``true`` / ``yes``: :func:`truthy`).

A line this reader cannot place (a plain scalar continued on the next line, a
key at an indentation no open block has) is skipped, never guessed at.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    Node = str | None | list["Node"] | dict[str, "Node"]

#: YAML 1.1 booleans that netplan and cloud-init accept as true.
TRUE = frozenset({"true", "yes", "on", "y"})
_QUOTE_OPENERS = " \t[{,:-"


def truthy(node: Node) -> bool:
    return isinstance(node, str) and node.lower() in TRUE


def load(text: str) -> dict[str, Node]:
    """The top-level mapping of ``text`` (``{}`` when it is not a mapping)."""
    return _Reader(text).read()


def _strip_comment(line: str) -> str:
    """``line`` without its ``#`` comment (a ``#`` after a blank, outside quotes)."""
    quote = ""
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"" and (i == 0 or line[i - 1] in _QUOTE_OPENERS):
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
        i += 1
    return line.rstrip()


#: The anchors and tags before a scalar (``&a !!str value``), dropped in one pass.
_ANCHORS_AND_TAGS = re.compile(r"(?:[&!]\S*[ \t]+)*")


def _unquote(text: str) -> str:
    """A scalar's value: quotes removed and their escapes decoded, anchors and tags
    dropped."""
    anchors = _ANCHORS_AND_TAGS.match(text)
    text = text[anchors.end():] if anchors else text
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        out: list[str] = []
        body = text[1:-1]
        i = 0
        while i < len(body):
            if body[i] == "\\" and i + 1 < len(body):
                nxt = body[i + 1]
                out.append({"n": "\n", "t": "\t", "0": "\0"}.get(nxt, nxt))
                i += 2
            else:
                out.append(body[i])
                i += 1
        return "".join(out)
    return text


def _split_flow(body: str) -> list[str]:
    """The top-level comma-separated items of a flow collection's inside."""
    items: list[str] = []
    depth, quote, start = 0, "", 0
    for i, ch in enumerate(body):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(body[start:i].strip())
            start = i + 1
    items.append(body[start:].strip())
    return [item for item in items if item]


def _split_key(text: str) -> tuple[str, str] | None:
    """``(key, rest)`` of a ``key: rest`` mapping entry, or None when ``text`` is not one."""
    if text[:1] in ("'", '"'):
        end = text.find(text[0], 1)
        if end < 0 or text[end + 1:end + 2] != ":" or text[end + 2:end + 3] not in ("", " ", "\t"):
            return None
        return _unquote(text[:end + 1]), text[end + 2:].strip()
    if text[:1] in ("[", "{"):
        return None
    i = text.find(":")
    while i >= 0:
        if i + 1 == len(text) or text[i + 1] in " \t":
            return text[:i].strip(), text[i + 1:].strip()
        i = text.find(":", i + 1)
    return None


def scalar_or_flow(text: str) -> Node:
    """The value written inline after ``key:`` or ``-``: a flow collection read one
    level deep, or a scalar."""
    if text.startswith("[") and text.endswith("]"):
        return [_unquote(item) for item in _split_flow(text[1:-1])]
    if text.startswith("{") and text.endswith("}"):
        mapping: dict[str, Node] = {}
        for item in _split_flow(text[1:-1]):
            pair = _split_key(item) or (item, "")
            mapping[_unquote(pair[0])] = _unquote(pair[1]) if pair[1] else None
        return mapping
    return _unquote(text)


class _Reader:
    """One pass over the lines; ``stack`` holds the open blocks and their indentation."""

    def __init__(self, text: str) -> None:
        self.lines: list[tuple[int, str]] = []
        for raw in text.splitlines():
            content = _strip_comment(raw.lstrip(" \t"))
            if content and content not in ("---", "...") and not content.startswith("%"):
                self.lines.append((len(raw) - len(raw.lstrip(" \t")), content))
        self.root: dict[str, Node] = {}
        self.stack: list[tuple[int, dict[str, Node] | list[Node]]] = []
        # A ``key:`` or ``-`` with nothing after it: (its indentation, container, slot).
        self.pending: tuple[int, dict[str, Node] | list[Node], str | int] | None = None
        self.i = 0

    def read(self) -> dict[str, Node]:
        if self.lines:
            self.stack.append((self.lines[0][0], self.root))
        while self.i < len(self.lines):
            indent, content = self.lines[self.i]
            self.i += 1
            self._open_pending(indent, content)
            is_item = content == "-" or content.startswith(("- ", "-\t"))
            while len(self.stack) > 1 and (
                    self.stack[-1][0] > indent
                    # a sequence written at its key's indentation ends at the next key
                    or (self.stack[-1][0] == indent and not is_item
                        and isinstance(self.stack[-1][1], list))):
                self.stack.pop()
            top_indent, node = self.stack[-1]
            if top_indent != indent:
                continue                 # a continuation line or an indentation error
            if is_item:
                if isinstance(node, list):
                    self._item(node, indent, content)
            elif isinstance(node, dict):
                self._entry(node, indent, content)
        return self.root

    def _open_pending(self, indent: int, content: str) -> None:
        """Give a pending ``key:`` the block that starts on this line, if it does."""
        if self.pending is None:
            return
        p_indent, parent, slot = self.pending
        self.pending = None
        is_item = content == "-" or content.startswith(("- ", "-\t"))
        if indent > p_indent or (indent == p_indent and is_item and isinstance(parent, dict)):
            child: dict[str, Node] | list[Node] = [] if is_item else {}
            if isinstance(parent, dict):
                parent[str(slot)] = child
            else:
                parent[int(slot)] = child
            self.stack.append((indent, child))

    def _item(self, seq: list[Node], indent: int, content: str) -> None:
        rest = content[1:].lstrip(" \t")
        if not rest:
            seq.append(None)
            self.pending = (indent, seq, len(seq) - 1)
            return
        pair = _split_key(rest)
        if pair is None:
            seq.append(self._inline(indent, rest))
            return
        mapping: dict[str, Node] = {}
        seq.append(mapping)
        inner = indent + len(content) - len(rest)
        self.stack.append((inner, mapping))
        self._entry(mapping, inner, rest)

    def _entry(self, mapping: dict[str, Node], indent: int, content: str) -> None:
        pair = _split_key(content)
        if pair is None:
            return
        key, rest = pair
        if not rest or (rest[:1] in ("&", "!") and " " not in rest):
            mapping[key] = None
            self.pending = (indent, mapping, key)
        else:
            mapping[key] = self._inline(indent, rest)

    def _inline(self, indent: int, rest: str) -> Node:
        """The value after ``key:`` or ``-`` on a line at ``indent``: a block scalar's
        lines are skipped, a flow collection's continuation lines joined."""
        if rest[:1] in ("|", ">"):
            while self.i < len(self.lines) and self.lines[self.i][0] > indent:
                self.i += 1
            return ""
        if rest[:1] in ("[", "{"):
            closer = "]" if rest[0] == "[" else "}"
            pieces = [rest]
            while not pieces[-1].endswith(closer) and self.i < len(self.lines) \
                    and self.lines[self.i][0] > indent:
                pieces.append(self.lines[self.i][1])
                self.i += 1
            rest = " ".join(pieces)
        return scalar_or_flow(rest)
