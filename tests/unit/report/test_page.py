"""report/page.py: the report's blocks rendered to Markdown and to one self-contained HTML file (every image
embedded). The page adala-report writes with them: tests/e2e/test_report_page.py."""

from __future__ import annotations

import base64

import numpy as np
from matplotlib.image import imsave

from adala_bench.report.page import Bullets, Heading, Image, Table, Text, inline_html, to_html, to_markdown
from helpers import parse_html


def test_blocks_render_to_markdown_and_html(tmp_path):
    imsave(tmp_path / "f.png", np.zeros((4, 4, 3)))
    blocks = [Heading(2, "Title `x`"), Text("a < b, **bold**, [file](table2.csv)"), Bullets(["one", "two"]),
              Table(["A", "B|C"], [["1", "2"]]), Image("f.png", "a caption")]
    assert to_markdown(blocks) == (
        "## Title `x`\n\na < b, **bold**, [file](table2.csv)\n\n- one\n- two\n\n| A | B\\|C |\n| --- | ---: |\n"
        "| 1 | 2 |\n\n![a caption](f.png)\n\n*a caption*\n")
    html = to_html(blocks, tmp_path, "T")
    assert "<h2>Title <code>x</code></h2>" in html
    assert "<p>a &lt; b, <strong>bold</strong>, <a href=\"table2.csv\">file</a></p>" in html
    assert '<td class="l">1</td><td class="r">2</td>' in html
    (src,) = parse_html(html).images
    assert src == "data:image/png;base64," + base64.b64encode((tmp_path / "f.png").read_bytes()).decode()
    assert inline_html("`<b>` & <i>") == "<code>&lt;b&gt;</code> &amp; &lt;i&gt;"
