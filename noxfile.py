"""Developer sessions: ``nox -s tests lint typing docs bench demo screenshots``."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typing"]
nox.options.default_venv_backend = "venv"


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite on asyncio and trio, with branch coverage of at least 95%."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[test,lint]")
    session.run("mypy", "eventbus", "eventbus_pytest.py")


@nox.session
def docs(session: nox.Session) -> None:
    """Run every code example in README.md and docs/ (they are tests too)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "tests/test_docs.py", "--no-cov", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against the plain-anyio baseline and peer libraries."""
    session.install("-e", ".[test,bench]")
    session.run("python", "-c", "import pathlib; pathlib.Path('.benchmarks').mkdir(exist_ok=True)")
    session.run(
        "python",
        "-m",
        "pytest",
        "benchmarks",
        "--no-cov",
        "--benchmark-only",
        "--benchmark-group-by=group",
        "--benchmark-columns=median,ops,rounds",
        "--benchmark-json=.benchmarks/latest.json",
        *session.posargs,
    )
    session.run("python", "benchmarks/report.py", ".benchmarks/latest.json")


@nox.session
def demo(session: nox.Session) -> None:
    """The storefront demo."""
    session.install("-e", ".")
    session.run("python", "-m", "eventbus", "demo")


@nox.session
def screenshots(session: nox.Session) -> None:
    """The dev UI's screenshots in docs/ui/, taken by its browser test (needs chromium)."""
    session.install("-e", ".[test]")
    session.run(
        "python",
        "-m",
        "pytest",
        "tests/server/test_ui_browser.py",
        "--no-cov",
        env={"EVENTBUS_UI_SCREENSHOTS": "docs/ui"},
    )
