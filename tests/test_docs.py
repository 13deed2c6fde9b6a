"""Code blocks in the docs run as written."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture
def tables():
    """A page may register methods, reps or priors: the tables are restored afterwards."""
    from diffrep.methods import METHODS
    from diffrep.priors import PRIORS
    from diffrep.reps import REPS

    saved = [(table, dict(table)) for table in (METHODS, REPS, PRIORS)]
    yield
    for table, rows in saved:
        table.clear()
        table.update(rows)


@pytest.mark.parametrize("page", ["priors.md", "training.md", "extending.md"])
def test_doc_example_runs(page, tables):
    text = (DOCS / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    code = "\n".join(blocks) if page == "extending.md" else blocks[0]  # extending.md's blocks build on each other
    exec(compile(code, f"docs/{page}", "exec"), {})
