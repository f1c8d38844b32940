"""A report as a list of blocks (headings, text, tables, figures), rendered to Markdown and to HTML.

One structure, two renderings: ``report.md`` for reading on GitHub and ``report.html`` for a
browser (figures inline, tables styled), with the same content. Text blocks may use `code` and
**bold**, the only inline markup rendered to HTML.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from robustnas.report import format_cell, markdown_table

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}code{background:#f4f4f4;padding:1px 4px}
img{max-width:100%;border:1px solid #eee}figure{margin:1.5em 0}figcaption{color:#555;font-size:0.9em}"""


@dataclass
class Document:
    """Blocks in order; ``write`` renders them next to the figures they reference."""

    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", (level, text)))

    def text(self, text: str) -> None:
        self.blocks.append(("text", text))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(("bullets", items))

    def table(self, frame: pd.DataFrame, float_format: str = "{:.3f}") -> None:
        self.blocks.append(("table", (frame, float_format)))

    def figure(self, path: str, caption: str) -> None:
        """``path`` relative to the report directory."""
        self.blocks.append(("figure", (path, caption)))

    def markdown(self) -> str:
        parts = [f"# {self.title}"]
        for kind, value in self.blocks:
            if kind == "heading":
                level, text = value
                parts.append("#" * level + " " + text)
            elif kind == "text":
                parts.append(value)
            elif kind == "bullets":
                parts.append("\n".join(f"- {item}" for item in value))
            elif kind == "table":
                frame, float_format = value
                parts.append(markdown_table(frame, float_format))
            else:
                path, caption = value
                parts.append(f"![{caption}]({path})\n\n*{caption}*")
        return "\n\n".join(parts) + "\n"

    def html(self) -> str:
        parts = [f"<h1>{html.escape(self.title)}</h1>"]
        for kind, value in self.blocks:
            if kind == "heading":
                level, text = value
                parts.append(f"<h{level}>{_inline(text)}</h{level}>")
            elif kind == "text":
                parts.append(f"<p>{_inline(value)}</p>")
            elif kind == "bullets":
                parts.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in value) + "</ul>")
            elif kind == "table":
                frame, float_format = value
                parts.append(_html_table(frame, float_format))
            else:
                path, caption = value
                parts.append(f'<figure><img src="{html.escape(path)}" alt="{html.escape(caption)}">'
                             f"<figcaption>{_inline(caption)}</figcaption></figure>")
        body = "\n".join(parts)
        return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(self.title)}</title>"
                f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")

    def write(self, directory: Path, stem: str = "report") -> tuple[Path, Path]:
        """``directory/stem.md`` and ``directory/stem.html``."""
        directory.mkdir(parents=True, exist_ok=True)
        markdown, page = directory / f"{stem}.md", directory / f"{stem}.html"
        markdown.write_text(self.markdown(), encoding="utf-8")
        page.write_text(self.html(), encoding="utf-8")
        return markdown, page


def _inline(text: str) -> str:
    """HTML of ``text`` with `code` and **bold** rendered, everything else escaped."""
    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


def _html_table(frame: pd.DataFrame, float_format: str) -> str:
    def cell(value: object) -> str:
        return html.escape(format_cell(value, float_format))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
