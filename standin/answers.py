"""What the stand-in says when nothing tells it otherwise: a Markdown answer chosen by the question's
words, and a short title when it is asked for one. Deterministic: the same words give the same text.

Free of Django, as the stand-in is.
"""

from __future__ import annotations

import re
import zlib

# Splits Markdown into word tokens, each with the whitespace after it (newlines included), so the pieces
# rejoin exactly and a reply cut after N tokens is its first N words.
MARKDOWN_TOKEN_RE = re.compile(r"\s*\S+\s*")
DOCS_LINK = "[the Dedalus documentation](https://docs.dedaluslabs.ai)"
TOPIC_WORDS = 12
TITLE_WORDS = 4

CODE = """\
Here is a small, self-contained example:

```python
def word_counts(text: str) -> dict[str, int]:
    \"\"\"Count each word of `text`, ignoring case.\"\"\"
    counts: dict[str, int] = {}
    for word in text.lower().split():
        counts[word] = counts.get(word, 0) + 1
    return counts


print(word_counts("the cat saw the dog"))
```

It walks the text once, so it runs in **linear time**; `collections.Counter` does the same in one line.
"""

TABLE = """\
The main options compare like this:

| option | speed | cost | best for |
|---|---|---|---|
| Small model | fast | low | short answers, titles |
| Large model | slower | higher | reasoning, long documents |
| Agent with tools | varies | per call | live data, actions |

Start small and move up only when the answers fall short.
"""

STEPS = """\
A plan in four steps:

1. **Define the goal** in one sentence.
2. **List what you already have**: data, tools, people.
3. **Try the smallest version** and measure it.
4. **Keep what worked**, drop the rest, and repeat.

Each step should take hours, not weeks.
"""

POINTS = """\
A few points worth knowing:

- **Context matters**: the same question has different answers in different settings.
- **Sources**: prefer primary sources, and check their dates.
- **Trade-offs**: every choice costs something; name what you give up.

> In short: be specific, and verify before you rely on it.
"""

SECTIONS = {"code": CODE, "table": TABLE, "steps": STEPS, "points": POINTS}
# The words that pick a kind of answer, first match wins; otherwise the words' hash picks one.
KEYWORDS = (
    (
        "code",
        {"code", "python", "function", "script", "program", "bug", "error", "sql", "javascript", "regex"},
    ),
    (
        "table",
        {"compare", "comparison", "table", "versus", "vs", "difference", "differences", "price", "cost"},
    ),
    ("steps", {"how", "steps", "plan", "guide", "install", "setup", "start", "learn", "recipe"}),
    ("points", {"why", "explain", "story", "idea", "ideas", "tips", "advice", "summary", "summarise"}),
)
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "can",
        "could",
        "do",
        "does",
        "for",
        "from",
        "give",
        "how",
        "i",
        "in",
        "is",
        "it",
        "me",
        "my",
        "of",
        "on",
        "or",
        "please",
        "tell",
        "that",
        "the",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    ]
)


def answer_kind(words: list[str]) -> str:
    """The kind of answer the question's words call for: code, table, steps or points."""
    lowered = {word.strip(".,!?:;\"'()").lower() for word in words}
    for kind, triggers in KEYWORDS:
        if lowered & triggers:
            return kind
    kinds = list(SECTIONS)
    return kinds[zlib.crc32(" ".join(words).lower().encode()) % len(kinds)]


def answer_markdown(words: list[str], seen: list[str], citing: str = "") -> str:
    """A realistic Markdown answer to a question of `words` (with `seen`, what its attachments were):
    `citing` (the paragraph citing the sources it was given, sources.py) first when there is one, a
    paragraph naming what it sees and the question, the section its kind calls for, and a link."""
    topic = " ".join(words[:TOPIC_WORDS]) + (" …" if len(words) > TOPIC_WORDS else "")
    opening = f"You asked: “{topic}”. Here is a short answer." if words else "Here is a short answer."
    if seen:
        opening = "I see: " + "; ".join(seen) + ". " + opening
    if citing:
        opening = f"{citing}\n\n{opening}"
    return f"{opening}\n\n{SECTIONS[answer_kind(words)]}\nFor more, see {DOCS_LINK}.\n"


def answer_tokens(words: list[str], seen: list[str], count: int | None, citing: str = "") -> list[str]:
    """The answer as tokens: its natural length when `count` is None, else exactly `count` tokens (cut,
    or followed by the other kinds' sections until long enough)."""
    tokens = MARKDOWN_TOKEN_RE.findall(answer_markdown(words, seen, citing))
    if count is None:
        return tokens
    first = answer_kind(words)
    others = [text for kind, text in SECTIONS.items() if kind != first]
    index = 0
    while len(tokens) < count:
        tokens.extend(MARKDOWN_TOKEN_RE.findall("\n" + others[index % len(others)]))
        index += 1
    return tokens[:count]


def title_of_conversation(text: str) -> str:
    """A short title from a conversation's words: the first few words that say something, capitalised."""
    user_part = re.split(r"\bAssistant:", text, maxsplit=1)[0]
    labels_out = [word for word in user_part.split() if not word.endswith(":")]  # "User:"
    words = [word.strip(".,!?:;\"'()[]*_`#>“”") for word in labels_out]
    kept = [word for word in words if word and word.lower() not in STOPWORDS]
    if not kept:
        return "New conversation"
    title = " ".join(kept[:TITLE_WORDS])
    return title[0].upper() + title[1:]


def tool_results_answer(results: list[tuple[str, str]]) -> str:
    """The answer to a turn that returned the client's tool results ((call id, text) pairs): it quotes
    each, so a test sees the round trip."""
    quoted = "; ".join(f"{call_id} returned “{text}”" for call_id, text in results)
    return f"The tools answered: {quoted}. That is all I needed."
