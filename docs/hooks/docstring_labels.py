"""mkdocs hook: let docstrings written as plain text render as intended.

Two habits of this project's docstrings need help from Markdown:

* they end with lines such as `PyTorch: ...`, `Pitfall: ...` and `Reference: ...`,
  one after the other, which Markdown would join into one paragraph: each gets its
  own paragraph and a bold label;
* display math `$$...$$` often sits on the line right after text or after another
  `$$...$$` line, which pymdownx.arithmatex would not see as a block of its own:
  each display gets blank lines around it.

It applies to every page and to the docstrings mkdocstrings renders (they share the
site's Markdown extensions).
"""

from __future__ import annotations

import re

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor
from mkdocs.plugins import event_priority

_LABEL = re.compile(r"^(?P<indent> {0,3})(?P<label>PyTorch|Pitfalls?|References?)(?P<rest>:.*)$")
_FENCE = re.compile(r"^\s*(```|~~~)")


class _Labels(Preprocessor):
    def run(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        fenced = in_math = after_math = False

        def blank_line() -> None:
            if out and out[-1].strip():
                out.append("")

        for line in lines:
            text = line.strip()
            if _FENCE.match(line):
                fenced = not fenced
            if fenced:
                out.append(line)
                continue
            if after_math and text:
                blank_line()
            after_math = False
            if not in_math and text.startswith("$$"):
                blank_line()
                in_math = not (len(text) >= 4 and text.endswith("$$"))
                after_math = not in_math
            elif in_math and text.endswith("$$"):
                in_math, after_math = False, True
            elif not in_math and (m := _LABEL.match(line)):
                blank_line()
                line = f"{m['indent']}**{m['label']}:**{m['rest'][1:]}"
            out.append(line)
        return out


class DocstringLabels(Extension):
    def extendMarkdown(self, md: Markdown) -> None:  # noqa: N802 - Markdown's API
        md.preprocessors.register(_Labels(md), "docstring_labels", 15)


@event_priority(100)  # before mkdocstrings reads the extension list
def on_config(config):
    config.markdown_extensions.append(DocstringLabels())
    return config
