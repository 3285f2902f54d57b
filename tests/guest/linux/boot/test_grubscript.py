"""GRUB script syntax: quoting, nesting, and malformed input (reported, never raised)."""

from __future__ import annotations

import pytest

from imgscan.guest.linux.boot import grubscript
from imgscan.guest.linux.boot.grubscript import Block, Command, If, Loop, Word


def _text(word: Word) -> str:
    return "".join(f"${{{t}}}" if v else t for v, t in word.segments)


def _commands(source: str) -> list[list[str]]:
    script = grubscript.parse(source, "grub.cfg")
    assert script.problems == []
    return [[_text(w) for w in n.words] for n in script.nodes if isinstance(n, Command)]


@pytest.mark.parametrize(("source", "words"), [
    ("linux /vmlinuz root=/dev/sda1 ro", ["linux", "/vmlinuz", "root=/dev/sda1", "ro"]),
    ("echo 'a b' \"c d\"", ["echo", "a b", "c d"]),
    ("echo 'it''s'", ["echo", "its"]),
    ("echo '$x \\n'", ["echo", "$x \\n"]),                 # single quotes: all literal
    ('echo "a\\"b\\\\c\\$d\\e"', ["echo", 'a"b\\c$d\\e']),  # double: \\ \" \$ only
    ("echo a\\ b\\;c", ["echo", "a b;c"]),                 # unquoted backslash
    ("echo a \\\n b", ["echo", "a", "b"]),                  # line continuation
    ('set default="${saved_entry}"', ["set", "default=${saved_entry}"]),
    ("echo $x$y-${z}_$1 $", ["echo", "${x}${y}-${z}_${1}", "$"]),
    ("echo a # comment", ["echo", "a"]),
    ("echo a#b", ["echo", "a#b"]),
])
def test_words(source: str, words: list[str]) -> None:
    assert _commands(source) == [words]


def test_separators_and_comments() -> None:
    assert _commands("a; b\n\n# c\n  d e ;") == [["a"], ["b"], ["d", "e"]]


def test_nesting() -> None:
    source = """
submenu 'Advanced' --id adv {
  menuentry "Linux {braces}" --id 'l1' { linux /vmlinuz-1 root=UUID=x }
  menuentry 'two' {
    if [ x$grub_platform = xxen ]; then insmod xzio; elif true; then a; else b; fi
    linux /vmlinuz-2
  }
}
function f { echo; }
for x in 1 2; do echo $x; done
"""
    script = grubscript.parse(source, "grub.cfg")
    assert script.problems == []
    submenu, function, loop = script.nodes
    assert isinstance(submenu, Block) and submenu.kind == "submenu"
    one, two = submenu.body
    assert isinstance(one, Block) and _text(one.words[0]) == "Linux {braces}"
    assert isinstance(one.body[0], Command) and len(one.body[0].words) == 3
    assert isinstance(two, Block) and isinstance(two.body[0], If)
    assert len(two.body[0].arms) == 2 and len(two.body[0].otherwise) == 1
    assert isinstance(function, Block) and function.kind == "function"
    assert isinstance(loop, Loop)


@pytest.mark.parametrize(("source", "offset", "problem", "kept"), [
    ("a\necho 'open\nb\n", 7, "unterminated single quote", 1),   # to the end
    ('a\necho "open\nb\n', 7, "unterminated double quote", 1),
    ("a\necho ${x\nb\n", 7, "unterminated ${", 2),
    ("a\n}\nb\n", 2, "'}' without a block", 2),
    ("a\nfi\nb\n", 2, "'fi' outside", 2),
    ("menuentry x {\n linux /v\n", 0, "no '}' before the end", 0),
    ("if true; then\na\n", 0, "no 'elif' or 'else' or 'fi'", 0),
    ("menuentry x\nb\n", 0, "menuentry without a '{' block", 1),
])
def test_malformed(source: str, offset: int, problem: str, kept: int) -> None:
    """A syntax error drops that command and GRUB goes on with the next line (or
    stops, when it read to the end of the file looking for a quote, ``}`` or ``fi``)."""
    script = grubscript.parse(source, "grub.cfg")
    assert len(script.problems) == 1
    err = script.problems[0]
    assert err.path == "grub.cfg" and err.structure == "GRUB script"
    assert err.offset == offset and problem in err.problem
    assert len(script.nodes) == kept
