"""GRUB 2's configuration language read into commands and blocks, without running it.

Source: the GRUB manual, "Shell-like scripting" (words, quoting, variable expansion,
``if``/``for``/``while``/``until``, ``function``, ``menuentry`` and ``submenu``
blocks), and GRUB's lexer and grammar (grub-core/script/yylex.l, parser.y):

- blanks separate words; a newline or ``;`` ends a command; ``#`` at the start of a
  word comments out the rest of the line;
- ``'...'`` keeps everything literally; ``"..."`` expands ``$name``/``${name}`` and
  lets a backslash escape only ``\\``, ``"``, ``$`` and a newline; outside quotes a
  backslash escapes any character and backslash-newline joins lines;
- ``{`` and ``}`` open and close the body of ``menuentry``, ``submenu`` and
  ``function``.

GRUB's ``normal`` mode reads ``grub.cfg`` one top-level command at a time and, on a
syntax error, reports it and goes on with the next line. :func:`parse` does the same:
the commands it could read, and a :class:`~imgscan.errors.CorruptImage` per error
(the file, ``GRUB script`` and the byte offset), never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imgscan import limits
from imgscan.errors import CorruptImage

#: ``(is_variable, text)``: a literal piece, or the name of a variable to expand.
Segment = tuple[bool, str]

_BLANKS = " \t\r"
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_SPECIAL_VARS = frozenset("?#@*")
#: Words that start a compound command, and those that end a part of one.
_OPENERS = frozenset({"if", "for", "while", "until", "function", "menuentry", "submenu"})


@dataclass
class Word:
    """One word: its pieces, and its text when it is a bare literal (no quotes, no
    variable), which is how keywords and braces are recognised. An unquoted word that
    expands to nothing is no argument at all (``$menuentry_id_option`` unset)."""

    segments: list[Segment]
    bare: str | None
    offset: int
    quoted: bool = False


@dataclass
class Command:
    """A simple command: its words, unexpanded."""

    words: list[Word]
    offset: int


@dataclass
class Block:
    """``menuentry``, ``submenu`` or ``function``: the words before ``{`` and the body."""

    kind: str
    words: list[Word]
    body: list[Node]
    offset: int


@dataclass
class If:
    """``if`` / ``elif`` arms as (condition, body), and the ``else`` body."""

    arms: list[tuple[list[Node], list[Node]]]
    otherwise: list[Node]
    offset: int


@dataclass
class Loop:
    """``for``, ``while`` or ``until``: never run by the reader (no loop of a real
    ``grub.cfg`` defines the default entry), kept so the commands after it line up."""

    offset: int


Node = Command | Block | If | Loop


class ScriptError(Exception):
    """A syntax error at ``offset``; ``to_end`` when GRUB, looking for the end of the
    construct (a closing quote, ``}``, ``fi``), has read the rest of the file."""

    def __init__(self, offset: int, problem: str, to_end: bool = False) -> None:
        super().__init__(problem)
        self.offset = offset
        self.problem = problem
        self.to_end = to_end


@dataclass
class _Token:
    kind: str            # "word", "sep" (newline or ';') or "eof"
    offset: int
    word: Word | None = None


@dataclass
class Script:
    """A parsed file: its top-level commands and the syntax errors skipped over."""

    nodes: list[Node] = field(default_factory=list)
    problems: list[CorruptImage] = field(default_factory=list)


def parse(text: str, path: str) -> Script:
    """The commands of the GRUB script ``text`` (read from ``path``, for errors)."""
    script = Script()
    start = 0
    while start < len(text):
        parser = _Parser(text, start, path)
        try:
            node = parser.command(0)
        except ScriptError as exc:
            script.problems.append(CorruptImage(path, "GRUB script", exc.offset, exc.problem))
            limits.enforce(len(script.problems), "BOOT_MAX_SCRIPT_ERRORS", path,
                           "GRUB script", exc.offset, "syntax errors")
            nl = text.find("\n", exc.offset)
            start = len(text) if nl < 0 or exc.to_end else nl + 1
            continue
        if node is not None:
            script.nodes.append(node)
        start = parser.pos
    return script


class _Parser:
    """Recursive descent over a token stream read lazily from ``pos``."""

    def __init__(self, text: str, pos: int, path: str) -> None:
        self.text = text
        self.path = path
        self.pos = pos
        self._peeked: _Token | None = None

    # -- tokens --------------------------------------------------------------------------
    def peek(self) -> _Token:
        if self._peeked is None:
            self._peeked = self._lex()
        return self._peeked

    def take(self) -> _Token:
        tok = self.peek()
        self._peeked = None
        return tok

    def _lex(self) -> _Token:
        text, n = self.text, len(self.text)
        i = self.pos
        while True:
            while i < n and text[i] in _BLANKS:
                i += 1
            if text.startswith("\\\n", i):          # a line joined to the next
                i += 2
                continue
            break
        if i >= n:
            self.pos = n
            return _Token("eof", n)
        c = text[i]
        if c in "\n;":
            self.pos = i + 1
            return _Token("sep", i)
        if c == "#":
            nl = text.find("\n", i)
            self.pos = n if nl < 0 else nl
            return self._lex()
        word = self._word(i)
        return _Token("word", i, word)

    def _word(self, start: int) -> Word:
        text, n = self.text, len(self.text)
        i = start
        self._segments: list[Segment] = []
        self._literal: list[str] = []
        quoted = False
        while i < n and text[i] not in _BLANKS and text[i] not in "\n;":
            c = text[i]
            if c == "\\":
                if i + 1 < n and text[i + 1] != "\n":
                    self._literal.append(text[i + 1])
                i += 2
            elif c == "'":
                quoted = True
                end = text.find("'", i + 1)
                if end < 0:
                    raise ScriptError(i, "unterminated single quote", to_end=True)
                self._literal.append(text[i + 1:end])
                i = end + 1
            elif c == '"':
                quoted = True
                i = self._double_quoted(i)
            elif c == "$":
                i = self._variable(i)
            else:
                self._literal.append(c)
                i += 1
        self._flush()
        self.pos = i
        segments = self._segments
        plain = not quoted and all(not is_var for is_var, _ in segments)
        bare = "".join(t for _, t in segments) if plain else None
        return Word(segments, bare, start, quoted)

    def _flush(self) -> None:
        if self._literal:
            self._segments.append((False, "".join(self._literal)))
            self._literal = []

    def _double_quoted(self, start: int) -> int:
        text, n = self.text, len(self.text)
        i = start + 1
        while i < n:
            c = text[i]
            if c == '"':
                return i + 1
            if c == "\\" and i + 1 < n and text[i + 1] in '\\"$\n':
                if text[i + 1] != "\n":
                    self._literal.append(text[i + 1])
                i += 2
            elif c == "$":
                i = self._variable(i)
            else:
                self._literal.append(c)
                i += 1
        raise ScriptError(start, "unterminated double quote", to_end=True)

    def _variable(self, start: int) -> int:
        """``$name``, ``${name}``, ``$1``, ``$?``: a variable piece; a ``$`` before
        anything else is literal."""
        text, n = self.text, len(self.text)
        i = start + 1
        if i < n and text[i] == "{":
            end = text.find("}", i + 1)
            if end < 0 or "\n" in text[i + 1:end]:
                raise ScriptError(start, "unterminated ${")
            name = text[i + 1:end]
            i = end + 1
        elif i < n and text[i] in _SPECIAL_VARS:
            name = text[i]
            i += 1
        else:
            j = i
            while j < n and text[j] in _NAME_CHARS:
                j += 1
            if j == i:
                self._literal.append("$")
                return i
            name = text[i:j]
            i = j
        self._flush()
        self._segments.append((True, name))
        return i

    # -- grammar -------------------------------------------------------------------------
    def _skip_seps(self) -> None:
        while self.peek().kind == "sep":
            self.take()

    def command(self, depth: int) -> Node | None:
        """One command from the current position; None at the end of the text."""
        self._skip_seps()
        tok = self.peek()
        if tok.kind == "eof":
            return None
        assert tok.word is not None
        key = tok.word.bare
        if key in _OPENERS:
            limits.enforce(depth + 1, "BOOT_MAX_NESTING", self.path, "GRUB script",
                           tok.offset, "nested blocks")
            if key == "if":
                return self._if(depth + 1)
            if key in ("for", "while", "until"):
                return self._loop(depth + 1)
            return self._block(depth + 1)
        if key == "}":
            raise ScriptError(tok.offset, "'}' without a block to close")
        if key in ("then", "elif", "else", "fi", "do", "done"):
            raise ScriptError(tok.offset, f"'{key}' outside its compound command")
        return Command(self._words(), tok.offset)

    def _words(self) -> list[Word]:
        """The words up to the end of the command; a bare ``}`` ends it too (and is
        left for the block it closes)."""
        words: list[Word] = []
        while True:
            tok = self.peek()
            if tok.kind != "word":
                if tok.kind == "sep":
                    self.take()
                return words
            assert tok.word is not None
            if tok.word.bare == "}" and words:
                return words
            self.take()
            words.append(tok.word)

    def _body(self, depth: int, ends: tuple[str, ...], start: int) -> tuple[list[Node], str]:
        """Commands up to one whose first word is one of ``ends`` (taken; returned)."""
        nodes: list[Node] = []
        while True:
            self._skip_seps()
            tok = self.peek()
            if tok.kind == "eof":
                raise ScriptError(start, f"no {' or '.join(repr(e) for e in ends)} "
                                         "before the end of the file", to_end=True)
            assert tok.word is not None
            if tok.word.bare in ends:
                self.take()
                return nodes, tok.word.bare or ""
            node = self.command(depth)
            if node is not None:
                nodes.append(node)

    def _if(self, depth: int) -> If:
        start = self.take().offset
        arms: list[tuple[list[Node], list[Node]]] = []
        while True:
            cond, _ = self._body(depth, ("then",), start)
            body, end = self._body(depth, ("elif", "else", "fi"), start)
            arms.append((cond, body))
            if end == "fi":
                return If(arms, [], start)
            if end == "else":
                otherwise, _ = self._body(depth, ("fi",), start)
                return If(arms, otherwise, start)

    def _loop(self, depth: int) -> Loop:
        start = self.take().offset
        self._body(depth, ("do",), start)
        self._body(depth, ("done",), start)
        return Loop(start)

    def _block(self, depth: int) -> Block:
        first = self.take()
        assert first.word is not None
        kind = first.word.bare or ""
        words: list[Word] = []
        while True:
            tok = self.peek()
            if tok.kind != "word":
                raise ScriptError(first.offset, f"{kind} without a '{{' block")
            self.take()
            assert tok.word is not None
            if tok.word.bare == "{":
                break
            words.append(tok.word)
        body, _ = self._body(depth, ("}",), first.offset)
        return Block(kind, words, body, first.offset)
