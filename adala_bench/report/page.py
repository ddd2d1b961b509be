"""A report page as a list of blocks, rendered to Markdown and to one self-contained HTML file from the same
blocks, so that the two cannot say different things.

Blocks: Heading, Text (a paragraph), Table (header and rows of strings), Bullets, Image (a PNG in the output
folder; `figure` gives one only where it was drawn). Inline markup inside any text is the small subset both
renderers understand: `code`, **bold** and [text](file) links to files beside the page. The HTML embeds every image as a base64 data: URI and loads nothing
else: one file to copy off a GPU box and open in any browser.
"""
from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]
    align: str = ""  # one letter per column, "l" or "r"; default: first column left, the rest right


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Image:
    file: str  # a PNG, relative to the page's folder
    caption: str


Block = Heading | Text | Table | Bullets | Image


def figure(drawn: set[str] | None, stem: str, caption: str) -> list[Block]:
    """The figure `stem`.png as an Image, where it was drawn (`drawn`: the file names written; None: figures were
    not asked for); nothing otherwise."""
    return [Image(stem + ".png", caption)] if drawn is not None and stem + ".png" in drawn else []


# --- Markdown -------------------------------------------------------------------------------------------------

def to_markdown(blocks: list[Block]) -> str:
    return "\n\n".join(_markdown(block) for block in blocks) + "\n"


def _markdown(block: Block) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + block.text
    if isinstance(block, Text):
        return block.text
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Image):
        return f"![{block.caption}]({block.file})\n\n*{block.caption}*"
    align = _align(block)
    lines = [_row(block.header), "| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |"]
    return "\n".join(lines + [_row(row) for row in block.rows])


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _align(table: Table) -> str:
    return table.align or "l" + "r" * (len(table.header) - 1)


# --- HTML -----------------------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 78rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.45;
       color: #222; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; }
th { background: #f3f3f3; }
td.r, th.r { text-align: right; white-space: nowrap; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; }
figcaption { font-style: italic; font-size: 0.9rem; }
code { background: #f3f3f3; padding: 0 0.2rem; }
"""


def to_html(blocks: list[Block], folder: Path, title: str) -> str:
    """The page as one HTML document; images are read from `folder` and embedded."""
    body = "\n".join(_html(block, Path(folder)) for block in blocks)
    head = f'<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n<style>{STYLE}</style>'
    return f'<!DOCTYPE html>\n<html lang="en">\n<head>\n{head}\n</head>\n<body>\n{body}\n</body>\n</html>\n'


def _html(block: Block, folder: Path) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{inline_html(block.text)}</h{block.level}>"
    if isinstance(block, Text):
        return f"<p>{inline_html(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>\n" + "\n".join(f"<li>{inline_html(item)}</li>" for item in block.items) + "\n</ul>"
    if isinstance(block, Image):
        caption = f"<figcaption>{inline_html(block.caption)}</figcaption>"
        path = folder / block.file
        if not path.is_file():
            return f"<figure>{caption} (figure file {html.escape(block.file)} missing)</figure>"
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        alt = html.escape(block.caption, quote=True)
        return f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">{caption}</figure>'
    align = _align(block)
    head = "".join(f'<th class="{a}">{inline_html(h)}</th>' for a, h in zip(align, block.header))
    rows = ["<tr>" + "".join(f'<td class="{a}">{inline_html(str(c))}</td>' for a, c in zip(align, row)) + "</tr>"
            for row in block.rows]
    return "<table>\n<thead><tr>" + head + "</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"


_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def inline_html(text: str) -> str:
    """Escape `text` and turn its `code`, **bold** and [text](file) into HTML (code spans are left as they are)."""
    parts = _CODE.split(text)  # odd positions: inside backticks
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<code>{html.escape(part)}</code>")
            continue
        part = html.escape(part, quote=False)
        part = _BOLD.sub(r"<strong>\1</strong>", part)
        part = _LINK.sub(lambda m: f'<a href="{html.escape(m[2], quote=True)}">{m[1]}</a>', part)
        out.append(part)
    return "".join(out)
