"""The leaf layer: what every package needs, importing nothing of the project.

``errors`` (the user-error type), ``offline`` (the hub-off check), ``hashing`` (content
keys and file digests), ``gitinfo`` (commit and dirty flag), ``packages`` (the package
lists and their versions), ``rows`` (reading row files), ``yamlio`` (YAML with repeated
keys refused), ``extends`` (``extends:`` in YAML entries), ``names`` (names that become
file names), ``mirror`` (the data mirror) and ``memory`` (a cell's peak memory). No
project imports, so that ``tasks`` and ``leaderboards`` can use it without reaching up
(tests/test_imports.py); of third-party packages only PyYAML (``yamlio``) and, for .csv
and .parquet files, pyarrow (``rows``), both dependencies of every install.
"""

import logging

# bitsandbytes' CPU backend logs a warning at import (so at every `import peft`) on CPUs with
# AVX512-BF16 when the `kernels` package, which fetches its faster 4-bit matmul from the hub, is
# absent; QLoRA runs on its built-in kernels instead. One line on every command's stderr is noise.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
