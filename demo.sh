#!/usr/bin/env bash
# The objmgr demo: two separately started processes share named memory
# (Microsoft's "Creating Named Shared Memory" pair). The broker starts on
# demand with the first process and exits by itself once both are done.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --quiet --release -p objmgr-cli --bins --examples
bin=target/release
"$bin/examples/shm_writer" &
writer=$!
# Start the reader once the writer has created the section.
for _ in $(seq 1 500); do
    "$bin/objmgr" stat 'Global\MyFileMappingObject' >/dev/null 2>&1 && break
    sleep 0.01
done
"$bin/objmgr" ls
"$bin/examples/shm_reader"
wait "$writer"
echo "after both exit, the name is free again:"
"$bin/objmgr" stat 'Global\MyFileMappingObject' || true
