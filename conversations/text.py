"""Text from outside made storable: Postgres text refuses NUL, and UTF-8 cannot encode a lone surrogate."""

import re

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def text_storable(value: str) -> str:
    """Return `value` without U+0000 and with each lone surrogate replaced by U+FFFD.

    A well-formed Python str never pairs surrogates (an astral character is one code point), so any
    surrogate left in it is a lone one (from JSON's "\\ud800" escapes, or a lax decoder).
    """
    return _LONE_SURROGATE.sub("\ufffd", value.replace("\x00", ""))
