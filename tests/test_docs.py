"""Every Python example in README.md and docs/ runs, in order, on asyncio and trio."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import anyio
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def test_every_page_with_examples_is_collected() -> None:
    """The README and the guides have examples, so an empty glob cannot pass silently."""
    names = {page.name for page in PAGES if BLOCK.search(page.read_text())}
    assert {"README.md", "quickstart.md", "concepts.md"} <= names


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_examples_run(page: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's python blocks run top to bottom in one namespace without error."""
    blocks = BLOCK.findall(page.read_text())
    monkeypatch.setattr(anyio, "run", functools.partial(anyio.run, backend=backend))
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for number, source in enumerate(blocks, 1):
        code = compile(source, f"{page.name} block {number}", "exec")
        exec(code, namespace)
