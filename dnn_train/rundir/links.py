"""The gate every run passes before it writes in its directory: no links, pipes or devices in it."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from dnn_train.errors import NO_LINKS, Refused


def refuse_links(run_dir: Path) -> None:
    """The gate every run passes before it writes in its directory: everything in it, at any depth,
    is a plain file with one name or a folder. A symbolic link (dangling or not) or a hard link
    planted there would have the run write (truncate its lock, append its log, make its .reserve)
    wherever it points; a named pipe would hang it. dnn_train makes none of these, so any one is
    refused (Refused: one line, exit 2), whatever its name. The run directory itself may be a link:
    the user named it. Ours: neither Hydra nor Keras checks what a directory holds."""
    for here, folders, files in os.walk(run_dir):  # a linked folder is listed, never entered
        for name in folders + files:
            path = Path(here, name)
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                raise Refused(f"{path} is a symbolic link (to {os.readlink(path)}); {NO_LINKS}")
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                raise Refused(f"{path} is a hard link (one of {st.st_nlink} names of the same file); {NO_LINKS}")
            if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
                raise Refused(f"{path} is not a regular file or folder (a pipe, socket or device); dnn_train writes "
                              "only files of its own in a run directory: remove it or choose another hydra.run.dir")
