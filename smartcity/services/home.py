"""Where a server that runs as its own system user keeps its files (``ServerHome``)."""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import re
import subprocess
import time
from pathlib import Path

__all__ = ["SHARED_CLUSTER_ROOT", "ServerHome"]

log = logging.getLogger(__name__)


# Where clusters and brokers live when we are root and their user cannot enter the data directory.
SHARED_CLUSTER_ROOT = Path("/var/lib/smartcity")


class ServerHome:
    """Where a server that runs as another user keeps its files for ``data_dir``.

    When we are root, PostgreSQL and Mosquitto run as their own system users, and those must
    reach every file the server opens. ``data_dir`` itself is the home when that user can enter
    it. A clone under /root or a ``mktemp -d`` folder has a 0700 parent, though: then the home is
    ``root/<name>-<hash of data_dir>/`` and a pointer file in ``data_dir`` names it, so the user's
    folders keep their permissions. Without a ``user`` (we are not root) the home is ``data_dir``.
    """

    def __init__(self, data_dir: Path, user: str | None, root: Path = SHARED_CLUSTER_ROOT,
                 pointer_name: str = "cluster-location") -> None:
        self.data_dir = data_dir
        self.user = user
        self.root = root
        self.pointer_file = data_dir / pointer_name

    @property
    def home(self) -> Path:
        """Return the home chosen earlier (the pointer's target), else ``data_dir``."""
        if self.pointer_file.is_file():
            return Path(self.pointer_file.read_text().strip())
        return self.data_dir

    def hand_over(self, path: Path) -> None:
        """Give ``path`` to the server's user (nothing to do when it runs as us)."""
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def can_reach(self, path: Path, test: str = "-x") -> bool:
        """Tell whether the server's user can enter (``-x``) or read (``-r``) ``path``."""
        if self.user is None:
            return True
        # Ask the kernel as the server user rather than reading mode bits: ACLs, groups and
        # mount options all count.
        result = subprocess.run(["runuser", "-u", self.user, "--", "test", test, str(path)],
                                capture_output=True)
        return result.returncode == 0

    def shared_home(self) -> Path:
        """Return this data directory's home under ``root``: readable name, unique hash."""
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        words = [part.lstrip(".") for part in self.data_dir.parts[-3:] if part.lstrip("./")]
        # Short: PostgreSQL's Unix socket goes in the cluster directory, and socket paths are
        # limited to 107 bytes.
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(words))[:20]
        return self.root / f"{name}-{digest}"

    def choose(self) -> Path:
        """Decide where the server's files live; remember a home outside ``data_dir`` by a pointer."""
        if self.pointer_file.is_file():
            home = self.home
        elif self.can_reach(self.data_dir):
            return self.data_dir
        else:
            home = self.shared_home()
            if home.exists():
                # Left by an earlier data directory of this path that was deleted with its
                # password: unusable, but data, so set aside rather than removed.
                aside = home.with_name(f"{home.name}.orphaned-{int(time.time())}")
                home.rename(aside)
                log.warning("set aside an orphaned server home for %s: %s", self.data_dir, aside)
            log.info("the %s user cannot enter %s (a parent folder is private); keeping the "
                     "server's files in %s, recorded in %s", self.user, self.data_dir, home,
                     self.pointer_file)
        self.root.mkdir(mode=0o755, parents=True, exist_ok=True)
        home.mkdir(mode=0o700, exist_ok=True)
        self.hand_over(home)
        self.pointer_file.write_text(f"{home}\n")
        return home
