"""Crash-safe writes: a file or directory appears whole under its final name, or not at all."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; on success it is renamed to ``path``.

    A file replaces any existing one. A directory is moved into place only if ``path`` does not exist
    yet; when another process got there first (same content, e.g. another DDP rank), ours is dropped.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        if tmp.is_dir():
            try:
                tmp.rename(path)
            except OSError:
                if not path.is_dir():
                    raise
        else:
            tmp.replace(path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def resume_args(fit_dir: Path) -> list[str]:
    """``["--ckpt_path", fit_dir/checkpoints/last.ckpt]`` when an earlier fit in ``fit_dir`` saved one, else ``[]``."""
    last = fit_dir / "checkpoints" / "last.ckpt"
    return ["--ckpt_path", str(last)] if last.is_file() else []
