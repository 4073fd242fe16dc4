"""The one command line: every subcommand's --help text reads as written (argparse %-formats help strings
but not descriptions and epilogs, so a `%%` there is printed literally)."""

from __future__ import annotations

import argparse

from dense_descriptor_ros.cli import build_parser


def _parsers(parser: argparse.ArgumentParser, name: str = "dense-descriptor"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_every_help_text_is_formatted():
    seen = []
    for name, parser in _parsers(build_parser()):
        text = parser.format_help()
        assert "%%" not in text and "%(" not in text, f"`{name} --help` prints a literal %: {text}"
        seen.append(name)
    assert "dense-descriptor sim camera" in seen and "dense-descriptor node" in seen
