"""Code blocks in the docs run as written."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.parametrize("page", ["priors.md", "training.md"])
def test_doc_example_runs(page):
    text = (DOCS / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    exec(compile(blocks[0], f"docs/{page}", "exec"), {})
