"""The output folder of a run: claimed before any work (writable, room on the disk, locked against
a second run), its files written atomically and published as one set."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from mapg_verify.problem.errors import InputError


def writable(path: str | Path, key: str) -> None:
    """Check, before any work, that file ``path`` can be written: not a folder, and its nearest
    existing ancestor a writable folder (the folders in between are made when it is written)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(key, "names a folder where a file is to be written", str(path))
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(key, f"cannot be written: {folder} is a file, not a folder", str(path))
    if not os.access(folder, os.W_OK):
        raise InputError(key, f"cannot be written: no permission to write in {folder}", str(path))


OUTPUT_BYTES_PER_CASE = 256 * 1024  # free space asked of --out per case: twice a large case's results and report


@contextlib.contextmanager
def output_folder(out: Path, cases: int):
    """Claim ``out`` for one run before any work: its files writable, a probe write of
    :data:`OUTPUT_BYTES_PER_CASE` per case (a full disk or a read-only folder is found now, not
    after the work), and a lock (``out/.lock``) that refuses a second run into the same folder
    while this one runs. On the way out the lock goes, and a folder made here and left empty too."""
    for name in ("results.json", "index.html"):
        writable(out / name, "--out")
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError("--out", f"cannot be written: {error.strerror}", str(out)) from None
    lock = _lock(out / ".lock")
    try:
        _probe(out, cases * OUTPUT_BYTES_PER_CASE)
        yield
    finally:
        (out / ".lock").unlink(missing_ok=True)  # while still held: a run waiting on it retries
        lock.close()
        if made and not any(out.iterdir()):
            out.rmdir()


def _lock(path: Path):
    """The open file ``path``, locked (``flock``, exclusive): an input error if another run holds
    it. A lock taken on a file its holder has just removed is dropped and taken again on the
    file now at ``path``, so that two runs never both hold a lock on the same folder."""
    while True:
        try:
            lock = open(path, "w")  # noqa: SIM115 (held for the run)
        except OSError as error:
            raise InputError("--out", f"cannot be written: {error.strerror}", str(path.parent)) from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            busy = "another run is writing into this folder: wait for it, or choose another --out"
            raise InputError("--out", busy, str(path.parent)) from None
        try:
            if os.stat(path).st_ino == os.fstat(lock.fileno()).st_ino:
                return lock
        except FileNotFoundError:
            pass
        lock.close()


def _probe(out: Path, size: int) -> None:
    """Write and remove ``size`` bytes in ``out``: an input error if the disk cannot take them."""
    handle, probe = tempfile.mkstemp(dir=out, prefix=".probe.")
    try:
        with os.fdopen(handle, "wb") as stream:
            for start in range(0, size, 1 << 20):
                stream.write(b"\0" * min(1 << 20, size - start))
            stream.flush()
            os.fsync(stream.fileno())
    except OSError as error:
        raise InputError("--out", f"cannot hold this run's {size / 1e6:.1f} MB: {error.strerror}", str(out)) from None
    finally:
        Path(probe).unlink(missing_ok=True)


def publish(out: Path, files: dict[str, str]) -> None:
    """Write ``files`` (name -> text) into a fresh folder ``out/.runs/ID`` and swap it in with one
    rename of the link ``out/.run``; each ``out/NAME`` is a link to ``.run/NAME``, so a reader
    sees the old set or the new one, never a mixed pair. The previous set is then removed."""
    try:
        runs = out / ".runs"
        runs.mkdir(exist_ok=True)
        fresh = Path(tempfile.mkdtemp(dir=runs))
        for name, text in files.items():
            write_atomic(fresh / name, text)
        link = out / ".run"
        old = link.resolve() if link.is_symlink() else None
        _link(out, ".run", os.path.relpath(fresh, out))
        for name in files:
            if not ((out / name).is_symlink() and os.readlink(out / name) == f".run/{name}"):
                _link(out, name, f".run/{name}")
        if old is not None and old != fresh.resolve():
            shutil.rmtree(old, ignore_errors=True)
    except OSError as error:
        raise InputError("--out", f"cannot write the results: {error.strerror}", str(out)) from None


def _link(folder: Path, name: str, target: str) -> None:
    """Make ``folder/name`` a symbolic link to ``target`` with one rename (atomic)."""
    temporary = folder / f".{name}.{os.getpid()}.link"
    temporary.unlink(missing_ok=True)
    os.symlink(target, temporary)
    os.replace(temporary, folder / name)


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a synced temporary file and a rename: never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())  # on disk before the rename makes it the file
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the report from other readers
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
