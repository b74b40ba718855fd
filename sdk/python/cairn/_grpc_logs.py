"""Imported first by `cairn` (and so by the `cairn` command), before grpc.

gRPC's C core prints its own INFO lines to stderr unless told otherwise
("Other threads are currently calling into gRPC, skipping fork() handlers",
"All log messages before absl::InitializeLog() ..."), which a user of the
SDK or the CLI cannot act on. Unless GRPC_VERBOSITY is set already, it is
set to ERROR, so that only the C core's errors are printed. It has no
effect when grpc was imported before cairn.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
