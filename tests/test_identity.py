"""The App runs as a uid with no passwd entry (``docker run -u 1234``), where MONAI's import-time
``getpass.getuser()`` raised KeyError before the App could print anything."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from dicomgen import write_series
from e2e_helpers import require_model

from bidsapp.cli.identity import GETUSER_VARIABLES

REPO = Path(__file__).resolve().parents[1]

# The uid loses its passwd entry: what an image without that user sees.
NO_PASSWD_ENTRY = textwrap.dedent("""\
    import os, pwd, sys
    def getpwuid(uid):
        raise KeyError(f"getpwuid(): uid not found: {uid}")
    pwd.getpwuid = getpwuid
    from bidsapp.cli.run import main
    sys.exit(main(sys.argv[1:]))
""")


def run_without_user(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in GETUSER_VARIABLES}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-c", NO_PASSWD_ENTRY, *args], env=env, capture_output=True,
                          text=True, timeout=600)


def test_participant_runs_for_a_uid_without_passwd_entry(tmp_path):
    require_model()
    write_series(tmp_path / "in", patient_id="P01", n_slices=6, size=32)
    proc = run_without_user(str(tmp_path / "in"), str(tmp_path / "out"), "participant")
    assert proc.returncode in (0, 1), proc.stderr
    assert "getpwuid" not in proc.stderr
    assert (tmp_path / "out" / "derivatives" / "mrclass" / "sub-P01" / "sub-P01_classifications.tsv").is_file()


def test_a_known_user_name_is_left_alone(monkeypatch):
    from bidsapp.cli import identity

    monkeypatch.setenv("LOGNAME", "alice")
    monkeypatch.delenv("USER", raising=False)
    identity.ensure_user_name()
    assert "USER" not in os.environ
