"""The inotify watcher against real files: what counts as a change, what is passed over,
and trees that move, appear or are reached through a symbolic link."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pmdaemon.watch import Ignore, Inotify, TreeWatch

DEADLINE = 5.0


class Seen:
    def __init__(self) -> None:
        self.paths: list[str] = []
        self.event = asyncio.Event()

    def __call__(self, path: str) -> None:
        self.paths.append(path)
        self.event.set()

    async def next(self) -> str:
        await asyncio.wait_for(self.event.wait(), DEADLINE)
        self.event.clear()
        return self.paths[-1]


async def watching(
    base: Path, roots: tuple[str, ...], ignore: list[str] | None = None
) -> tuple[Inotify, TreeWatch, Seen]:
    hub = Inotify()
    seen = Seen()
    tree = TreeWatch(base, roots, Ignore(ignore), seen)
    await hub.watch(tree)
    return hub, tree, seen


async def marker(seen: Seen, base: Path, name: str = "marker.txt") -> list[str]:
    """Write a file that counts and wait for it: every earlier event has been read."""
    (base / "src" / name).write_text("x")
    while not seen.paths or not seen.paths[-1].endswith(name):
        await seen.next()
    return [p for p in seen.paths if not p.endswith(name)]


@pytest.fixture
def base(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "src" / "lib").mkdir(parents=True)
    (tmp_path / "src" / "node_modules" / "dep").mkdir(parents=True)
    yield tmp_path


def run(coro: Callable[[], object]) -> None:
    asyncio.run(coro())  # type: ignore[arg-type]


def test_a_write_counts_and_the_default_ignores_hold(base: Path) -> None:
    async def main() -> None:
        hub, _, seen = await watching(base, ("src",))
        (base / "src" / "node_modules" / "dep" / "x.js").write_text("x")
        (base / "src" / ".env").write_text("x")
        (base / "src" / "lib" / "a.js").write_text("x")
        assert await seen.next() == "src/lib/a.js"
        assert set(await marker(seen, base)) == {"src/lib/a.js"}  # created, then written
        hub.close()

    run(main)


def test_ignore_forms(base: Path) -> None:
    """A name at any depth, a glob (whole path and each name; **/ matches the top too), a
    regular expression, and an absolute path (path.join(__dirname, ...) in a .js file)."""
    (base / "src" / "tmp").mkdir()
    (base / "src" / "out").mkdir()

    async def main() -> None:
        ignore = ["tmp", "**/*.log", r"\.cache$", str(base / "src" / "out")]
        hub, _, seen = await watching(base, ("src",), ignore)
        (base / "src" / "tmp" / "a").write_text("x")
        (base / "src" / "top.log").write_text("x")
        (base / "src" / "lib" / "deep.log").write_text("x")
        (base / "src" / "x.cache").write_text("x")
        (base / "src" / "out" / "bundle.js").write_text("x")
        assert await marker(seen, base) == []
        hub.close()

    run(main)


def test_a_file_root_beside_a_directory_root(base: Path) -> None:
    """watch: ["app.py", "src"]: the file alone in its directory, and all of src, with a
    directory made later in src watched too."""
    (base / "app.py").write_text("x")
    (base / "other.py").write_text("x")

    async def main() -> None:
        hub, _, seen = await watching(base, ("app.py", "src"))
        (base / "other.py").write_text("y")
        (base / "app.py").write_text("y")
        assert await seen.next() == "app.py"
        (base / "src" / "new").mkdir()
        while "src/new" not in seen.paths:
            await seen.next()
        # The new directory is walked in a thread, then watched: wait for that task.
        await asyncio.wait_for(hub.settled(), DEADLINE)
        assert os.path.realpath(base / "src" / "new") in hub.wds
        (base / "src" / "new" / "b.js").write_text("x")
        while seen.paths[-1] != "src/new/b.js":
            await seen.next()
        assert "other.py" not in seen.paths
        hub.close()

    run(main)


def test_a_directory_moved_away_is_no_longer_watched(base: Path, tmp_path: Path) -> None:
    async def main() -> None:
        hub, _, seen = await watching(base, ("src",))
        away = tmp_path / "elsewhere"
        os.rename(base / "src" / "lib", away)
        assert await seen.next() == "src/lib"
        (away / "after.js").write_text("x")
        assert "src/lib/after.js" not in await marker(seen, base)
        hub.close()

    run(main)


def test_a_symlinked_base_is_watched_at_its_top(tmp_path: Path) -> None:
    """A cwd reached through a link (/srv/current -> releases/r1) is watched where it is."""
    real = tmp_path / "releases" / "r1"
    (real / "src").mkdir(parents=True)
    link = tmp_path / "current"
    link.symlink_to(real)

    async def main() -> None:
        hub, _, seen = await watching(link, (".",))
        (real / "app.py").write_text("x")
        assert await seen.next() == "app.py"
        hub.close()

    run(main)


def test_a_removed_root_is_said(base: Path) -> None:
    async def main() -> None:
        (base / "other").mkdir()
        hub, tree, seen = await watching(base, ("src", "other"))
        shutil.rmtree(base / "src")
        # One descriptor reads events in order: once a later one is seen, the removal's are.
        (base / "other" / "marker").write_text("x")
        while seen.paths[-1:] != ["other/marker"]:
            await seen.next()
        assert tree.lost and tree.problem and "src was removed" in tree.problem
        hub.close()

    run(main)
