"""Code blocks in the docs run as written."""

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_priors_doc_example_runs():
    text = (DOCS / "priors.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    exec(compile(blocks[0], "docs/priors.md", "exec"), {})
