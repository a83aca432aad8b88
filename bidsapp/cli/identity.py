"""A user name for a uid the system does not know (``docker run -u 1234``, some HPC nodes).

MONAI calls ``getpass.getuser()`` when it is imported; with no passwd entry for the uid and
none of the variables getuser reads first, that raises KeyError and the App dies before its
first line. A name in ``USER`` is all getuser needs; nothing here uses it for anything else.
"""

from __future__ import annotations

import os
import pwd

GETUSER_VARIABLES = ("LOGNAME", "USER", "LNAME", "USERNAME")  # what getpass.getuser reads, in order


def ensure_user_name() -> None:
    """Set ``USER=uid<N>`` when getuser would otherwise fail; leave a known user alone."""
    if any(os.environ.get(name) for name in GETUSER_VARIABLES):
        return
    try:
        pwd.getpwuid(os.getuid())
    except KeyError:
        os.environ["USER"] = f"uid{os.getuid()}"
