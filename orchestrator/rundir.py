"""The run directory: layout, manifest, lock, and the frozen protocol a run was started with.

Data is written before the manifest says it exists (nanochat's rule): `create` writes the frozen
protocol, LOG.md and the records database, and only then the manifest.

A directory that cannot be written (no space, no permission, read-only) raises `RunDirUnwritable`
naming it, from `create`, from opening a run, and from anything done inside `with run:`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from memory import RunHistory, RunLog, utc_stamp, write_atomic
from orchestrator.errors import RunDirUnwritable, UserError
from orchestrator.lockfile import LOCK, StageCount, acquire, write_live

# read_manifest and runs_root live with the manifest (cheap to import) and are re-exported here
from orchestrator.manifest import Manifest, Status
from orchestrator.manifest import read_manifest as read_manifest
from orchestrator.manifest import runs_root as runs_root
from orchestrator.protocol import LoadedProtocol, load_protocol
from orchestrator.protocol.schema import Protocol
from orchestrator.records import Records
from orchestrator.unwritable import unwritable, writing

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def code_version() -> tuple[str | None, bool | None]:
    """The research checkout's commit and dirty flag (None when not run from a git checkout)."""
    src = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        status = ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"]
        dirty = subprocess.run(status, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return sha, bool(dirty)


def _freeze_data(loaded: LoadedProtocol, run_root: Path) -> dict[str, str | None]:
    """Copy the protocol's data files beside its frozen copy, at the same relative paths;
    return each one's sha256."""
    data = {}
    for rel in loaded.data_files():
        target = run_root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(loaded.path.parent / rel, target)
        data[rel] = _sha256(target)
    return data


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def analysis_sha256(protocol: Protocol) -> str:
    """The analysis section's hash: what the pre-registration of the analysis commits to."""
    blob = json.dumps(protocol.analysis.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class RunDir:
    """An open run directory. Holds the run's lock until `close()`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.id = self.root.name
        with writing(self.root):
            self._lock_fd = acquire(self.root / LOCK)
        try:
            self.manifest = Manifest.model_validate_json(self.path("manifest.json").read_text())
            self.loaded = load_protocol(self.path("protocol.yaml"))
            if self.loaded.sha256 != self.manifest.protocol_sha256:
                raise UserError(
                    f"{self.path('protocol.yaml')} was edited after the run started (its sha256 "
                    "no longer matches manifest.json); restore it or start a new run"
                )
            for rel, sha in self.manifest.data_sha256.items():
                if _sha256(self.path(rel)) != sha:
                    raise UserError(
                        f"{self.path(rel)} was edited after the run started (its sha256 no "
                        "longer matches manifest.json); restore it or start a new run"
                    )
            self.records = Records(self.path("records.sqlite"))
            self.log = RunLog(self.path("LOG.md"))
            self.history = RunHistory(self.root)
            self._orphan_started()
        except BaseException as e:
            os.close(self._lock_fd)
            if (err := unwritable(self.root, e)) is not None and err is not e:
                raise err from e
            raise

    def _orphan_started(self) -> None:
        """Calls recorded as started and never stored belong to a process that died (this one
        holds the lock and has started nothing yet): from now on they count as possibly paid."""
        orphaned = self.records.orphan_started()
        if orphaned:
            text = (
                f"{orphaned} calls were in flight when an earlier process died and their "
                "results were never recorded: possibly paid (SUMMARY.md and the report count "
                "them)."
            )
            self.log.append("run", "orchestrator", "possibly_paid", text)

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    @classmethod
    def create(
        cls,
        runs_dir: Path,
        loaded: LoadedProtocol,
        *,
        run_id: str | None,
        pilot: bool,
        offline: bool,
        local_model: str | None,
        models: list[str],
    ) -> RunDir:
        run_id = run_id or f"{loaded.protocol.id}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        if not RUN_ID.match(run_id):
            raise UserError(f"bad run id {run_id!r}: use letters, digits, '.', '_' and '-'")
        root = runs_dir / run_id
        exists = UserError(f"{root} already exists: resume it with `research resume {run_id}`")
        if root.exists():
            raise exists
        with writing(runs_dir):
            runs_dir.mkdir(parents=True, exist_ok=True)
            # built under a temporary name and renamed when complete: a run directory that
            # exists always has its manifest, whenever the process is killed
            tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}.", dir=runs_dir))
        try:
            cls._build(tmp, loaded, run_id, pilot, offline, local_model, models)
        except BaseException as e:
            err = unwritable(tmp, e)  # asked before the files it looks at are removed
            shutil.rmtree(tmp, ignore_errors=True)
            if err is None:
                raise
            raise RunDirUnwritable(runs_dir, err.reason) from e
        try:
            tmp.rename(root)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise exists from None
        return cls(root)

    @staticmethod
    def _build(
        tmp: Path,
        loaded: LoadedProtocol,
        run_id: str,
        pilot: bool,
        offline: bool,
        local_model: str | None,
        models: list[str],
    ) -> None:
        """Fill a new run directory: every file, the manifest last."""
        (tmp / "memory").mkdir()
        (tmp / "artifacts").mkdir()
        (tmp / "protocol.yaml").write_bytes(loaded.path.read_bytes())
        data = _freeze_data(loaded, tmp)
        RunLog(tmp / "LOG.md")
        Records(tmp / "records.sqlite").close()
        commit, dirty = code_version()
        manifest = Manifest(
            run_id=run_id,
            protocol_id=loaded.protocol.id,
            protocol_sha256=loaded.sha256,
            preregistered_sha256=loaded.sha256,
            data_sha256=data,
            protocol_source=str(loaded.path),
            code_commit=commit,
            code_dirty=dirty,
            size="pilot" if pilot else "full",
            offline=offline,
            local_model=local_model,
            models=models,
            created=utc_stamp(),
            updated=utc_stamp(),
            status="created",
        )
        write_atomic(tmp / "manifest.json", manifest.model_dump_json(indent=2) + "\n")
        tmp.chmod(0o755)

    @classmethod
    def open(cls, runs_dir: Path, run: str) -> RunDir:
        """Open a run by id (under `runs_dir`) or by path."""
        root = Path(run) if Path(run).is_dir() else runs_dir / run
        if not (root / "manifest.json").exists():
            raise UserError(f"no run {run!r} under {runs_dir} (see `research status`)")
        return cls(root)

    @property
    def pilot(self) -> bool:
        return self.manifest.size == "pilot"

    def set_status(self, status: Status, reason: str | None = None) -> None:
        """Record the run's status, and why it stopped when it failed or was interrupted."""
        self.update_manifest(status=status, reason=reason)

    def update_manifest(self, **fields: object) -> None:
        self.manifest = self.manifest.model_copy(update={**fields, "updated": utc_stamp()})
        write_atomic(self.path("manifest.json"), self.manifest.model_dump_json(indent=2) + "\n")

    def replace_protocol(self, text: str) -> None:
        """Freeze an approved amendment: the new protocol.yaml, its hash in the manifest."""
        write_atomic(self.path("protocol.yaml"), text)
        self.loaded = load_protocol(self.path("protocol.yaml"))
        self.update_manifest(protocol_sha256=self.loaded.sha256)

    def note_live(self, stages: list[StageCount]) -> None:
        """Say in the lock file which stages this process has in progress (`research status`
        reads it while the lock is held)."""
        write_live(self._lock_fd, stages)

    def close(self) -> None:
        try:
            self.records.close()
        finally:
            os.close(self._lock_fd)

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, kind: object, e: BaseException | None, tb: object) -> None:
        self.close()
        if e is not None and (err := unwritable(self.root, e)) is not None and err is not e:
            raise err from e
