"""`{% module_script "conversations/chat/main.js" %}`: a page's ES module, with a modulepreload link for
every module it imports, directly or not, read from the import statements themselves: the list cannot
drift from the code, and the browser fetches the whole graph at once rather than a level at a time."""

from __future__ import annotations

import functools
import posixpath
import re

from django import template
from django.conf import settings
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

register = template.Library()

# A static import or re-export of a relative path (`import "./x.js"`, `import { a } from "../y.js"`,
# `export { b } from "./z.js"`), over several lines if need be. Dynamic `import()` is not preloaded.
IMPORT_RE = re.compile(r"""^\s*(?:import|export)\s+(?:[^"';]*?\s*from\s*)?["'](\.{1,2}/[^"']+)["']""", re.M)


def _module_source(path: str) -> str:
    found = finders.find(path)
    if not found:
        raise template.TemplateSyntaxError(f"No static file {path!r} (imported by a page's module).")
    with open(found, encoding="utf-8") as source:
        return source.read()


def module_imports(entry: str) -> list[str]:
    """The static paths of every module `entry` imports, directly or not, each once, nearest first."""
    seen = {entry}
    order: list[str] = []
    queue = [entry]
    while queue:
        path = queue.pop(0)
        for spec in IMPORT_RE.findall(_module_source(path)):
            imported = posixpath.normpath(posixpath.join(posixpath.dirname(path), spec))
            if imported not in seen:
                seen.add(imported)
                order.append(imported)
                queue.append(imported)
    return order


_module_imports_cached = functools.cache(module_imports)


@register.simple_tag
def module_script(entry: str) -> SafeString:
    """The preload links of `entry`'s imports, then its `<script type="module">` (read once per process,
    or at each page while DEBUG is on, so that an edited module is preloaded as it now reads)."""
    imports = module_imports(entry) if settings.DEBUG else _module_imports_cached(entry)
    preloads = format_html_join("\n", '<link rel="modulepreload" href="{}">', ((static(p),) for p in imports))
    script = format_html('<script type="module" src="{}"></script>', static(entry))
    return format_html("{}\n{}" if imports else "{}{}", preloads, script)
